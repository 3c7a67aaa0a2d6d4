"""Turn a call session from Redis into its call record.

`record_from_session` is pure (a CallState in, a CallRecord out); `build_record` reads the session.
The caller's number is never copied: the record keeps it masked and hashed, and every free-text field
(transcript, reasons, tool arguments, outcome) has the number replaced by its masked form, in case a
caller read it out or a tool echoed it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import statistics
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from switchboard.call_records.model import (
    Caller,
    CallRecord,
    FallbackEntry,
    HandoffEntry,
    Latency,
    Scalar,
    ToolCallEntry,
    TranscriptEntry,
    Transfer,
    TurnLatency,
)
from switchboard.logs import mask_phone
from switchboard.session_models import CallEvent, CallPhase, CallState, HandoffRecord, TransferStatus, Turn
from switchboard.session_store import SessionStore
from switchboard.settings import Settings

# Without SIGNING_SECRET (the embedded default) caller hashes use this constant. Phone numbers are few
# enough to enumerate, so such a hash only pseudonymises; with a secret it is a keyed hash.
DEFAULT_CALLER_SALT = b"switchboard/call-records/caller-hash/v1"

_TRANSFER_REQUESTED = {"transfer", "transfer_requested"}
_TRANSFER_ACCEPTED = {"transfer_accepted", "call_transferred"}
_HANGUP = {"hangup", "hangup_requested"}
ENGINE_FALLBACK = "engine_fallback"  # written by the media host (media_host/engines/call_fallbacks.py)

Scrub = Callable[[str], str]


def caller_salt(settings: Settings) -> bytes:
    """The key for caller hashes: derived from SIGNING_SECRET (never the secret itself), else a constant."""
    if settings.signing_secret is None:
        return DEFAULT_CALLER_SALT
    secret = settings.signing_secret.get_secret_value().encode()
    return hmac.new(secret, DEFAULT_CALLER_SALT, hashlib.sha256).digest()


def normalise_number(number: str) -> str:
    """`4:+14255550123` (an ACS raw id) or `+1 (425) 555-0123` -> `+14255550123`."""
    number = number.strip().removeprefix("4:")
    digits = re.sub(r"\D", "", number)
    return f"+{digits}" if number.startswith("+") else digits


def hash_caller(number: str | None, salt: bytes) -> str | None:
    """HMAC-SHA256 (a keyed, salted SHA-256) of the normalised number, hex; None without a number."""
    if not number or not re.sub(r"\D", "", number):
        return None
    return hmac.new(salt, normalise_number(number).encode(), hashlib.sha256).hexdigest()


def _scrubber(number: str | None) -> Scrub:
    """Replace the caller's number in free text, written with or without country code or separators."""
    digits = re.sub(r"\D", "", number or "")
    if len(digits) < 7:
        return lambda text: text
    sep = r"[\s().-]*"
    core, country = digits[-10:], digits[:-10]
    lead = rf"(?:\+?{sep.join(country)}{sep})?" if country else r"\+?"
    pattern = re.compile(rf"(?<!\d){lead}\(?{sep.join(core)}(?!\d)")
    masked = mask_phone(number)
    return lambda text: pattern.sub(masked, text)


def _scrub_value(value: Any, scrub: Scrub) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {str(k): _scrub_value(v, scrub) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v, scrub) for v in value]
    return value


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _agents_visited(state: CallState) -> list[str]:
    if state.handoffs:
        path = [state.handoffs[0].from_agent, *(h.to_agent for h in state.handoffs)]
    else:
        first = next((t.agent for t in state.turns if t.agent), None)
        path = [first or state.session.current_agent]
    # A->A is not a visit; A->B->A is (the caller went back).
    return [agent for i, agent in enumerate(path) if i == 0 or agent != path[i - 1]]


def _transcript(turns: list[Turn], scrub: Scrub) -> list[TranscriptEntry]:
    return [TranscriptEntry(speaker=t.speaker.value, text=scrub(t.text), agent=t.agent, interrupted=t.interrupted,
                            at=_at(t.at)) for t in turns]


def _tool_call(event: CallEvent, scrub: Scrub) -> ToolCallEntry:
    data = event.data
    elapsed, error, arguments = data.get("elapsed_ms"), data.get("error"), data.get("arguments")
    return ToolCallEntry(
        name=str(data.get("name") or "unknown"),
        ok=bool(data.get("ok")),
        agent=event.agent,
        elapsed_ms=float(elapsed) if isinstance(elapsed, int | float) else None,
        error_code=str(error) if error else None,
        arguments=_scrub_value(arguments, scrub) if isinstance(arguments, Mapping) else {},
        at=_at(event.at),
    )


def _fallback(event: CallEvent) -> FallbackEntry:
    data = event.data
    return FallbackEntry(stage=str(data.get("stage") or "unknown"), engine=str(data.get("from") or "unknown"),
                         to=_text(data.get("to")), reason=str(data.get("reason") or "error"),
                         error=_text(data.get("error")), mid_sentence=bool(data.get("mid_sentence")),
                         agent=event.agent, at=_at(event.at))


