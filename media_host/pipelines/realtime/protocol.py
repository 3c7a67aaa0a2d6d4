"""The Realtime API's two dialects in one place: GA event names and session shape, and the beta
(Azure preview, `OpenAI-Beta: realtime=v1`) ones.

The pipeline speaks one internal dialect, GA's: server events are renamed on the way in
(`canonical_type`) and client events are built here for the selected flavor.

=====================================  =====================================  ==========================
GA                                     beta / Azure preview                   notes
=====================================  =====================================  ==========================
response.output_audio.delta / .done    response.audio.delta / .done           base64 PCM16 24 kHz
response.output_audio_transcript.*     response.audio_transcript.*            delta / transcript
response.output_text.delta / .done     response.text.delta / .done
conversation.item.added                conversation.item.created              GA sends both names
session.type = "realtime"              (absent)                               GA requires it
output_modalities ["audio"]            modalities ["audio", "text"]           session and response.create
audio.input.format {audio/pcm, 24000}  input_audio_format "pcm16"
audio.output.format {audio/pcm, 24000} output_audio_format "pcm16"
audio.output.voice                     voice
audio.input.turn_detection             turn_detection
audio.input.transcription              input_audio_transcription
assistant content "output_text"        assistant content "text"               history restored as items
function_call_arguments.done `name`    (no name: from the output item)
=====================================  =====================================  ==========================

Everything else (input_audio_buffer.*, conversation.item.create/truncate, response.create/cancel,
function_call_output items, error, rate_limits.updated) is the same in both.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from agents import Agent, PromptVariables
from agents.schema import TurnDetection
from switchboard.settings import RealtimeFlavor, Settings

log = logging.getLogger(__name__)
SAMPLE_RATE = 24000  # GA audio/pcm is 24 kHz only (beta pcm16 is too)

# beta name -> GA name (server events)
BETA_TO_GA = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "conversation.item.created": "conversation.item.added",
}
GA_TO_BETA = {ga: beta for beta, ga in BETA_TO_GA.items()}


def canonical_type(event_type: str) -> str:
    """A server event's type in the GA dialect (either dialect is accepted from either flavor)."""
    return BETA_TO_GA.get(event_type, event_type)


def server_type(event_type: str, flavor: RealtimeFlavor) -> str:
    """The name a server of `flavor` uses for a (GA-named) server event."""
    return GA_TO_BETA.get(event_type, event_type) if flavor is RealtimeFlavor.BETA else event_type


def parse(message: bytes | str) -> dict[str, Any] | None:
    """A server message as a dict with a string `type`, or None if it is not one."""
    try:
        event = json.loads(message)
    except (ValueError, RecursionError):
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None
    event["type"] = canonical_type(event["type"])
    return event


@dataclass(frozen=True)
class FunctionCall:
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ResponseDone:
    """A `response.done`: how the response ended and what it generated. The service sends one for every
    response, "no matter the final state"; its `status` says whether it completed (`completed`) or not
    (`cancelled`, `incomplete`, `failed`), and `output` holds every item generated, cut short or not
    (ResponseDoneEvent, openai.types.realtime and .beta.realtime, openai 3.63.0)."""

    id: str
    status: str  # "" if the event has none (then it did not complete, as far as we know)
    details: dict[str, Any]
    output: list[dict[str, Any]]
    calls: tuple[FunctionCall, ...]  # function calls the model finished (item status completed, or none given)
    unfinished: tuple[str, ...]  # call ids of function calls it did not (status incomplete / in_progress)

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @classmethod
    def parse(cls, event: dict[str, Any]) -> ResponseDone:
        raw = event.get("response")
        body: dict[str, Any] = raw if isinstance(raw, dict) else {}
        output = [item for item in body.get("output") or [] if isinstance(item, dict)]
        calls, unfinished = [], []
        for item in output:
            if item.get("type") != "function_call":
                continue
            call_id = str(item.get("call_id") or "")
            if item.get("status", "completed") == "completed":
                calls.append(FunctionCall(call_id, str(item.get("name") or ""), str(item.get("arguments") or "")))
            else:
                unfinished.append(call_id)
        details = body.get("status_details")
        return cls(str(body.get("id") or ""), str(body.get("status") or ""),
                   details if isinstance(details, dict) else {}, output, tuple(calls), tuple(unfinished))


