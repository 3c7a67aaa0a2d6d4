"""What the local Realtime server (tests/support/realtime_server.py) says and accepts, per dialect: the GA and
the beta (Azure preview) session shapes and event names, server events a test emits, the marked
audio it serves, and the checks the service makes of client events (the parts the pipeline uses).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RATE = 24000
FRAME_BYTES = 960  # 20 ms of PCM16 at 24 kHz
BYTES_PER_MS = 48
BETA_NAMES = {  # GA server event name -> beta / Azure preview name
    "response.output_audio.delta": "response.audio.delta", "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "conversation.item.added": "conversation.item.created",
}
GA_ONLY = {"type", "output_modalities", "audio"}  # session fields of one dialect only
BETA_ONLY = {"modalities", "voice", "input_audio_format", "output_audio_format", "turn_detection",
             "input_audio_transcription"}
Event = dict[str, Any]


# --- the script, and what was served -----------------------------------------------------------------
@dataclass
class Speak:
    text: str
    audio_ms: int = 300
    chunk_ms: int = 100
    pace: float = 0.0
    drop_after_ms: int | None = None


@dataclass
class CallTool:
    """A script step: the model calls a tool (one function_call item), as `Speak` is one spoken reply."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    hold: bool = False  # stop partway through the arguments until cancelled (the model is still writing them)
    hold_at: float = 0.5  # the share of the arguments streamed before the hold (1.0: all, not yet done)
    outcome: str = "completed"  # or `incomplete` (max_output_tokens) / `failed`: how the response ends
    repeat_done: bool = False  # its response.done is sent twice (a client must act on it once)

    @property
    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass
class Served:
    """One response as it was served."""

    id: str
    item_id: str
    script: Speak | CallTool | None
    marker: int
    audio: bytearray = field(default_factory=bytearray)
    said: list[str] = field(default_factory=list)  # transcript words, or function arguments, sent so far
    call_id: str | None = None
    status: str = "in_progress"
    status_details: Event | None = None
    item_status: str | None = None  # its output item: None (not started), in_progress, completed, incomplete
    tools: list[str] = field(default_factory=list)  # the tools the model had for it (session or response)
    metadata: dict[str, str] | None = None  # of an out-of-band response (response.create's metadata)

    @property
    def audio_ms(self) -> float:
        return len(self.audio) / BYTES_PER_MS


def item_of(served: Served, ga: bool, status: str) -> Event:
    """The output item of a response, as the service describes it (`status` in_progress: no content yet)."""
    item: Event = {"id": served.item_id, "object": "realtime.item", "status": status}
    if isinstance(served.script, CallTool):
        return {**item, "type": "function_call", "name": served.script.name, "call_id": served.call_id,
                "arguments": "" if status == "in_progress" else "".join(served.said)}
    content = [] if status == "in_progress" else [{"type": "output_audio" if ga else "audio",
                                                   "transcript": transcript_of(served)}]
    return {**item, "type": "message", "role": "assistant", "content": content}


def transcript_of(served: Served) -> str:
    """The transcript of what was generated: all of it, or (cut short) the words sent so far."""
    if isinstance(served.script, Speak) and served.item_status != "incomplete":
        return served.script.text
    return " ".join(served.said)


def response_of(served: Served, ga: bool) -> Event:
    """The `response` of response.created / response.done: response.done lists every output item
    generated, cut short or not (ResponseDoneEvent's docstring)."""
    body: Event = {"object": "realtime.response", "id": served.id, "status": served.status,
                   "status_details": served.status_details, "usage": None, "metadata": served.metadata}
    done = served.status != "in_progress" and served.item_status is not None
    body["output"] = [item_of(served, ga, str(served.item_status))] if done else []
    body.update({"output_modalities": ["audio"]} if ga else {"modalities": ["audio", "text"]})
    return body