def _handoffs(handoffs: list[HandoffRecord], scrub: Scrub) -> list[HandoffEntry]:
    # The model-written summary is left out: it paraphrases the caller and may carry personal data.
    return [HandoffEntry(from_agent=h.from_agent, to_agent=h.to_agent, reason=scrub(h.reason), at=_at(h.at))
            for h in handoffs]


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _transfer(state: CallState, outcome: Mapping[str, Any], scrub: Scrub) -> Transfer:
    status, target, reason = TransferStatus.NONE, None, None
    for event in state.events:  # in order: a failed transfer may be followed by a new request
        if event.kind in _TRANSFER_REQUESTED:
            status = TransferStatus.REQUESTED
            target = _text(event.data.get("target")) or target
            reason = _text(event.data.get("reason")) or reason
        elif event.kind in _TRANSFER_ACCEPTED:
            status, target = TransferStatus.ACCEPTED, _text(event.data.get("target")) or target
        elif event.kind == "transfer_failed":
            status = TransferStatus.FAILED
    if state.session.status is CallPhase.TRANSFERRED:
        status = TransferStatus.ACCEPTED
    # The control plane hears ACS's CallTransferAccepted/Failed: its word is final. The call_session
    # orchestration reports {"transfer": {"status", "target", ...}} (orchestrations/policy.outcome).
    reported, reported_target = outcome.get("transfer"), outcome.get("transfer_target")
    if isinstance(reported, Mapping):
        reported_target = reported.get("target")
        reported = reported.get("status")
    if reported in (TransferStatus.ACCEPTED, TransferStatus.FAILED):
        status = TransferStatus(reported)
    target = _text(reported_target) or target
    return Transfer(status=status, target=target, reason=scrub(reason) if reason else None)


def _end_reason(state: CallState, outcome: Mapping[str, Any], transfer: Transfer, scrub: Scrub) -> str:
    reported = _text(outcome.get("end_reason")) or _text(outcome.get("reason"))
    if reported:
        return scrub(reported)
    if transfer.status is TransferStatus.ACCEPTED:
        return "transferred"
    hangups = [e for e in state.events if e.kind in _HANGUP]
    if hangups:
        return scrub(_text(hangups[-1].data.get("reason")) or "agent hung up")
    return "ended"


def _latency(turns: list[Turn]) -> Latency:
    figures = [TurnLatency(turn=i, agent=t.agent, ms=dict(t.latency_ms)) for i, t in enumerate(turns) if t.latency_ms]
    replies = [f.ms for f in figures if "eos_detected" in f.ms]
    stages = sorted({stage for ms in replies for stage in ms})
    p50 = {s: round(statistics.median(ms[s] for ms in replies if s in ms), 1) for s in stages}
    return Latency(turns=figures, p50=p50, replies=len(replies))


def _outcome(outcome: Mapping[str, Any], scrub: Scrub) -> dict[str, Scalar]:
    # Scalars only: the record is no place for nested payloads from the telephony side.
    return {str(k): scrub(v) if isinstance(v, str) else v for k, v in outcome.items()
            if v is None or isinstance(v, str | int | float | bool)}


def record_from_session(state: CallState, *, outcome: Mapping[str, Any] | None, ended_at: datetime,
                        ttl_days: int, salt: bytes) -> CallRecord:
    """The call record for a loaded session. Pure: the same inputs always give the same record."""
    session, outcome = state.session, outcome or {}
    scrub = _scrubber(session.caller)
    started_at = _at(session.created_at)
    ended_at = ended_at.replace(tzinfo=UTC) if ended_at.tzinfo is None else ended_at.astimezone(UTC)
    transfer = _transfer(state, outcome, scrub)
    return CallRecord(
        id=session.call_id,
        call_id=session.call_id,
        scenario=session.scenario,
        locale=session.locale,
        correlation_id=session.correlation_id,
        caller=Caller(masked=mask_phone(session.caller), hash=hash_caller(session.caller, salt)),
        called_number=session.callee,
        authenticated=session.customer is not None,
        started_at=started_at,
        ended_at=ended_at,
        duration_seconds=max(0.0, round((ended_at - started_at).total_seconds(), 3)),
        agents_visited=_agents_visited(state),
        transcript=_transcript(state.turns, scrub),
        tool_calls=[_tool_call(e, scrub) for e in state.events if e.kind == "tool_call"],
        handoffs=_handoffs(state.handoffs, scrub),
        fallbacks=[_fallback(e) for e in state.events if e.kind == ENGINE_FALLBACK],
        transfer=transfer,
        end_reason=_end_reason(state, outcome, transfer, scrub),
        outcome=_outcome(outcome, scrub),
        latency=_latency(state.turns),
        ttl=ttl_days * 86400,
    )


async def build_record(store: SessionStore, call_id: str, *, outcome: dict[str, Any] | None,
                       ended_at: datetime | None, ttl_days: int, salt: bytes) -> CallRecord | None:
    """Read the call's session from Redis and build its record; None when the session is gone."""
    state = await store.load(call_id)
    if state is None:
        return None
    return record_from_session(state, outcome=outcome, ended_at=ended_at or datetime.now(UTC),
                               ttl_days=ttl_days, salt=salt)
