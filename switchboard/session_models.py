"""The call session as both runtimes see it: pydantic models serialised as JSON in Redis."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def now() -> float:
    return time.time()


class Speaker(StrEnum):
    CALLER = "caller"
    AGENT = "agent"
    SYSTEM = "system"


class CallPhase(StrEnum):
    """How far a call has got. One enum for both runtimes: the session's `status` here, and the call_session
    orchestration's `state` (its custom status, which GET /api/calls/{id} shows). The values are stored
    (Redis, Durable history) and served: never rename one.

    ringing -> connected -> transferring -> transferred -> ended; a live phase -> ending -> ended.
    """

    RINGING = "ringing"  # answered, not yet connected
    CONNECTED = "connected"
    TRANSFERRING = "transferring"
    TRANSFERRED = "transferred"  # accepted by the target: our leg is about to drop
    ENDING = "ending"  # we hung up and wait for the disconnect (the orchestration's view)
    ENDED = "ended"


class TransferStatus(StrEnum):
    """How a call's transfer went, in the order it goes: the orchestration's `transfer` (None until it asks
    for one) and the call record's `transfer.status`. Stored and served, like CallPhase."""

    NONE = "none"  # no transfer was asked for (call records)
    REQUESTED = "requested"  # an agent asked for one; nothing heard from the telephony side (call records)
    PENDING = "pending"  # the control plane asked ACS; CallTransferAccepted/Failed not in yet (orchestration)
    ACCEPTED = "accepted"
    FAILED = "failed"


class _Model(BaseModel):
    # Unknown fields are kept out, so an older writer never breaks a newer reader.
    model_config = ConfigDict(extra="ignore")


class Turn(_Model):
    """One utterance. For an interrupted agent turn, `text` is only what the caller heard."""

    speaker: Speaker
    text: str
    agent: str | None = None
    at: float = Field(default_factory=now)
    interrupted: bool = False
    latency_ms: dict[str, float] = Field(default_factory=dict)


class HandoffRecord(_Model):
    from_agent: str
    to_agent: str
    reason: str = ""
    summary: str = ""
    at: float = Field(default_factory=now)


class CallEvent(_Model):
    """Anything else worth keeping in order: tool calls, barge-ins, transfers, DTMF, errors."""

    kind: str
    agent: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    at: float = Field(default_factory=now)


class CallSession(_Model):
    """The mutable core of a call. Turns, handoffs and events are stored beside it, append-only."""

    call_id: str
    scenario: str
    current_agent: str
    correlation_id: str | None = None
    call_connection_id: str | None = None
    caller: str | None = None  # PII: never logged; use switchboard.logs.mask_phone
    callee: str | None = None
    locale: str = "en-US"
    status: CallPhase = CallPhase.RINGING
    customer: dict[str, Any] | None = None  # set once the caller is authenticated
    greeted: bool = False  # a resumed socket must not greet again
    context: dict[str, Any] = Field(default_factory=dict)  # agent working state (e.g. auth attempts)
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)


class CallState(_Model):
    """A whole call as loaded for a (re)connecting socket or a call record."""

    session: CallSession
    turns: list[Turn] = Field(default_factory=list)
    handoffs: list[HandoffRecord] = Field(default_factory=list)
    events: list[CallEvent] = Field(default_factory=list)