def turn_detection(spec: TurnDetection) -> dict[str, Any]:
    """Server-side turn-taking from the agent's settings: the server answers and barges in by itself."""
    detection: dict[str, Any] = {"type": spec.type}
    if spec.type == "semantic_vad":
        if spec.eagerness is not None:
            detection["eagerness"] = spec.eagerness
    else:
        for key in ("threshold", "prefix_padding_ms", "silence_duration_ms"):
            value = getattr(spec, key)
            if value is not None:
                detection[key] = value
    detection["create_response"] = True
    detection["interrupt_response"] = True
    return detection


@dataclass(frozen=True)
class Transcription:
    """What a session's input transcription names. OpenAI takes a model name: the agent's
    `transcription_model`. Azure OpenAI takes the name of a deployment there ("Azure deviation",
    https://learn.microsoft.com/azure/foundry/openai/realtime-audio-reference) and fails every transcription
    of a model name it has no deployment of: AZURE_OPENAI_TRANSCRIPTION_DEPLOYMENT serves every agent that
    transcribes; without it a session on Azure does not transcribe."""

    azure: bool = False
    deployment: str | None = None

    def model(self, agent_model: str) -> str | None:
        """The name to send for an agent's `transcription_model` (None: no transcription)."""
        if not agent_model:
            return None
        return (self.deployment or None) if self.azure else agent_model

    @classmethod
    def from_settings(cls, settings: Settings) -> Transcription:
        azure = settings.resolved_realtime == "azure"
        if azure and not settings.azure_openai_transcription_deployment:
            log.warning("realtime: AZURE_OPENAI_TRANSCRIPTION_DEPLOYMENT is not set: callers are not transcribed")
        return cls(azure=azure, deployment=settings.azure_openai_transcription_deployment)


BY_MODEL_NAME = Transcription()  # OpenAI's way: the agent's model


@dataclass(frozen=True)
class SessionConfig:
    """What a session is configured with, flavor-independent."""

    instructions: str
    voice: str
    tools: list[dict[str, Any]] = field(default_factory=list)
    turn_detection: dict[str, Any] = field(default_factory=dict)
    transcription_model: str | None = None

    @classmethod
    def for_agent(cls, agent: Agent, variables: PromptVariables,
                  transcription: Transcription = BY_MODEL_NAME) -> SessionConfig:
        realtime = agent.spec.realtime
        return cls(instructions=agent.render_prompt(variables), voice=realtime.voice, tools=agent.realtime_tools(),
                   turn_detection=turn_detection(realtime.turn_detection),
                   transcription_model=transcription.model(realtime.transcription_model))


