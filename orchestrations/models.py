"""The call_session contract: its input, the state it carries across continue_as_new, and event payloads.

Everything here crosses a JSON boundary (Durable input/output, external events, activity payloads), so
unknown fields are ignored: an older or newer writer never breaks the orchestration.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from switchboard.session_models import CallPhase, TransferStatus

if TYPE_CHECKING:
    from agents.catalog import Scenario
    from switchboard.settings import Settings

ORCHESTRATION = "call_session"


class Event(StrEnum):
    """External events, raised with these exact names."""

    # ACS Call Automation callbacks (data: the CloudEvent `data` dict)
    CALL_CONNECTED = "CallConnected"
    CALL_DISCONNECTED = "CallDisconnected"
    MEDIA_STREAMING_STARTED = "MediaStreamingStarted"
    MEDIA_STREAMING_STOPPED = "MediaStreamingStopped"
    MEDIA_STREAMING_FAILED = "MediaStreamingFailed"
    CALL_TRANSFER_ACCEPTED = "CallTransferAccepted"
    CALL_TRANSFER_FAILED = "CallTransferFailed"
    PARTICIPANTS_UPDATED = "ParticipantsUpdated"
    # from the media host
    AGENT_HANDOFF = "AgentHandoff"
    AUTHENTICATED = "Authenticated"
    TRANSFER_REQUESTED = "TransferRequested"
    HANGUP_REQUESTED = "HangupRequested"


class Activity(StrEnum):
    """Activity function names."""

    TRANSFER_CALL = "transfer_call"
    HANG_UP_CALL = "hang_up_call"
    START_MEDIA_STREAMING = "start_media_streaming"
    NOTIFY_MEDIA_HOST = "notify_media_host"
    WRITE_CALL_RECORD = "write_call_record"
    CLEAN_SESSION = "clean_session"


class Notice(StrEnum):
    """`kind` of the CallEvents notify_media_host appends for the media host's agent to react to."""

    HANDOFF_DENIED = "handoff_denied"
    TRANSFER_FAILED = "transfer_failed"
    MEDIA_FAILED = "media_failed"


class EndReason(StrEnum):
    DISCONNECTED = "disconnected"  # the caller (or the network) ended the call
    TRANSFERRED = "transferred"
    CONNECT_TIMEOUT = "connect_timeout"
    MAX_DURATION = "max_duration"
    MEDIA_FAILED = "media_failed"
    AGENT_HANGUP = "agent_hangup"


class _Json(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SessionState(_Json):
    """What one execution hands to the next through continue_as_new (times are ISO 8601, UTC)."""

    state: CallPhase = CallPhase.RINGING
    agent: str
    agents: list[str] = Field(default_factory=list, description="Every agent the caller reached, in order")
    authenticated: bool = False
    handoffs: int = 0
    media_restarts: int = 0
    media: str | None = None  # streaming | stopped | failed | restarting
    participants: int | None = None
    participants_seq: int | None = None  # ACS sequenceNumber of that count
    transfer: TransferStatus | None = None
    transfer_target: str | None = None
    transfer_attempts: int = 0
    started_at: str
    connect_deadline: str | None = None
    deadline: str  # fixed once: max duration counts from the first execution
    connected_at: str | None = None
    events_handled: int = 0
    executions: int = 1
    end_reason: EndReason | None = None
    end_detail: str | None = None
    failures: list[str] = Field(default_factory=list, description="Activities that failed after their retries")


class CallSessionInput(_Json):
    """The orchestration input (a JSON dict). Instance id = call_id = the ACS correlationId."""

    call_id: str = Field(min_length=1)
    call_connection_id: str = Field(min_length=1)
    scenario: str
    entry_agent: str
    human_queue: str | None = None
    max_handoffs: int = Field(ge=0)
    auth_required: list[str] = Field(default_factory=list, description="Agents that need an authenticated caller")
    connect_timeout_s: int = Field(gt=0)
    max_duration_s: int = Field(gt=0)
    media_restart_attempts: int = Field(ge=0)
    state: SessionState | None = None

    @classmethod
    def for_call(cls, call_id: str, call_connection_id: str, scenario: Scenario,
                 settings: Settings) -> CallSessionInput:
        """The input for a new call: policy from the scenario (agents marked `requires_auth`), timers from settings."""
        return cls(
            call_id=call_id,
            call_connection_id=call_connection_id,
            scenario=scenario.name,
            entry_agent=scenario.spec.entry_agent,
            human_queue=scenario.spec.policy.human_queue,
            max_handoffs=scenario.spec.policy.max_handoffs,
            auth_required=sorted(a.name for a in scenario.agents.values() if a.spec.requires_auth),
            connect_timeout_s=settings.call_connect_timeout_seconds,
            max_duration_s=settings.call_max_duration_seconds,
            media_restart_attempts=settings.media_restart_attempts,
        )


# --- media host events ---------------------------------------------------------------------------
M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: dict[str, Any]) -> M | None:
    """An event payload, or None if it is malformed (then it is ignored: a bad event never ends a call)."""
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


class AgentHandoff(_Json):
    from_agent: str = ""
    to_agent: str = Field(min_length=1)
    reason: str = ""
    authenticated: bool = False


class TransferRequested(_Json):
    target: str | None = None
    reason: str = ""


class HangupRequested(_Json):
    reason: str = ""


# --- activity payloads ---------------------------------------------------------------------------
class CallRef(_Json):
    call_id: str = Field(min_length=1)
    call_connection_id: str = ""


class AcsCall(CallRef):
    call_connection_id: str = Field(min_length=1)


class TransferCall(AcsCall):
    target: str = Field(min_length=1)
    operation_context: str = ""


class NotifyMediaHost(CallRef):
    kind: str = Field(min_length=1)
    agent: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class WriteCallRecord(CallRef):
    outcome: dict[str, Any]
