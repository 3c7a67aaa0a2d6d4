"""The call record: one document per call, written once the call has ended.

The stored document uses camelCase field names (`callId`, `startedAt`, `toolCalls`...), the Cosmos DB
convention and what the partition key path `/callId` names. Python code uses the snake_case attribute
names; `to_document()` and `from_document()` convert. Keys *inside* free-form maps (latency figures,
tool arguments, outcome details) are data, not schema, and are stored as they come.

Datetimes are stored in UTC with a fixed width (`2024-05-01T09:30:00.000000Z`), so string order is
time order in both stores (`recent()` sorts on `startedAt`).

The caller's number is PII: a record holds it only masked (`mask_phone`) and as a keyed SHA-256 hash,
which lets records of one caller be joined without storing the number.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from switchboard.session_models import TransferStatus

SCHEMA_VERSION = 1


def _to_utc(value: datetime) -> datetime:
    # A naive datetime is taken as UTC: every timestamp in the session is epoch seconds.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_to_utc),
    PlainSerializer(lambda v: v.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), return_type=str, when_used="json"),
]

Scalar = str | int | float | bool | None


class _Doc(BaseModel):
    # Cosmos adds system fields (_rid, _etag, _ts...) to every document: they are dropped on read.
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True,
        extra="ignore",
    )


class Caller(_Doc):
    masked: str = ""  # e.g. "+1***23": country prefix and last two digits
    hash: str | None = None  # HMAC-SHA256 of the normalised number (hex); None when the number is unknown


class TranscriptEntry(_Doc):
    speaker: str  # caller | agent | system
    text: str
    agent: str | None = None
    interrupted: bool = False
    at: UtcDatetime


class ToolCallEntry(_Doc):
    name: str
    ok: bool
    agent: str | None = None
    elapsed_ms: float | None = None
    error_code: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)  # as the tool registry masked them
    at: UtcDatetime


class HandoffEntry(_Doc):
    from_agent: str
    to_agent: str
    reason: str = ""
    at: UtcDatetime


class FallbackEntry(_Doc):
    """An engine the call left for the next one (session event `engine_fallback`, media_host/engines/base.py)."""

    stage: str  # stt | chat | tts
    engine: str  # the engine left
    to: str | None = None  # the engine that took over; None: none was left
    reason: str  # error | timeout | down (skipped: it had failed shortly before)
    error: str | None = None  # the exception's type name
    mid_sentence: bool = False  # TTS: the rest of a sentence was not said; the next one came from `to`
    agent: str | None = None
    at: UtcDatetime


class Transfer(_Doc):
    status: TransferStatus = TransferStatus.NONE
    target: str | None = None
    reason: str | None = None


class TurnLatency(_Doc):
    turn: int  # index into `transcript`
    agent: str | None = None
    ms: dict[str, float] = Field(default_factory=dict)  # stage -> milliseconds (eos_detected, total, ...)


class Latency(_Doc):
    turns: list[TurnLatency] = Field(default_factory=list)
    # Median per stage over the replies to the caller (turns with `eos_detected`); a greeting answers
    # no speech, so its clock starts at the call and would skew the figures.
    p50: dict[str, float] = Field(default_factory=dict)
    replies: int = 0  # how many turns the p50 is over


class CallRecord(_Doc):
    id: str  # the call id
    call_id: str  # the partition key; same value as `id`, so one call is one logical partition
    schema_version: int = SCHEMA_VERSION
    scenario: str
    locale: str = "en-US"
    correlation_id: str | None = None
    caller: Caller = Field(default_factory=Caller)
    called_number: str | None = None  # our own number, not PII
    authenticated: bool = False
    started_at: UtcDatetime
    ended_at: UtcDatetime
    duration_seconds: float
    agents_visited: list[str] = Field(default_factory=list)
    transcript: list[TranscriptEntry] = Field(default_factory=list)
    tool_calls: list[ToolCallEntry] = Field(default_factory=list)
    handoffs: list[HandoffEntry] = Field(default_factory=list)
    fallbacks: list[FallbackEntry] = Field(default_factory=list)  # engines that failed during the call
    transfer: Transfer = Field(default_factory=Transfer)
    end_reason: str = "ended"
    outcome: dict[str, Scalar] = Field(default_factory=dict)  # what the control plane reported, scalars only
    latency: Latency = Field(default_factory=Latency)
    ttl: int = Field(ge=1)  # seconds: Cosmos DB expires the document this long after its last write

    def to_document(self) -> dict[str, Any]:
        """The JSON document as stored (camelCase keys)."""
        return self.model_dump(mode="json", by_alias=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> CallRecord:
        return cls.model_validate(doc)

    @classmethod
    def from_json(cls, raw: str | bytes) -> CallRecord:
        return cls.model_validate_json(raw)
