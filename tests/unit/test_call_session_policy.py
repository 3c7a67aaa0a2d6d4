"""The call_session's pure decisions (orchestrations/policy.py) and its input contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents import load_catalog
from orchestrations import policy
from orchestrations.models import CallSessionInput, EndReason, SessionState
from orchestrations.policy import Verdict
from switchboard.session_models import CallPhase, TransferStatus
from switchboard.settings import PROJECT_ROOT, Settings

NOW = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)


def make_input(**overrides: object) -> CallSessionInput:
    fields: dict[str, object] = {
        "call_id": "call-1", "call_connection_id": "conn-1", "scenario": "banking", "entry_agent": "auth",
        "human_queue": "+18005550199", "max_handoffs": 2, "auth_required": ["account", "cards"],
        "connect_timeout_s": 45, "max_duration_s": 3600, "media_restart_attempts": 3,
    }
    return CallSessionInput.model_validate({**fields, **overrides})


def make_state(**overrides: object) -> SessionState:
    return policy.initial_state(make_input(), NOW).model_copy(update=overrides)


# --- handoffs --------------------------------------------------------------------------------------
def test_a_handoff_to_an_open_agent_is_allowed() -> None:
    assert policy.decide_handoff(make_state(), make_input(), "loans").verdict is Verdict.ALLOW


def test_a_handoff_to_the_current_agent_changes_nothing() -> None:
    assert policy.decide_handoff(make_state(), make_input(), "auth").verdict is Verdict.SAME_AGENT


def test_an_agent_that_needs_authentication_is_denied_to_an_unverified_caller() -> None:
    decision = policy.decide_handoff(make_state(), make_input(), "account")
    assert decision.verdict is Verdict.NEEDS_AUTH
    assert decision.verdict.value == "authentication required"
    assert decision.denied


@pytest.mark.parametrize(("in_state", "in_event"), [(True, False), (False, True)])
def test_an_authenticated_caller_reaches_protected_agents(in_state: bool, in_event: bool) -> None:
    decision = policy.decide_handoff(make_state(authenticated=in_state), make_input(), "account",
                                     authenticated=in_event)
    assert decision.verdict is Verdict.ALLOW


def test_over_the_limit_the_caller_is_escalated_to_the_human_queue() -> None:
    decision = policy.decide_handoff(make_state(handoffs=2), make_input(), "loans")
    assert decision.verdict is Verdict.ESCALATE
    assert not decision.denied


def test_over_the_limit_without_a_human_queue_the_handoff_is_denied() -> None:
    decision = policy.decide_handoff(make_state(handoffs=2), make_input(human_queue=None), "loans")
    assert decision.verdict is Verdict.LIMIT
    assert decision.verdict.value == "limit"
    assert decision.denied


def test_authentication_is_checked_before_the_limit() -> None:
    # A denied handoff never happened, so it must not be escalated as one too many.
    assert policy.decide_handoff(make_state(handoffs=2), make_input(), "cards").verdict is Verdict.NEEDS_AUTH


def test_a_limit_of_zero_escalates_the_first_handoff() -> None:
    assert policy.decide_handoff(make_state(), make_input(max_handoffs=0), "loans").verdict is Verdict.ESCALATE


# --- media, transfers, participants ----------------------------------------------------------------
def test_media_restarts_back_off_exponentially_up_to_a_cap() -> None:
    waits = [policy.media_backoff(n).total_seconds() for n in range(8)]
    assert waits == [1, 2, 4, 4, 4, 4, 4, 4]
    assert policy.media_backoff(10_000) == timedelta(seconds=policy.MAX_MEDIA_BACKOFF_S)


def test_transfer_target_is_the_requested_one_else_the_human_queue() -> None:
    assert policy.transfer_target("+18005550100", "+18005550199") == "+18005550100"
    assert policy.transfer_target(None, "+18005550199") == "+18005550199"
    assert policy.transfer_target("  ", "+18005550199") == "+18005550199"
    assert policy.transfer_target(None, None) is None


def test_transfer_callbacks_are_matched_to_the_latest_attempt() -> None:
    assert not policy.is_current_transfer(make_state(), {})  # no transfer was ever requested
    second = make_state(transfer_attempts=2)
    assert policy.transfer_context(2) == "transfer-2"
    assert policy.is_current_transfer(second, {"operationContext": "transfer-2"})
    assert policy.is_current_transfer(second, {})  # ACS sends no context when none was given
    assert not policy.is_current_transfer(second, {"operationContext": "transfer-1"})  # a late one


def test_a_failed_transfer_returns_to_where_the_call_was() -> None:
    assert policy.resting_phase(make_state(connected_at=policy.iso(NOW))) is CallPhase.CONNECTED
    assert policy.resting_phase(make_state()) is CallPhase.RINGING


def test_participant_counts_follow_the_sequence_number() -> None:
    state = make_state()
    assert policy.participants({"participants": [{}, {}], "sequenceNumber": 3}, state) == (2, 3)
    newer = make_state(participants=2, participants_seq=3)
    assert policy.participants({"participants": [{}], "sequenceNumber": 2}, newer) is None  # out of order
    assert policy.participants({"participants": [{}], "sequenceNumber": 4}, newer) == (1, 4)
    assert policy.participants({"participants": [{}]}, newer) == (1, None)
    assert policy.participants({"participants": "nobody"}, state) is None


def test_result_codes_never_carry_free_text() -> None:
    data = {"resultInformation": {"code": 500, "subCode": 7000, "message": "something about +1555"}}
    assert policy.result_code(data) == {"code": 500, "subCode": 7000}
    assert policy.result_code({"resultInformation": "odd"}) == {}
    assert policy.result_code({}) == {}


# --- the end ---------------------------------------------------------------------------------------
def test_the_end_reason_of_a_disconnect() -> None:
    assert policy.end_reason_on_disconnect(make_state()) is EndReason.DISCONNECTED
    assert policy.end_reason_on_disconnect(make_state(transfer=TransferStatus.ACCEPTED)) is EndReason.TRANSFERRED
    ours = make_state(end_reason=EndReason.MAX_DURATION, transfer=TransferStatus.ACCEPTED)
    assert policy.end_reason_on_disconnect(ours) is EndReason.MAX_DURATION


def test_continue_as_new_once_the_bound_is_reached_but_never_while_hanging_up() -> None:
    assert not policy.should_continue_as_new(49, 50, CallPhase.CONNECTED)
    assert policy.should_continue_as_new(50, 50, CallPhase.CONNECTED)
    assert policy.should_continue_as_new(60, 50, CallPhase.TRANSFERRING)
    assert not policy.should_continue_as_new(60, 50, CallPhase.ENDING)


def test_the_first_state_fixes_both_deadlines() -> None:
    state = policy.initial_state(make_input(), NOW)
    assert state.state is CallPhase.RINGING
    assert state.agent == "auth"
    assert state.agents == ["auth"]
    assert policy.at(state.connect_deadline or "") == NOW + timedelta(seconds=45)
    assert policy.at(state.deadline) == NOW + timedelta(hours=1)
    assert policy.at(policy.iso(NOW)) == NOW


def test_custom_status_has_the_documented_keys() -> None:
    status = policy.custom_status(make_state(transfer=TransferStatus.PENDING, participants=2))
    assert status == {"state": "ringing", "agent": "auth", "handoffs": 0, "authenticated": False,
                      "media_restarts": 0, "transfer": "pending", "media": None, "participants": 2}


def test_the_outcome_summarises_the_call() -> None:
    state = make_state(connected_at=policy.iso(NOW + timedelta(seconds=2)), handoffs=1, agents=["auth", "loans"],
                       agent="loans", end_reason=EndReason.AGENT_HANGUP, transfer_attempts=1,
                       transfer=TransferStatus.FAILED, transfer_target="+18005550199")
    outcome = policy.outcome(make_input(), state, NOW + timedelta(seconds=62))
    assert outcome["end_reason"] == "agent_hangup"
    assert outcome["connected"] is True
    assert outcome["talk_seconds"] == 60.0
    assert outcome["transfer"] == {"status": "failed", "target": "+18005550199", "attempts": 1}
    assert outcome["agents"] == ["auth", "loans"]
    assert outcome["final_agent"] == "loans"
    never = policy.outcome(make_input(), make_state(), NOW + timedelta(seconds=45))
    assert never["connected"] is False
    assert never["talk_seconds"] == 0.0
    assert never["end_reason"] == "disconnected"


# --- the input ----------------------------------------------------------------------------------------
def test_the_input_for_a_call_comes_from_the_scenario_and_settings() -> None:
    banking = load_catalog(PROJECT_ROOT / "agents" / "definitions").scenario("banking")
    settings = Settings(call_connect_timeout_seconds=30, call_max_duration_seconds=600, media_restart_attempts=2)
    call = CallSessionInput.for_call("call-9", "conn-9", banking, settings)
    assert call.entry_agent == "auth"
    assert call.human_queue == "+18005550199"
    assert call.max_handoffs == 8
    assert call.auth_required == ["account", "cards", "fraud", "loans"]  # the agents marked requires_auth
    assert (call.connect_timeout_s, call.max_duration_s, call.media_restart_attempts) == (30, 600, 2)
    assert call.state is None
    assert CallSessionInput.model_validate(call.model_dump(mode="json")) == call  # JSON round trip


def test_the_input_ignores_unknown_fields_and_rejects_bad_ones() -> None:
    assert make_input(something_new=1).call_id == "call-1"
    with pytest.raises(ValueError, match="max_handoffs"):
        make_input(max_handoffs=-1)
