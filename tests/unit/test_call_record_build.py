"""record_from_session: a call session in, its call record out (pure, no Redis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrations import policy
from orchestrations.models import CallSessionInput, EndReason, SessionState
from switchboard.call_records import CallRecord, caller_salt, hash_caller, record_from_session
from switchboard.call_records.build import DEFAULT_CALLER_SALT
from switchboard.session_models import (
    CallEvent,
    CallPhase,
    CallSession,
    CallState,
    HandoffRecord,
    Speaker,
    TransferStatus,
    Turn,
)
from switchboard.settings import load_settings

T0 = 1_714_555_800.0  # 2024-05-01T09:30:00Z
CALLER = "+14255550123"
SALT = b"test-salt"


def _state(*, turns: list[Turn] | None = None, handoffs: list[HandoffRecord] | None = None,
           events: list[CallEvent] | None = None, **session: Any) -> CallState:
    base: dict[str, Any] = {"call_id": "call-1", "scenario": "banking", "current_agent": "auth",
                            "caller": CALLER, "callee": "+18005550100", "created_at": T0}
    return CallState(session=CallSession(**(base | session)), turns=turns or [], handoffs=handoffs or [],
                     events=events or [])


def _record(state: CallState, outcome: dict[str, Any] | None = None, ended: float = T0 + 95.5) -> CallRecord:
    return record_from_session(state, outcome=outcome, ended_at=datetime.fromtimestamp(ended, UTC),
                               ttl_days=90, salt=SALT)


def _conversation() -> CallState:
    turns = [
        Turn(speaker=Speaker.AGENT, text="Hello, this is the bank.", agent="auth", at=T0 + 1,
             latency_ms={"first_audio_out": 900.0, "total": 900.0}),  # greeting: no eos_detected
        Turn(speaker=Speaker.CALLER, text="My card is lost", at=T0 + 5),
        Turn(speaker=Speaker.AGENT, text="Let me verify you", agent="auth", at=T0 + 6,
             latency_ms={"eos_detected": 300.0, "total": 700.0}),
        Turn(speaker=Speaker.CALLER, text="Stop", at=T0 + 8),
        Turn(speaker=Speaker.AGENT, text="I'm putting you", agent="cards", at=T0 + 9, interrupted=True,
             latency_ms={"eos_detected": 320.0, "total": 900.0, "overhead": 40.0}),
        Turn(speaker=Speaker.AGENT, text="Card blocked", agent="cards", at=T0 + 20,
             latency_ms={"eos_detected": 310.0, "total": 800.0}),
    ]
    handoffs = [HandoffRecord(from_agent="auth", to_agent="cards", reason="lost card", summary="Jane lost it",
                              at=T0 + 7)]
    events = [
        CallEvent(kind="tool_call", agent="auth", at=T0 + 6.5,
                  data={"name": "verify_customer", "ok": True, "arguments": {"pin": "***"}, "elapsed_ms": 12.5,
                        "error": None}),
        CallEvent(kind="barge_in", agent="cards", at=T0 + 8, data={"heard": "I'm putting you"}),
        CallEvent(kind="tool_call", agent="cards", at=T0 + 15,
                  data={"name": "block_card", "ok": False, "arguments": {"last4": "1234"}, "elapsed_ms": 3,
                        "error": "not_found"}),
    ]
    return _state(turns=turns, handoffs=handoffs, events=events, current_agent="cards",
                  customer={"id": "c-1"}, correlation_id="corr-1")


def test_identity_times_and_ttl() -> None:
    record = _record(_conversation())
    assert (record.id, record.call_id, record.scenario, record.correlation_id) == ("call-1",) * 2 + (
        "banking", "corr-1")
    assert record.called_number == "+18005550100"
    assert record.authenticated
    assert record.started_at == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    assert record.duration_seconds == 95.5
    assert record.ttl == 90 * 86400
    assert record.schema_version == 1


def test_transcript_keeps_order_speakers_and_interruptions() -> None:
    record = _record(_conversation())
    assert [(t.speaker, t.text) for t in record.transcript] == [
        ("agent", "Hello, this is the bank."), ("caller", "My card is lost"), ("agent", "Let me verify you"),
        ("caller", "Stop"), ("agent", "I'm putting you"), ("agent", "Card blocked")]
    assert [t.agent for t in record.transcript] == ["auth", None, "auth", None, "cards", "cards"]
    assert [t.interrupted for t in record.transcript] == [False, False, False, False, True, False]
    assert record.transcript[1].at == datetime.fromtimestamp(T0 + 5, UTC)


def test_agents_visited_in_order_with_returns() -> None:
    assert _record(_conversation()).agents_visited == ["auth", "cards"]
    back_and_forth = _state(handoffs=[HandoffRecord(from_agent="auth", to_agent="cards", at=T0),
                                      HandoffRecord(from_agent="cards", to_agent="auth", at=T0 + 1)])
    assert _record(back_and_forth).agents_visited == ["auth", "cards", "auth"]
    assert _record(_state(current_agent="reception")).agents_visited == ["reception"]


def test_tool_calls_and_handoffs() -> None:
    record = _record(_conversation())
    first, second = record.tool_calls
    assert (first.name, first.ok, first.elapsed_ms, first.error_code, first.agent) == (
        "verify_customer", True, 12.5, None, "auth")
    assert first.arguments == {"pin": "***"}  # as the registry masked it
    assert (second.name, second.ok, second.elapsed_ms, second.error_code) == ("block_card", False, 3.0, "not_found")
    [handoff] = record.handoffs
    assert (handoff.from_agent, handoff.to_agent, handoff.reason) == ("auth", "cards", "lost card")
    assert "Jane" not in record.to_json()  # the model-written summary is not kept


def test_latency_per_turn_and_p50_over_replies() -> None:
    latency = _record(_conversation()).latency
    assert [t.turn for t in latency.turns] == [0, 2, 4, 5]
    assert latency.turns[2].ms == {"eos_detected": 320.0, "total": 900.0, "overhead": 40.0}
    assert latency.replies == 3  # the greeting is not a reply
    assert latency.p50 == {"eos_detected": 310.0, "total": 800.0, "overhead": 40.0}
    assert _record(_state()).latency.p50 == {}


@pytest.mark.parametrize(("events", "status", "outcome", "expected"), [
    ([], CallPhase.ENDED, None, (TransferStatus.NONE, None, "ended")),
    ([CallEvent(kind="transfer", data={"target": "+18005550199", "reason": "caller asked"})], CallPhase.ENDED,
     None, (TransferStatus.REQUESTED, "+18005550199", "ended")),
    ([CallEvent(kind="transfer_requested", data={"target": "+18005550199", "reason": "x"})],
     CallPhase.TRANSFERRED, None, (TransferStatus.ACCEPTED, "+18005550199", "transferred")),
    ([CallEvent(kind="transfer", data={"target": "+18005550199"}), CallEvent(kind="transfer_failed")],
     CallPhase.ENDED, None, (TransferStatus.FAILED, "+18005550199", "ended")),
    ([CallEvent(kind="transfer", data={"target": "q"})], CallPhase.ENDED,
     {"transfer": "accepted", "reason": "CallTransferAccepted"}, (TransferStatus.ACCEPTED, "q",
                                                                  "CallTransferAccepted")),
    ([CallEvent(kind="hangup", data={"reason": "caller said goodbye"})], CallPhase.ENDED, None,
     (TransferStatus.NONE, None, "caller said goodbye")),
])
def test_transfer_outcome_and_end_reason(events: list[CallEvent], status: CallPhase,
                                         outcome: dict[str, Any] | None,
                                         expected: tuple[TransferStatus, str | None, str]) -> None:
    record = _record(_state(events=events, status=status), outcome)
    assert (record.transfer.status, record.transfer.target, record.end_reason) == expected


@pytest.mark.parametrize("status", [TransferStatus.ACCEPTED, TransferStatus.FAILED])
def test_the_orchestrations_transfer_outcome_is_final(status: TransferStatus) -> None:
    """The record takes the transfer outcome in the shape call_session writes it (policy.outcome)."""
    started = datetime.fromtimestamp(T0, UTC)
    call = CallSessionInput(call_id="call-1", call_connection_id="conn-1", scenario="banking", entry_agent="auth",
                            max_handoffs=3, connect_timeout_s=45, max_duration_s=3600, media_restart_attempts=2)
    session = SessionState(agent="auth", started_at=policy.iso(started), deadline=policy.iso(started),
                           transfer=status, transfer_target="+18005550199", transfer_attempts=1,
                           end_reason=EndReason.TRANSFERRED if status is TransferStatus.ACCEPTED else None)
    outcome = policy.outcome(call, session, datetime.fromtimestamp(T0 + 60, UTC))
    asked = CallEvent(kind="transfer_requested", data={"target": "the human queue", "reason": "caller asked"})
    record = _record(_state(events=[asked], status=CallPhase.ENDED), outcome)
    assert (record.transfer.status, record.transfer.target) == (status, "+18005550199")


def test_outcome_keeps_scalars_only() -> None:
    record = _record(_state(), {"reason": "CallDisconnected", "code": 0, "nested": {"a": 1}, "ok": True})
    assert record.outcome == {"reason": "CallDisconnected", "code": 0, "ok": True}


def test_caller_is_masked_and_hashed_never_raw() -> None:
    spoken = Turn(speaker=Speaker.CALLER, text="call me back on (425) 555-0123 or +1 425 555 0123", at=T0)
    tool = CallEvent(kind="tool_call", data={"name": "lookup", "ok": True, "arguments": {"phone": "14255550123"}})
    record = _record(_state(turns=[spoken], events=[tool]), {"reason": f"caller {CALLER} hung up"})
    assert record.caller.masked == "+1***23"
    assert record.caller.hash == hash_caller(CALLER, SALT)
    assert record.caller.hash == hash_caller("4:+14255550123", SALT)  # the ACS raw id is the same caller
    assert record.caller.hash != hash_caller(CALLER, b"other salt")
    text = record.to_json()
    assert "4255550123" not in text
    assert "555-0123" not in text
    assert "425 555 0123" not in text
    assert record.transcript[0].text == "call me back on +1***23 or +1***23"
    assert record.called_number == "+18005550100"  # our number is kept


def test_unknown_caller() -> None:
    record = _record(_state(caller=None))
    assert (record.caller.masked, record.caller.hash) == ("", None)


def test_caller_salt_comes_from_the_signing_secret() -> None:
    assert caller_salt(load_settings(signing_secret=None)) == DEFAULT_CALLER_SALT
    keyed = caller_salt(load_settings(signing_secret="s3cret-0123456789"))
    assert keyed != DEFAULT_CALLER_SALT
    assert b"s3cret" not in keyed


def test_document_is_camel_case_and_round_trips() -> None:
    record = _record(_conversation())
    doc = record.to_document()
    assert doc["id"] == doc["callId"] == "call-1"
    assert {"startedAt", "endedAt", "durationSeconds", "agentsVisited", "toolCalls", "endReason",
            "schemaVersion", "ttl", "calledNumber"} <= doc.keys()
    assert doc["startedAt"] == "2024-05-01T09:30:00.000000Z"
    assert doc["toolCalls"][1]["errorCode"] == "not_found"
    assert doc["handoffs"][0]["fromAgent"] == "auth"
    # Cosmos DB system fields are dropped on read.
    assert CallRecord.from_document(doc | {"_etag": "x", "_ts": 1}) == record
    assert CallRecord.from_json(json.dumps(doc)) == record
