"""call_session on the real azure-functions-durable replay engine, its activities, and its registration.

Each orchestration test drives `Replay` (local_stack/durable/replay.py): the orchestrator runs on a
fabricated history, the test checks what it decided (activities, timers, custom status, output), then
appends what happened next and runs it again, as the Durable extension would.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest

import orchestrations
from local_stack.durable.replay import EPOCH, Replay, Step
from orchestrations import activities
from orchestrations.call_session import EVENTS_PER_EXECUTION, HANGUP_GRACE, call_session
from orchestrations.models import CallSessionInput
from switchboard.session_models import CallEvent, CallSession
from switchboard.session_store import SessionStore

QUEUE = "+18005550199"
CONNECTED = {"callConnectionId": "conn-1", "correlationId": "call-1", "operationContext": None,
             "resultInformation": {"code": 200, "subCode": 0, "message": ""}}


def make_input(**overrides: Any) -> dict[str, Any]:
    fields = {"call_id": "call-1", "call_connection_id": "conn-1", "scenario": "banking", "entry_agent": "auth",
              "human_queue": QUEUE, "max_handoffs": 2, "auth_required": ["account", "cards"],
              "connect_timeout_s": 45, "max_duration_s": 3600, "media_restart_attempts": 2}
    return {**fields, **overrides}


def start(**overrides: Any) -> tuple[Replay, Step]:
    call = Replay(call_session, make_input(**overrides))
    return call, call.run()


def connected(**overrides: Any) -> Replay:
    call, _ = start(**overrides)
    call.raise_event("CallConnected", CONNECTED)
    assert call.run().status["state"] == "connected"
    return call


def finish(call: Replay, *, end_reason: str) -> dict[str, Any]:
    """From the decision to end: the record is written, then the session cleaned; returns the output."""
    step = call.run()
    [(name, payload)] = step.activities
    assert name == "write_call_record"
    assert payload["outcome"]["end_reason"] == end_reason
    assert step.status["state"] == "ended"
    call.complete("write_call_record", {"ok": True})
    assert call.run().activities == [("clean_session", {"call_id": "call-1", "call_connection_id": "conn-1"})]
    call.complete("clean_session", {"ok": True})
    done = call.run()
    assert done.done
    assert done.output["record_written"] is True
    assert done.output["session_cleaned"] is True
    assert {k: v for k, v in done.output.items() if k not in ("record_written", "session_cleaned")} \
        == payload["outcome"]
    return dict(done.output)


def timers_cancelled(step: Step) -> bool:
    return all(a.get("isCanceled") for a in _all_actions(step) if a["actionType"] == 5)


def _all_actions(step: Step) -> list[dict[str, Any]]:
    from local_stack.durable.history import flatten

    return flatten(step.state["actions"])


# --- the call's life ------------------------------------------------------------------------------
def test_happy_path_connect_then_disconnect_writes_the_record_and_cleans_up() -> None:
    call, first = start()
    assert first.timers == [EPOCH + timedelta(hours=1), EPOCH + timedelta(seconds=45)]  # max duration, connect
    assert first.activities == []
    assert first.status == {"state": "ringing", "agent": "auth", "handoffs": 0, "authenticated": False,
                            "media_restarts": 0, "transfer": None, "media": None, "participants": None}
    call.raise_event("CallConnected", CONNECTED, after=2)
    call.raise_event("MediaStreamingStarted", {"mediaStreamingUpdate": {"mediaStreamingStatus": "started"}})
    call.raise_event("ParticipantsUpdated", {"participants": [{}, {}], "sequenceNumber": 1})
    step = call.run()
    assert step.activities == []
    assert step.status["state"] == "connected"
    assert step.status["media"] == "streaming"
    assert step.status["participants"] == 2
    call.raise_event("CallDisconnected", {"callConnectionId": "conn-1"}, after=58)
    output = finish(call, end_reason="disconnected")
    assert output["connected"] is True
    assert output["talk_seconds"] == 58.0
    assert output["events_handled"] == 4
    assert output["agents"] == ["auth"]
    assert output["failures"] == []


def test_the_end_cancels_every_timer() -> None:
    call = connected()
    call.raise_event("CallDisconnected", {})
    call.run()
    call.complete("write_call_record", {"ok": True})
    call.run()
    call.complete("clean_session", {"ok": True})
    assert timers_cancelled(call.run())


def test_connect_timeout_hangs_up_and_writes_the_record() -> None:
    call, _ = start()
    assert call.fire_timer(EPOCH + timedelta(seconds=45))
    step = call.run()
    assert step.activity_names == ["hang_up_call"]
    assert step.status["state"] == "ending"
    call.complete("hang_up_call", {"ok": True})
    step = call.run()
    assert step.timers == [call.now + HANGUP_GRACE]  # it waits a little for the disconnect
    call.raise_event("CallDisconnected", {})
    output = finish(call, end_reason="connect_timeout")
    assert output["connected"] is False


def test_connect_timeout_with_the_call_already_gone_ends_at_once() -> None:
    call, _ = start()
    call.fire_timer(EPOCH + timedelta(seconds=45))
    call.run()
    call.fail("hang_up_call", "call not found")  # every retry fails
    output = finish(call, end_reason="connect_timeout")
    assert output["failures"] == ["hang_up_call"]


def test_after_our_hang_up_the_grace_timer_ends_the_call_without_a_disconnect() -> None:
    call = connected()
    call.raise_event("HangupRequested", {"reason": "caller said goodbye"})
    assert call.run().activity_names == ["hang_up_call"]
    call.complete("hang_up_call", {"ok": True})
    call.run()
    call.fire_timer(call.now + HANGUP_GRACE)
    output = finish(call, end_reason="agent_hangup")
    assert output["end_detail"] == "caller said goodbye"


def test_max_duration_hangs_up() -> None:
    call = connected()
    call.fire_timer(EPOCH + timedelta(hours=1))
    step = call.run()
    assert step.activities == [("hang_up_call", {"call_id": "call-1", "call_connection_id": "conn-1"})]
    call.complete("hang_up_call", {"ok": True})
    call.run()
    call.raise_event("CallDisconnected", {})
    output = finish(call, end_reason="max_duration")
    assert output["talk_seconds"] == 3600.5  # connected at +1 s; hung up, then disconnected 1.5 s later


def test_max_duration_after_an_accepted_transfer_ends_without_hanging_up() -> None:
    call = connected()
    request_transfer(call)
    call.complete("transfer_call", {"ok": True})
    call.raise_event("CallTransferAccepted", {"operationContext": "transfer-1"})
    call.run()
    call.fire_timer(EPOCH + timedelta(hours=1))  # the disconnect callback never came
    assert finish(call, end_reason="transferred")["transfer"]["status"] == "accepted"


def test_without_a_record_the_session_is_kept() -> None:
    call = connected()
    call.raise_event("CallDisconnected", {})
    call.run()
    call.fail("write_call_record", "cosmos down")  # all five attempts
    done = call.run()
    assert done.done
    assert done.activities == []  # no clean_session: the transcript stays in Redis until its TTL
    assert (done.output["record_written"], done.output["session_cleaned"]) == (False, False)
    assert done.output["failures"] == ["write_call_record"]


# --- handoffs --------------------------------------------------------------------------------------
def handoff(to_agent: str, from_agent: str = "auth", **extra: Any) -> dict[str, Any]:
    return {"from_agent": from_agent, "to_agent": to_agent, "reason": "caller asked", **extra}


def test_an_allowed_handoff_is_counted_and_switches_the_agent() -> None:
    call = connected()
    call.raise_event("AgentHandoff", handoff("loans"))
    step = call.run()
    assert step.activities == []
    assert (step.status["agent"], step.status["handoffs"]) == ("loans", 1)
    call.raise_event("CallDisconnected", {})
    output = finish(call, end_reason="disconnected")
    assert output["agents"] == ["auth", "loans"]
    assert output["final_agent"] == "loans"


def test_a_handoff_before_authentication_is_denied_then_allowed_once_authenticated() -> None:
    call = connected()
    call.raise_event("AgentHandoff", handoff("account"))
    step = call.run()
    assert step.activities == [("notify_media_host", {
        "call_id": "call-1", "call_connection_id": "conn-1", "kind": "handoff_denied", "agent": "auth",
        "data": {"from_agent": "auth", "to_agent": "account", "reason": "authentication required"}})]
    assert (step.status["agent"], step.status["handoffs"]) == ("auth", 0)
    call.complete("notify_media_host", {"ok": True})
    call.raise_event("Authenticated", {})
    assert call.run().status["authenticated"] is True
    call.raise_event("AgentHandoff", handoff("account"))
    step = call.run()
    assert step.activities == []
    assert (step.status["agent"], step.status["handoffs"]) == ("account", 1)


def test_a_handoff_that_says_the_caller_is_authenticated_is_allowed() -> None:
    call = connected()
    call.raise_event("AgentHandoff", handoff("cards", authenticated=True))
    step = call.run()
    assert step.activities == []
    assert step.status == {**step.status, "agent": "cards", "handoffs": 1, "authenticated": True}


def test_one_handoff_too_many_transfers_the_caller_to_the_human_queue() -> None:
    call = connected()
    for to_agent, from_agent in (("loans", "auth"), ("auth", "loans")):
        call.raise_event("AgentHandoff", handoff(to_agent, from_agent))
    assert call.run().status["handoffs"] == 2
    call.raise_event("AgentHandoff", handoff("loans"))
    step = call.run()
    [(name, payload)] = step.activities
    assert name == "transfer_call"
    assert payload == {"call_id": "call-1", "call_connection_id": "conn-1", "target": QUEUE,
                       "operation_context": "transfer-1", "reason": "handoff limit"}
    assert step.new[0]["retryOptions"]["maxNumberOfAttempts"] == 3  # with retry options
    assert step.status["state"] == "transferring"
    assert step.status["handoffs"] == 2


def test_one_handoff_too_many_without_a_human_queue_is_denied() -> None:
    call = connected(human_queue=None, max_handoffs=0)
    call.raise_event("AgentHandoff", handoff("loans"))
    [(name, payload)] = call.run().activities
    assert name == "notify_media_host"
    assert payload["kind"] == "handoff_denied"
    assert payload["data"] == {"from_agent": "auth", "to_agent": "loans", "reason": "limit"}


# --- transfers -------------------------------------------------------------------------------------
def request_transfer(call: Replay, target: str | None = "+18005550100") -> Step:
    call.raise_event("TransferRequested", {"target": target, "reason": "caller wants a person"})
    step = call.run()
    assert step.activity_names == ["transfer_call"]
    return step


def test_a_transfer_accepted_ends_as_transferred() -> None:
    call = connected()
    step = request_transfer(call)
    assert step.activities[0][1]["target"] == "+18005550100"
    assert step.status["transfer"] == "pending"
    call.complete("transfer_call", {"ok": True})
    assert call.run().status["state"] == "transferring"
    call.raise_event("CallTransferAccepted", {**CONNECTED, "operationContext": "transfer-1"})
    step = call.run()
    assert (step.status["state"], step.status["transfer"]) == ("transferred", "accepted")
    call.raise_event("CallDisconnected", {})
    output = finish(call, end_reason="transferred")
    assert output["transfer"] == {"status": "accepted", "target": "+18005550100", "attempts": 1}


def test_a_transfer_without_a_target_goes_to_the_human_queue() -> None:
    call = connected()
    assert request_transfer(call, target=None).activities[0][1]["target"] == QUEUE


def test_a_transfer_with_nowhere_to_go_is_reported_to_the_agent() -> None:
    call = connected(human_queue=None)
    call.raise_event("TransferRequested", {"reason": "caller wants a person"})
    [(name, payload)] = call.run().activities
    assert (name, payload["kind"]) == ("notify_media_host", "transfer_failed")
    assert payload["data"] == {"reason": "no transfer target", "target": None}


def test_a_failed_transfer_notifies_the_agent_and_the_call_carries_on() -> None:
    call = connected()
    request_transfer(call)
    call.complete("transfer_call", {"ok": True})
    call.run()
    call.raise_event("CallTransferFailed", {**CONNECTED, "operationContext": "transfer-1",
                                            "resultInformation": {"code": 500, "subCode": 7501, "message": "x"}})
    step = call.run()
    [(name, payload)] = step.activities
    assert (name, payload["kind"]) == ("notify_media_host", "transfer_failed")
    assert payload["data"] == {"target": "+18005550100", "reason": "transfer failed", "code": 500, "subCode": 7501}
    assert (step.status["state"], step.status["transfer"]) == ("connected", "failed")
    call.complete("notify_media_host", {"ok": True})
    call.run()
    # The caller can ask again: a second attempt, with its own operation context.
    assert request_transfer(call).activities[0][1]["operation_context"] == "transfer-2"


def test_a_transfer_request_acs_refuses_is_a_failed_transfer() -> None:
    call = connected()
    request_transfer(call)
    call.fail("transfer_call", "403 forbidden")  # all three attempts
    step = call.run()
    [(name, payload)] = step.activities
    assert (name, payload["kind"]) == ("notify_media_host", "transfer_failed")
    assert payload["data"]["reason"] == "transfer request failed"
    assert step.status["state"] == "connected"


def test_a_transfer_that_fails_once_is_retried_by_durable() -> None:
    call = connected()
    request_transfer(call)
    call.fail("transfer_call", "503", attempts=1)
    assert call.run().activities == []  # the retry is Durable's: nothing new decided
    call.complete("transfer_call", {"ok": True})
    step = call.run()
    assert (step.status["state"], step.status["transfer"]) == ("transferring", "pending")


# --- media streaming -------------------------------------------------------------------------------
FAILED = {"mediaStreamingUpdate": {"mediaStreamingStatus": "mediaStreamingFailed",
                                   "mediaStreamingStatusDetails": "streamConnectionInterrupted"}}


def test_media_failure_restarts_streaming_after_a_backoff() -> None:
    call = connected()
    call.raise_event("MediaStreamingFailed", FAILED)
    step = call.run()
    assert step.activities == []
    assert step.timers == [call.now + timedelta(seconds=1)]
    assert (step.status["media"], step.status["media_restarts"]) == ("failed", 1)
    call.fire_timer()
    step = call.run()
    assert step.activities == [("start_media_streaming", {"call_id": "call-1", "call_connection_id": "conn-1"})]
    call.complete("start_media_streaming", {"ok": True})
    assert call.run().status["media"] == "restarting"
    call.raise_event("MediaStreamingStarted", {})
    assert call.run().status["media"] == "streaming"
    # The next failure waits longer: the backoff counts restarts over the whole call.
    call.raise_event("MediaStreamingFailed", FAILED)
    assert call.run().timers == [call.now + timedelta(seconds=2)]


def test_media_restarts_exhausted_notify_and_hang_up() -> None:
    call = connected(media_restart_attempts=1)
    call.raise_event("MediaStreamingFailed", FAILED)
    call.run()
    call.fire_timer()
    assert call.run().activity_names == ["start_media_streaming"]
    call.fail("start_media_streaming", "ACS 500")  # no Durable retry: the orchestrator's own backoff
    step = call.run()
    [(name, payload)] = step.activities
    assert (name, payload["kind"], payload["data"]) == ("notify_media_host", "media_failed", {"restarts": 1})
    call.complete("notify_media_host", {"ok": True})
    assert call.run().activity_names == ["hang_up_call"]
    call.complete("hang_up_call", {"ok": True})
    call.run()
    call.raise_event("CallDisconnected", {})
    output = finish(call, end_reason="media_failed")
    assert output["media_restarts"] == 1
    assert output["failures"] == ["start_media_streaming"]


def test_with_no_restarts_allowed_a_media_failure_ends_the_call() -> None:
    call = connected(media_restart_attempts=0)
    call.raise_event("MediaStreamingFailed", FAILED)
    assert call.run().activity_names == ["notify_media_host"]
    call.complete("notify_media_host", {"ok": True})
    assert call.run().activity_names == ["hang_up_call"]


def test_a_disconnect_during_the_backoff_cancels_the_restart() -> None:
    call = connected()
    call.raise_event("MediaStreamingFailed", FAILED)
    call.run()
    call.raise_event("CallDisconnected", {})  # arrives while the backoff timer runs
    call.run()
    call.fire_timer()
    output = finish(call, end_reason="disconnected")
    assert output["media_restarts"] == 1


# --- out of order, duplicates, malformed -------------------------------------------------------------
def test_a_disconnect_before_the_connect_ends_the_call() -> None:
    call, _ = start()
    call.raise_event("CallDisconnected", {})
    output = finish(call, end_reason="disconnected")
    assert output["connected"] is False


@pytest.mark.filterwarnings("ignore:Potential duplicate Task completion")  # the SDK on an event nobody awaits
def test_events_raised_before_the_first_run_are_not_lost() -> None:
    call = Replay(call_session, make_input())
    call.raise_event("ParticipantsUpdated", {"participants": [{}, {}], "sequenceNumber": 1})
    call.raise_event("CallConnected", CONNECTED)
    call.raise_event("PlayCompleted", {})  # not one of ours: no waiter, nothing happens
    step = call.run()
    assert (step.status["state"], step.status["participants"]) == ("connected", 2)
    assert step.timers == [EPOCH + timedelta(hours=1), EPOCH + timedelta(seconds=45)]


def test_transfer_callbacks_without_a_transfer_are_ignored() -> None:
    call = connected()
    call.raise_event("CallTransferAccepted", CONNECTED)
    call.raise_event("CallTransferFailed", CONNECTED)
    call.raise_event("CallConnected", CONNECTED)  # a duplicate
    step = call.run()
    assert step.activities == []
    assert (step.status["state"], step.status["transfer"]) == ("connected", None)


def test_a_late_callback_of_an_earlier_transfer_attempt_is_ignored() -> None:
    call = connected()
    request_transfer(call)
    call.complete("transfer_call", {"ok": True})
    call.raise_event("CallTransferFailed", {"operationContext": "transfer-1"})
    call.run()
    call.complete("notify_media_host", {"ok": True})
    request_transfer(call)
    call.complete("transfer_call", {"ok": True})
    call.raise_event("CallTransferFailed", {"operationContext": "transfer-1"})  # late duplicate of attempt 1
    step = call.run()
    assert step.activities == []
    assert (step.status["state"], step.status["transfer"]) == ("transferring", "pending")


def test_events_that_arrive_during_an_activity_are_handled_in_order_exactly_once() -> None:
    call = connected()
    request_transfer(call)
    # While transfer_call runs: two participant updates (same name: the SDK alone would replay the
    # last one forever), the acceptance and the disconnect.
    call.raise_event("ParticipantsUpdated", {"participants": [{}, {}, {}], "sequenceNumber": 2})
    call.raise_event("ParticipantsUpdated", {"participants": [{}, {}], "sequenceNumber": 3})
    call.raise_event("CallTransferAccepted", {"operationContext": "transfer-1"})
    call.raise_event("CallDisconnected", {})
    call.complete("transfer_call", {"ok": True})
    output = finish(call, end_reason="transferred")
    assert output["participants"] == 2
    assert output["events_handled"] == 6  # connected, transfer requested, and these four


def test_an_older_participants_update_does_not_overwrite_a_newer_one() -> None:
    call = connected()
    call.raise_event("ParticipantsUpdated", {"participants": [{}, {}], "sequenceNumber": 5})
    call.raise_event("ParticipantsUpdated", {"participants": [{}, {}, {}], "sequenceNumber": 4})
    assert call.run().status["participants"] == 2


@pytest.mark.parametrize("data", [{"from_agent": "auth"}, {"to_agent": 42}, None, "loans"])
def test_a_malformed_media_host_event_is_ignored(data: Any) -> None:
    call = connected()
    call.raise_event("AgentHandoff", data)
    call.raise_event("TransferRequested", {"target": 42})  # an unusable target: the human queue
    step = call.run()
    assert step.activities[0][1]["target"] == QUEUE
    assert (step.status["agent"], step.status["handoffs"]) == ("auth", 0)


def test_an_agent_event_before_the_connect_callback_is_handled() -> None:
    call, _ = start()
    call.raise_event("AgentHandoff", handoff("loans"))
    call.raise_event("CallConnected", CONNECTED)
    step = call.run()
    assert (step.status["state"], step.status["agent"]) == ("connected", "loans")


# --- continue_as_new -----------------------------------------------------------------------------------
def test_history_is_bounded_with_continue_as_new_carrying_the_state() -> None:
    call = connected()
    call.raise_event("Authenticated", {})
    call.raise_event("AgentHandoff", handoff("account"))
    call.run()
    for n in range(EVENTS_PER_EXECUTION - 4):  # 3 handled so far
        call.raise_event("ParticipantsUpdated", {"participants": [{}, {}], "sequenceNumber": n})
        step = call.run()
        assert step.continued_as_new is None
    call.raise_event("ParticipantsUpdated", {"participants": [{}], "sequenceNumber": 99})
    step = call.run()
    carried = step.continued_as_new
    assert carried is not None
    assert step.done
    assert timers_cancelled(step)
    state = carried["state"]
    assert {k: state[k] for k in ("state", "agent", "authenticated", "handoffs", "events_handled", "executions",
                                  "participants")} == {
        "state": "connected", "agent": "account", "authenticated": True, "handoffs": 1,
        "events_handled": EVENTS_PER_EXECUTION, "executions": 2, "participants": 1}
    assert state["deadline"] == (EPOCH + timedelta(hours=1)).isoformat()
    assert CallSessionInput.model_validate(carried).call_id == "call-1"

    # The next execution keeps the original deadline and does not wait for a connect again.
    later = EPOCH + timedelta(minutes=20)
    following = Replay(call_session, carried, start=later)
    first = following.run()
    assert first.timers == [EPOCH + timedelta(hours=1)]
    assert first.status["agent"] == "account"
    following.raise_event("CallDisconnected", {})
    output = finish(following, end_reason="disconnected")
    assert output["events_handled"] == EVENTS_PER_EXECUTION + 1
    assert output["agents"] == ["auth", "account"]
    assert output["executions"] == 2


def test_continue_as_new_waits_until_every_event_of_the_batch_is_handled() -> None:
    call = connected()
    for n in range(EVENTS_PER_EXECUTION + 2):  # one batch, more than the bound
        call.raise_event("ParticipantsUpdated", {"participants": [{}] * (n % 3 + 1), "sequenceNumber": n})
    carried = call.run().continued_as_new
    assert carried is not None
    assert carried["state"]["events_handled"] == EVENTS_PER_EXECUTION + 3  # nothing dropped
    assert carried["state"]["participants"] == (EVENTS_PER_EXECUTION + 1) % 3 + 1


def test_no_continue_as_new_while_hanging_up() -> None:
    call = connected()
    call.raise_event("HangupRequested", {})
    call.run()
    call.complete("hang_up_call", {"ok": True})
    call.run()
    for _ in range(EVENTS_PER_EXECUTION):
        call.raise_event("MediaStreamingStopped", {})
    assert call.run().continued_as_new is None


# --- activities -------------------------------------------------------------------------------------------
class FakeAcs:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def transfer(self, call_connection_id: str, target: str, operation_context: str) -> None:
        self.calls.append(("transfer", call_connection_id, target, operation_context))

    async def hang_up(self, call_connection_id: str) -> None:
        self.calls.append(("hang_up", call_connection_id))

    async def start_media_streaming(self, call_connection_id: str) -> None:
        self.calls.append(("start_media_streaming", call_connection_id))


class FakeRecords:
    def __init__(self) -> None:
        self.written: dict[str, dict[str, Any]] = {}

    async def write(self, call_id: str, outcome: dict[str, Any]) -> None:
        self.written[call_id] = outcome


class Services:
    def __init__(self, sessions: activities.SessionEvents) -> None:
        self.acs, self.records, self.sessions = FakeAcs(), FakeRecords(), sessions


REF = {"call_id": "call-1", "call_connection_id": "conn-1"}


async def test_the_acs_activities_call_acs(store: SessionStore) -> None:
    services = Services(store)
    assert await activities.transfer_call({**REF, "target": QUEUE, "operation_context": "transfer-1"}, services) \
        == {"ok": True, "operation_context": "transfer-1"}
    assert await activities.hang_up_call(REF, services) == {"ok": True}
    assert await activities.start_media_streaming(REF, services) == {"ok": True}
    assert services.acs.calls == [("transfer", "conn-1", QUEUE, "transfer-1"), ("hang_up", "conn-1"),
                                  ("start_media_streaming", "conn-1")]


async def test_activities_reject_a_payload_without_what_they_need(store: SessionStore) -> None:
    services = Services(store)
    with pytest.raises(ValueError, match="target"):
        await activities.transfer_call(REF, services)
    with pytest.raises(ValueError, match="call_connection_id"):
        await activities.hang_up_call({"call_id": "call-1"}, services)
    assert services.acs.calls == []


async def test_notify_media_host_appends_an_event_the_media_host_sees(store: SessionStore) -> None:
    await store.create(CallSession(call_id="call-1", scenario="banking", current_agent="account"))
    payload = {**REF, "kind": "handoff_denied", "agent": "auth",
               "data": {"to_agent": "account", "reason": "authentication required"}}
    assert await activities.notify_media_host(payload, Services(store)) == {"ok": True, "kind": "handoff_denied"}
    [event] = await store.events("call-1")
    assert isinstance(event, CallEvent)
    assert (event.kind, event.agent, event.data) == ("handoff_denied", "auth", payload["data"])


async def test_write_call_record_then_clean_session(store: SessionStore) -> None:
    services = Services(store)
    await store.create(CallSession(call_id="call-1", scenario="banking", current_agent="auth"))
    await store.append_event("call-1", CallEvent(kind="barge_in"))
    outcome = {"call_id": "call-1", "end_reason": "disconnected"}
    assert await activities.write_call_record({**REF, "outcome": outcome}, services) == {"ok": True}
    assert services.records.written == {"call-1": outcome}
    assert await activities.clean_session(REF, services) == {"ok": True}
    assert await store.load("call-1") is None
    assert await store.events("call-1") == []


# --- registration -------------------------------------------------------------------------------------
def test_register_adds_the_orchestrator_and_its_activities_with_the_right_bindings() -> None:
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    orchestrations.register(app, lambda: Services(_NoSessions()))
    functions = {f.get_function_name(): f for f in app.get_functions()}  # once per app object
    bindings = {name: json.loads(f.get_function_json())["bindings"] for name, f in functions.items()}
    assert bindings.pop("call_session") == [{"direction": "IN", "type": "orchestrationTrigger", "name": "context"}]
    assert set(bindings) == {"transfer_call", "hang_up_call", "start_media_streaming", "notify_media_host",
                             "write_call_record", "clean_session"}
    for name, found in bindings.items():
        assert found == [{"direction": "IN", "type": "activityTrigger", "name": "payload"}], name
    # The registered orchestrator is the real one, wrapped by the SDK.
    handle = functions["call_session"].get_user_function()
    assert handle.orchestrator_function is call_session


async def test_registered_activities_use_the_services_factory_sync_or_async() -> None:
    services = Services(_NoSessions())

    async def opened() -> Services:
        return services

    for factory in (lambda: services, opened):
        app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
        orchestrations.register(app, factory)
        functions = {f.get_function_name(): f for f in app.get_functions()}
        result = await functions["hang_up_call"].get_user_function()(REF)
        assert result == {"ok": True}
    assert services.acs.calls == [("hang_up", "conn-1"), ("hang_up", "conn-1")]


class _NoSessions:
    async def notify(self, call_id: str, event: CallEvent) -> None:
        raise AssertionError("not used")

    async def delete(self, call_id: str) -> None:
        raise AssertionError("not used")
