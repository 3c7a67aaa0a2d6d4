"""The AudioCodes VoiceAI Connect Bot API messages, parsed once at the edge (sources: audiocodes.py).

Inbound JSON is validated in one pass into one of the models below, chosen by its `type`; a type we
do not know becomes `UnknownMessage` (ignored by the adapter, not an error). Unknown fields are
ignored everywhere: VAIC adds fields over time. Outbound messages are built here too; the per-frame
ones are formatted, not serialised.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter
from pydantic.alias_generators import to_camel

# --- media formats ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaFormat:
    name: str
    rate: int  # Hz, of the PCM16 the channel sees
    mulaw: bool = False

    @property
    def bytes_per_second(self) -> int:
        """Wire bytes in one second of audio (the largest chunk we accept)."""
        return self.rate if self.mulaw else self.rate * 2


# Our order of preference: the highest rate first (it is the pipelines' own rate, no resampling).
MEDIA_FORMATS: Final = {f.name: f for f in (
    MediaFormat("raw/lpcm16_24", 24000),
    MediaFormat("raw/lpcm16", 16000),
    MediaFormat("raw/lpcm16_8", 8000),
    MediaFormat("raw/mulaw", 8000, mulaw=True),
)}


def choose_format(offered: list[str]) -> MediaFormat | None:
    """The format we prefer among those VAIC offers, or None."""
    wanted = {name.strip().lower() for name in offered}
    return next((f for name, f in MEDIA_FORMATS.items() if name in wanted), None)


# --- inbound (VAIC -> bot) ----------------------------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel, populate_by_name=True)


class SessionInitiate(_Wire):
    type: Literal["session.initiate"]
    conversation_id: str
    bot_name: str | None = None
    caller: str | None = None  # PII: never logged in clear
    expect_audio_messages: bool = True
    supported_media_formats: list[str] = Field(default_factory=list)


class SessionResume(_Wire):
    type: Literal["session.resume"]
    conversation_id: str
    supported_media_formats: list[str] | None = None


class SessionEnd(_Wire):
    type: Literal["session.end"]
    conversation_id: str | None = None
    reason_code: str | None = None
    reason: str | None = None


class ConnectionValidate(_Wire):
    type: Literal["connection.validate"]


class UserStreamStart(_Wire):
    type: Literal["userStream.start"]
    conversation_id: str | None = None


class UserStreamChunk(_Wire):
    type: Literal["userStream.chunk"]
    conversation_id: str | None = None
    audio_chunk: str


class UserStreamStop(_Wire):
    type: Literal["userStream.stop"]
    conversation_id: str | None = None


class Activity(_Wire):
    type: str = "event"
    name: str | None = None
    id: str | None = None
    timestamp: str | None = None
    language: str | None = None
    text: str | None = None
    value: Any = None
    parameters: dict[str, Any] | None = None


class Activities(_Wire):
    type: Literal["activities"]
    conversation_id: str | None = None
    activities: list[Activity] = Field(default_factory=list)


class UnknownMessage(_Wire):
    """A `type` this host does not know (a newer VAIC, agent-assist extras): ignored."""

    type: str
    conversation_id: str | None = None


# Inbound activity event names as the docs spell them ("receive DTMF" shows "DTMF", the only upper-case
# one). The docs never say whether VAIC's names are case-sensitive, and AudioCodes' own mock bot sends
# `"type": "Event"`: we compare case-insensitively (`event_name`), and send names exactly as documented.
EVENT_START: Final = "start"
EVENT_DTMF: Final = "DTMF"
EVENT_TRANSFER_STATUS: Final = "transferStatus"


def event_name(activity: Activity) -> str | None:
    """The event's name, casefolded: compare it with `EVENT_*.casefold()`. None if it is not an event."""
    if activity.type.casefold() != "event":
        return None
    return (activity.name or "").casefold()


class TransferStatusValue(_Wire):
    """The `value` of a `transferStatus` event activity, as VAIC sends it (its outcome becomes a
    TransferStatusReceived event)."""

    status: str
    reason_code: str | None = None
    reason: str | None = None