# --- audio ------------------------------------------------------------------------------------------
def tone(ms: int, marker: int) -> bytes:
    """A 440 Hz tone whose 20 ms frames each start with the sample `marker`."""
    samples = (np.sin(2 * np.pi * 440 * np.arange(RATE * ms // 1000) / RATE) * 3000).astype("<i2")
    samples[::FRAME_BYTES // 2] = marker
    return samples.tobytes()


def marker_of(frame: bytes) -> int:
    return int.from_bytes(frame[:2], "little", signed=True)


HOLD_MARKER = 777  # the marker of the audio of out-of-band responses (the pipeline's holding phrase)


# --- server events a test may emit -------------------------------------------------------------------
def rate_limits(remaining: int = 999) -> Event:
    return {"type": "rate_limits.updated", "rate_limits": [
        {"name": "requests", "limit": 1000, "remaining": remaining, "reset_seconds": 60},
        {"name": "tokens", "limit": 50000, "remaining": 48713, "reset_seconds": 1.54}]}


def error(code: str, message: str = "error", *, param: str | None = None, event_id: str | None = None,
          kind: str = "invalid_request_error") -> Event:
    return {"type": "error", "error": {"type": kind, "code": code, "message": message, "param": param,
                                       "event_id": event_id}}


# --- the session ---------------------------------------------------------------------------------------
def initial_session(ga: bool, session_id: str) -> Event:
    detection = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500,
                 "create_response": True, "interrupt_response": True}
    pcm = {"type": "audio/pcm", "rate": RATE}
    if ga:
        return {"type": "realtime", "object": "realtime.session", "id": session_id, "model": "gpt-realtime",
                "output_modalities": ["audio"], "instructions": "", "tools": [], "tool_choice": "auto",
                "audio": {"input": {"format": pcm, "transcription": None, "turn_detection": detection},
                          "output": {"format": pcm, "voice": "marin", "speed": 1.0}}}
    return {"object": "realtime.session", "id": session_id, "model": "gpt-4o-realtime-preview",
            "modalities": ["audio", "text"], "instructions": "", "voice": "alloy", "input_audio_format": "pcm16",
            "output_audio_format": "pcm16", "input_audio_transcription": None, "turn_detection": detection,
            "tools": [], "tool_choice": "auto"}


def voice_of(session: Event, ga: bool) -> str | None:
    voice = ((session.get("audio") or {}).get("output") or {}).get("voice") if ga else session.get("voice")
    return str(voice) if voice is not None else None


def turn_detection_of(session: Event, ga: bool) -> Event:
    holder = (session.get("audio") or {}).get("input") or {} if ga else session
    detection: Event = holder.get("turn_detection") or {}
    return detection


def transcription_of(session: Event, ga: bool) -> Event | None:
    """The input transcription the session does (None: the caller's speech is not transcribed)."""
    value = ((session.get("audio") or {}).get("input") or {}).get("transcription") if ga else (
        session.get("input_audio_transcription"))
    return value if isinstance(value, dict) else None


def merge(into: Event, update: Event) -> None:
    """A session.update applied: nested objects key by key, except an object of one of several types
    (turn_detection server_vad / semantic_vad, a format): a new one replaces the old."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict) and "type" not in value:
            merge(into[key], value)
        else:
            into[key] = value


# --- what the service rejects --------------------------------------------------------------------------
class Checks:
    """The checks of one connection's client events: `problems(event)` lists why the service would refuse it."""

    def __init__(self, ga: bool, calls: set[str], audio_ms: Callable[[str], float | None]) -> None:
        self.ga, self.calls, self.audio_ms = ga, calls, audio_ms  # calls made; ms of audio sent per item
        self.by_type: dict[str, Callable[[Event], list[str]]] = {
            "session.update": self._session, "response.create": self._response,
            "input_audio_buffer.append": self._append, "conversation.item.truncate": self._truncate,
            "conversation.item.create": self._item, "response.cancel": lambda _e: [],
            "input_audio_buffer.commit": lambda _e: [], "input_audio_buffer.clear": lambda _e: [],
            "conversation.item.delete": lambda _e: []}

    def problems(self, event: Event) -> list[str]:
        check = self.by_type.get(str(event.get("type")))
        return [f"unknown client event {event.get('type')!r}"] if check is None else check(event)

    def _session(self, event: Event) -> list[str]:
        session = event.get("session") or {}
        wrong = sorted(set(session) & (BETA_ONLY if self.ga else GA_ONLY))
        problems = [f"session.update: {wrong} are not {'GA' if self.ga else 'beta'} session fields"] if wrong else []
        if self.ga and session.get("type") != "realtime":
            problems.append("session.update: session.type must be 'realtime'")
        return problems

    def _response(self, event: Event) -> list[str]:
        response = event.get("response") or {}
        if "modalities" in response if self.ga else "output_modalities" in response:
            return [f"response.create: {sorted(response)} mixes the dialects"]
        if self.ga and response.get("output_modalities", ["audio"]) not in (["audio"], ["text"]):
            return ["response.create: output_modalities must be ['audio'] or ['text']"]
        return []

    @staticmethod
    def _append(event: Event) -> list[str]:
        return [] if len(base64.b64decode(event.get("audio", ""))) % 2 == 0 else ["append: odd PCM16 length"]

    def _truncate(self, event: Event) -> list[str]:
        sent = self.audio_ms(str(event.get("item_id")))
        if sent is None:
            return [f"truncate: no assistant audio item {event.get('item_id')}"]
        if not 0 <= int(event.get("audio_end_ms", -1)) <= sent:
            return [f"truncate: audio_end_ms {event.get('audio_end_ms')} is beyond the {sent} ms sent"]
        return []

    def _item(self, event: Event) -> list[str]:
        item = event.get("item") or {}
        if item.get("type") == "function_call_output":
            return [] if item.get("call_id") in self.calls else [f"function_call_output for an unknown call: {item}"]
        expected = ("output_text" if self.ga else "text") if item.get("role") == "assistant" else "input_text"
        types = {c.get("type") for c in item.get("content") or []}
        if item.get("type") != "message" or item.get("role") not in ("user", "assistant", "system") or (
                types != {expected}):
            return [f"conversation.item.create: a {item.get('role')} message needs {expected} content: {item}"]
        return []