class Dialect:
    """Client events for one flavor."""

    def __init__(self, flavor: RealtimeFlavor) -> None:
        self.flavor = flavor
        self.ga = flavor is RealtimeFlavor.GA

    def session_update(self, config: SessionConfig, *, with_voice: bool = True,
                       event_id: str | None = None) -> dict[str, Any]:
        transcription = {"model": config.transcription_model} if config.transcription_model else None
        session: dict[str, Any]
        if self.ga:
            output: dict[str, Any] = {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE}}
            if with_voice:
                output["voice"] = config.voice
            audio_in: dict[str, Any] = {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE},
                                        "turn_detection": config.turn_detection}
            if transcription is not None:
                audio_in["transcription"] = transcription
            session = {"type": "realtime", "instructions": config.instructions, "output_modalities": ["audio"],
                       "audio": {"input": audio_in, "output": output}}
        else:
            session = {"modalities": ["audio", "text"], "instructions": config.instructions,
                       "input_audio_format": "pcm16", "output_audio_format": "pcm16",
                       "turn_detection": config.turn_detection}
            if with_voice:
                session["voice"] = config.voice
            if transcription is not None:
                session["input_audio_transcription"] = transcription
        session["tools"] = config.tools
        session["tool_choice"] = "auto"
        event: dict[str, Any] = {"type": "session.update", "session": session}
        if event_id is not None:
            event["event_id"] = event_id
        return event

    def response_create(self, instructions: str | None = None,
                        tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """A response; `instructions` and `tools` given replace the session's for this response only."""
        response: dict[str, Any] = {"output_modalities": ["audio"]} if self.ga else {"modalities": ["audio", "text"]}
        if instructions is not None:
            response["instructions"] = instructions
        if tools is not None:
            response["tools"] = tools
            response["tool_choice"] = "auto"
        return {"type": "response.create", "response": response}

    def response_out_of_band(self, instructions: str, metadata: dict[str, str], event_id: str) -> dict[str, Any]:
        """A response outside the conversation (`conversation: none`, no input): the model says something
        that leaves no trace in the session (the pipeline renders audio it may need to play itself)."""
        event = self.response_create(instructions)
        event["response"].update({"conversation": "none", "input": [], "metadata": metadata})
        event["event_id"] = event_id
        return event

    @staticmethod
    def response_cancel(response_id: str | None = None) -> dict[str, Any]:
        event: dict[str, Any] = {"type": "response.cancel"}
        if response_id is not None:
            event["response_id"] = response_id
        return event

    @staticmethod
    def append(audio_b64: str) -> dict[str, Any]:
        return {"type": "input_audio_buffer.append", "audio": audio_b64}

    @staticmethod
    def truncate(item_id: str, audio_end_ms: int, content_index: int = 0) -> dict[str, Any]:
        return {"type": "conversation.item.truncate", "item_id": item_id, "content_index": content_index,
                "audio_end_ms": audio_end_ms}

    @staticmethod
    def function_output(call_id: str, output: str) -> dict[str, Any]:
        return {"type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": call_id, "output": output}}

    def message(self, role: str, text: str) -> dict[str, Any]:
        """A text message item (history restored after a reconnect, a handoff note, DTMF digits)."""
        content_type = ("output_text" if self.ga else "text") if role == "assistant" else "input_text"
        return {"type": "conversation.item.create",
                "item": {"type": "message", "role": role, "content": [{"type": content_type, "text": text}]}}


class MalformedEvent(ValueError):
    """A server event without the shape the SDK models give it: logged in one line and skipped."""


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class ServerError:
    """An `error` event's details. Its shape is RealtimeError's (openai 3.63.0, openai.types.realtime
    .realtime_error; the beta model is the same): an object with `message` and `type`, and optional `code`,
    `event_id` and `param`. The object is required; a field of the wrong type is read as absent."""

    type: str | None
    code: str | None
    message: str
    param: str | None
    event_id: str | None

    @property
    def label(self) -> str:
        """What the error is counted as (a metric label: bounded)."""
        return (self.code or self.type or "unknown")[:60]

    @property
    def refuses_voice(self) -> bool:
        """The server refused to change the voice (it may, once assistant audio exists in the session)."""
        text = f"{self.code or ''} {self.message}".lower()
        return (self.param or "").endswith("voice") or "voice" in text

    @classmethod
    def parse(cls, event: dict[str, Any]) -> ServerError:
        error = event.get("error")
        if not isinstance(error, dict):
            raise MalformedEvent(f"`error` is {type(error).__name__}, not an object")
        return cls(_text(error.get("type")), _text(error.get("code")), _text(error.get("message")) or "",
                   _text(error.get("param")), _text(error.get("event_id")))


@dataclass(frozen=True)
class RateLimit:
    """One of a `rate_limits.updated` event's limits: RateLimit (openai 3.63.0, openai.types.realtime
    .rate_limits_updated_event), every field optional. `rate_limits` must be a list of objects."""

    name: str | None
    limit: float | None
    remaining: float | None
    reset_seconds: float | None

    @property
    def low(self) -> bool:
        """Under a tenth of the limit left."""
        return self.remaining is not None and self.limit is not None and self.remaining < 0.1 * self.limit

    @classmethod
    def parse_all(cls, event: dict[str, Any]) -> list[RateLimit]:
        limits = event.get("rate_limits")
        if not isinstance(limits, list) or not all(isinstance(limit, dict) for limit in limits):
            raise MalformedEvent("`rate_limits` is not a list of objects")
        return [cls(_text(limit.get("name")), _number(limit.get("limit")), _number(limit.get("remaining")),
                    _number(limit.get("reset_seconds"))) for limit in limits]


BENIGN_ERRORS = {"response_cancel_not_active"}  # a cancel that crossed the server's own cancel (barge-in)