_KNOWN: Final = frozenset({"session.initiate", "session.resume", "session.end", "connection.validate",
                           "userStream.start", "userStream.chunk", "userStream.stop", "activities"})


def _tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if not isinstance(kind, str):
        return None  # not an object with a string `type`: a validation error
    return kind if kind in _KNOWN else "unknown"


InboundMessage = Annotated[
    Annotated[SessionInitiate, Tag("session.initiate")]
    | Annotated[SessionResume, Tag("session.resume")]
    | Annotated[SessionEnd, Tag("session.end")]
    | Annotated[ConnectionValidate, Tag("connection.validate")]
    | Annotated[UserStreamStart, Tag("userStream.start")]
    | Annotated[UserStreamChunk, Tag("userStream.chunk")]
    | Annotated[UserStreamStop, Tag("userStream.stop")]
    | Annotated[Activities, Tag("activities")]
    | Annotated[UnknownMessage, Tag("unknown")],
    Discriminator(_tag, custom_error_type="missing_type",
                  custom_error_message="a message must be a JSON object with a string `type`"),
]

INBOUND: Final[TypeAdapter[InboundMessage]] = TypeAdapter(InboundMessage)

# --- outbound (bot -> VAIC) ---------------------------------------------------------------------------


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def message(kind: str, **fields: Any) -> str:
    return _dump({"type": kind, **fields})


CONNECTION_VALIDATED: Final = message("connection.validated", success=True)
USER_STREAM_STARTED: Final = message("userStream.started")
USER_STREAM_STOPPED: Final = message("userStream.stopped")
SPEECH_STARTED: Final = message("userStream.speech.started")
SPEECH_STOPPED: Final = message("userStream.speech.stopped")
SPEECH_COMMITTED: Final = message("userStream.speech.committed")


def session_accepted(media_format: str) -> str:
    return message("session.accepted", mediaFormat=media_format)


def session_error(reason: str) -> str:
    return message("session.error", reason=reason)


def hypothesis(text: str) -> str:
    return message("userStream.speech.hypothesis", alternatives=[{"text": text}])


def recognition(text: str, confidence: float) -> str:
    return message("userStream.speech.recognition", alternatives=[{"text": text, "confidence": confidence}])


def play_stream_start(stream_id: str, media_format: str) -> str:
    return message("playStream.start", streamId=stream_id, mediaFormat=media_format)


def play_stream_stop(stream_id: str) -> str:
    return message("playStream.stop", streamId=stream_id)


def play_stream_chunk(stream_id: str, b64: str) -> str:
    # Per frame: our own stream id (digits) and base64 need no escaping.
    return '{"type":"playStream.chunk","streamId":"' + stream_id + '","audioChunk":"' + b64 + '"}'


def _event(name: str, params: dict[str, Any]) -> dict[str, Any]:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"type": "event", "name": name, "id": str(uuid.uuid4()), "timestamp": stamp, "activityParams": params}


def hangup_activity(reason: str) -> str:
    return message("activities", activities=[_event("hangup", {"hangupReason": reason or "bot hung up"})])


def transfer_activity(target: str, reason: str) -> str:
    params = {"transferTarget": transfer_target(target)}
    if reason:
        params["handoverReason"] = reason
    return message("activities", activities=[_event("transfer", params)])


# "Sending DTMF digits": only digits, * and #, up to 20; VAIC ignores a sendDtmf with anything else.
DTMF_DIGITS: Final = re.compile(r"[0-9*#]{1,20}")


def send_dtmf_activity(digits: str) -> str:
    """`sendDtmf` with `activityParams.dtmfDigits`; raises ValueError for digits VAIC would ignore."""
    if not DTMF_DIGITS.fullmatch(digits):
        raise ValueError("DTMF digits must be 1-20 of 0-9, * and #")
    return message("activities", activities=[_event("sendDtmf", {"dtmfDigits": digits})])


def transfer_target(target: str) -> str:
    """`tel:+E164` for a number; a `sip:`/`sips:`/`tel:` URI is passed as is."""
    target = target.strip()
    if target.lower().startswith(("sip:", "sips:", "tel:")):
        return target
    if target.startswith("+"):
        return "tel:" + target
    return target  # not a form we recognise: VAIC decides (the adapter logs it)
