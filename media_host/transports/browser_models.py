"""The browser softphone protocol (docs/browser-protocol.md): client messages, parsed once at the edge,
and the server messages, built here.

Client text messages are JSON objects with a `type`. Unknown fields are ignored (a newer page keeps
working against an older host); an unknown `type` is reported as `UnknownMessage` for the adapter to
skip. Audio travels in binary frames and never passes through this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError

PROTOCOL_VERSION: Final = 1
ENCODING: Final = "pcm16"
WIRE_RATES: Final = (8000, 16000, 24000, 48000)  # 48000: a page whose AudioContext runs at the device rate
OUTPUT_FRAME_MS: Final = 20
MAX_TEXT_CHARS: Final = 4096  # control messages are tiny; anything larger is abuse


class ClientMessageError(ValueError):
    """A text message that is not valid protocol: `kind` labels the metric, `reason` goes to the page."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.reason = kind, reason


class _Client(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AudioFormat(_Client):
    encoding: str = Field(max_length=32)
    sample_rate: int = Field(strict=True)
    channels: int = Field(1, strict=True)
    frame_ms: int | None = Field(None, ge=1, le=1000)  # advisory: the page's chunk size; any size is accepted

    @property
    def supported(self) -> bool:
        return self.encoding.lower() == ENCODING and self.sample_rate in WIRE_RATES and self.channels == 1


class Start(_Client):
    type: Literal["start"]
    format: AudioFormat


class Dtmf(_Client):
    type: Literal["dtmf"]
    digits: str = Field(pattern=r"^[0-9*#A-Da-d]{1,32}$")


class Hangup(_Client):
    type: Literal["hangup"]


class Ping(_Client):
    type: Literal["ping"]
    id: str | None = Field(None, max_length=64)  # echoed in the pong, for round-trip timing


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    type: str


ClientMessage = Start | Dtmf | Hangup | Ping
_MODELS: Final[dict[str, type[ClientMessage]]] = {"start": Start, "dtmf": Dtmf, "hangup": Hangup, "ping": Ping}


def parse_client_message(text: str) -> ClientMessage | UnknownMessage:
    """One JSON text message from the page, or ClientMessageError."""
    try:
        raw = pydantic_core.from_json(text)
    except ValueError:  # also nesting beyond the parser's recursion limit
        raise ClientMessageError("malformed_json", "malformed JSON") from None
    if not isinstance(raw, dict):
        raise ClientMessageError("not_an_object", "a message must be a JSON object")
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise ClientMessageError("missing_type", "a message must have a string `type`")
    model = _MODELS.get(kind)
    if model is None:
        return UnknownMessage(kind[:40])
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False, include_context=False)[0]
        where = ".".join(str(p) for p in first["loc"])[:40]
        raise ClientMessageError("invalid_message", f"invalid {kind} message: {where}: {first['msg']}"[:120]) from None


class SessionRequest(_Client):
    """The body of POST /api/v1/realtime/sessions (all fields optional)."""

    scenario: str | None = Field(None, min_length=1, max_length=64)


# --- server messages -------------------------------------------------------------------------------
# Sent per event, never per frame (audio is binary), so plain json.dumps is cheap enough.


def _dump(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


STOP_AUDIO: Final = _dump({"type": "stop_audio"})
SPEECH_STARTED: Final = _dump({"type": "speech_started"})
SPEECH_STOPPED: Final = _dump({"type": "speech_stopped"})
TURN_COMMITTED: Final = _dump({"type": "turn_committed"})


def ready(call_id: str, scenario: str, agent: str, sample_rate: int, *, resumed: bool) -> str:
    return _dump({"type": "ready", "protocol": PROTOCOL_VERSION, "call_id": call_id, "scenario": scenario,
                  "agent": agent, "resumed": resumed,
                  "output": {"encoding": ENCODING, "sample_rate": sample_rate, "frame_ms": OUTPUT_FRAME_MS}})


def pong(ping_id: str | None) -> str:
    return _dump({"type": "pong"} if ping_id is None else {"type": "pong", "id": ping_id})


def audio_end(utterance: int) -> str:
    return _dump({"type": "audio_end", "utterance": utterance})


def transcript(speaker: str, text: str, *, agent: str | None, final: bool, interrupted: bool = False) -> str:
    return _dump({"type": "transcript", "speaker": speaker, "text": text, "agent": agent, "final": final,
                  "interrupted": interrupted})


def agent_changed(agent: str, previous: str | None, reason: str) -> str:
    return _dump({"type": "agent", "agent": agent, "previous": previous, "reason": reason})


def tool_called(name: str, *, ok: bool, elapsed_ms: float) -> str:
    """Name, outcome and time only: arguments may hold personal data and never reach the page."""
    return _dump({"type": "tool", "name": name, "ok": ok, "elapsed_ms": round(elapsed_ms, 1)})


def latency(marks: dict[str, float]) -> str:
    return _dump({"type": "latency", "marks": {k: round(v, 1) for k, v in marks.items()}})


def transfer(target: str, reason: str) -> str:
    return _dump({"type": "transfer", "target": target, "reason": reason})


def hangup(reason: str) -> str:
    return _dump({"type": "hangup", "reason": reason})


def error(code: int, reason: str) -> str:
    return _dump({"type": "error", "code": code, "reason": reason})
