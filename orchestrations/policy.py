"""The call_session's decisions as pure functions: no Durable context, no I/O, easy to test."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from orchestrations.models import CallSessionInput, EndReason, SessionState
from switchboard.session_models import CallPhase, TransferStatus

# The caller hears silence while media restarts: past a few seconds, longer waits only add silence after
# the media host is back (how soon a restarted host listens after a crash: docs/performance.md).
MAX_MEDIA_BACKOFF_S = 4
# Phases in which a call can still be handed over, transferred or restarted.
LIVE = frozenset({CallPhase.RINGING, CallPhase.CONNECTED, CallPhase.TRANSFERRING})


class Verdict(StrEnum):
    ALLOW = "allow"
    SAME_AGENT = "same_agent"  # nothing to do
    NEEDS_AUTH = "authentication required"
    ESCALATE = "escalate"  # over the limit, and there is a human queue to send the caller to
    LIMIT = "limit"  # over the limit, and no human queue


@dataclass(frozen=True)
class HandoffDecision:
    verdict: Verdict

    @property
    def denied(self) -> bool:
        return self.verdict in (Verdict.NEEDS_AUTH, Verdict.LIMIT)


def decide_handoff(session: SessionState, call: CallSessionInput, to_agent: str, *,
                   authenticated: bool = False) -> HandoffDecision:
    """Whether the handoff the media host made stands. Authentication is checked before the limit:
    a denied handoff never happened, so it does not count toward max_handoffs."""
    if to_agent == session.agent:
        return HandoffDecision(Verdict.SAME_AGENT)
    if to_agent in call.auth_required and not (session.authenticated or authenticated):
        return HandoffDecision(Verdict.NEEDS_AUTH)
    if session.handoffs >= call.max_handoffs:
        return HandoffDecision(Verdict.ESCALATE if call.human_queue else Verdict.LIMIT)
    return HandoffDecision(Verdict.ALLOW)


def media_backoff(restarts_used: int) -> timedelta:
    """1 s, 2 s, 4 s, then 4 s each: the wait before media restart number `restarts_used + 1`."""
    return timedelta(seconds=min(2 ** min(restarts_used, 10), MAX_MEDIA_BACKOFF_S))


def transfer_target(requested: str | None, human_queue: str | None) -> str | None:
    return (requested or "").strip() or human_queue


def transfer_context(attempt: int) -> str:
    """The operationContext of transfer attempt n: ACS echoes it, so late callbacks can be told apart."""
    return f"transfer-{attempt}"


def is_current_transfer(session: SessionState, data: dict[str, Any]) -> bool:
    """A transfer callback that belongs to the latest attempt (callbacks without a context are trusted)."""
    if session.transfer_attempts == 0:
        return False
    context = data.get("operationContext")
    return not context or context == transfer_context(session.transfer_attempts)


def resting_phase(session: SessionState) -> CallPhase:
    """Where a call goes back to when a transfer fails."""
    return CallPhase.CONNECTED if session.connected_at else CallPhase.RINGING


def end_reason_on_disconnect(session: SessionState) -> EndReason:
    if session.end_reason is not None:
        return session.end_reason  # we ended it (timeout, max duration ...): that is the reason
    if session.transfer is TransferStatus.ACCEPTED:
        return EndReason.TRANSFERRED
    return EndReason.DISCONNECTED


def participants(data: dict[str, Any], session: SessionState) -> tuple[int, int | None] | None:
    """(count, sequence number) from a ParticipantsUpdated, or None if it is older than what we have."""
    people = data.get("participants")
    if not isinstance(people, list):
        return None
    seq = data.get("sequenceNumber")
    seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
    if seq is not None and session.participants_seq is not None and seq <= session.participants_seq:
        return None  # ACS callbacks can arrive out of order
    return len(people), seq


def result_code(data: dict[str, Any]) -> dict[str, Any]:
    """The ACS resultInformation codes of a callback (never its free text)."""
    info = data.get("resultInformation")
    if not isinstance(info, dict):
        return {}
    return {k: info[k] for k in ("code", "subCode") if isinstance(info.get(k), int)}


def should_continue_as_new(handled_in_execution: int, bound: int, phase: CallPhase) -> bool:
    """Bound the history; never while hanging up (the grace timer is not carried over)."""
    return handled_in_execution >= bound and phase is not CallPhase.ENDING and phase is not CallPhase.ENDED


# --- time --------------------------------------------------------------------------------------------
def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def at(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- state, status and outcome -------------------------------------------------------------------
def initial_state(call: CallSessionInput, now: datetime) -> SessionState:
    return SessionState(
        agent=call.entry_agent,
        agents=[call.entry_agent],
        started_at=iso(now),
        connect_deadline=iso(now + timedelta(seconds=call.connect_timeout_s)),
        deadline=iso(now + timedelta(seconds=call.max_duration_s)),
    )


def custom_status(session: SessionState) -> dict[str, Any]:
    return {
        "state": session.state.value,
        "agent": session.agent,
        "handoffs": session.handoffs,
        "authenticated": session.authenticated,
        "media_restarts": session.media_restarts,
        "transfer": session.transfer.value if session.transfer else None,
        "media": session.media,
        "participants": session.participants,
    }


def outcome(call: CallSessionInput, session: SessionState, ended_at: datetime) -> dict[str, Any]:
    """The call's summary: written as the call record and returned as the orchestration output."""
    began = at(session.connected_at) if session.connected_at else None
    return {
        "call_id": call.call_id,
        "scenario": call.scenario,
        "end_reason": (session.end_reason or EndReason.DISCONNECTED).value,
        "end_detail": session.end_detail,
        "connected": began is not None,
        "started_at": session.started_at,
        "connected_at": session.connected_at,
        "ended_at": iso(ended_at),
        "talk_seconds": round((ended_at - began).total_seconds(), 3) if began else 0.0,
        "transfer": {
            "status": session.transfer.value if session.transfer else None,
            "target": session.transfer_target,
            "attempts": session.transfer_attempts,
        },
        "handoffs": session.handoffs,
        "agents": list(session.agents),
        "final_agent": session.agent,
        "authenticated": session.authenticated,
        "media_restarts": session.media_restarts,
        "participants": session.participants,
        "events_handled": session.events_handled,
        "executions": session.executions,
        "failures": list(session.failures),
    }
