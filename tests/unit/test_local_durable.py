"""LocalDurable: real orchestrators on the real replay engine, with real (short) timers and asyncio activities.

(a) a toy orchestrator covers activities, retries, timers, external events and continue_as_new; (b) the real
call_session runs a call from ringing to its record with fake activities; (c) the real
DurableOrchestrationClient talks to the webhook routes. Every wait is on a condition, never a sleep.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import pytest
from aiohttp import ClientSession, web
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus
from azure.durable_functions.models.utils.http_utils import _close_session

from local_stack.durable import (
    PREFIX,
    InstanceGone,
    LocalDurable,
    UnknownInstance,
    UnknownOrchestrator,
    add_durable_routes,
    binding,
)
from local_stack.durable.replay import Replay
from orchestrations.call_session import EVENTS_PER_EXECUTION, call_session
from orchestrations.models import Activity, CallSessionInput

QUEUE = "+18005550199"
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=20, max_number_of_attempts=3)
Calls = list[tuple[str, Any]]


# --- orchestrators and activities -----------------------------------------------------------------
def toy(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Two rounds (continue_as_new): an activity, a flaky one with retries, a short timer, then an event."""
    data = context.get_input()
    doubled = yield context.call_activity("double", data["round"])
    flaky = yield context.call_activity_with_retry("flaky", RETRY, doubled)
    yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=30))
    context.set_custom_status({"round": data["round"], "waiting": True})
    deadline = context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    event = context.wait_for_external_event("Next")
    winner = yield context.task_any([event, deadline])
    if winner is deadline:
        return {"timed_out": True}
    deadline.cancel()
    total = data["total"] + flaky + event.result["add"]
    if data["round"] < 2:
        context.continue_as_new({"round": data["round"] + 1, "total": total})
        return None
    return {"total": total, "rounds": data["round"]}


def collect(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """The data of `count` "E" events, in the order they came."""
    got = []
    for _ in range(context.get_input()["count"]):
        got.append((yield context.wait_for_external_event("E")))
    return got


def failing(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    yield context.call_activity("boom", {"secret": "+15551234567"})


def give_up(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    try:
        yield context.call_activity_with_retry("boom", RETRY, None)
    except Exception as error:
        return str(error).split(":")[0]
    return "unreachable"


def hanging(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """An activity that never returns, raced against a one-hour timer."""
    later = context.current_utc_datetime + timedelta(hours=1)
    yield context.task_any([context.call_activity("hang", None), context.create_timer(later)])


_flips = itertools.count()


def fickle(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Decides differently on replay: not deterministic."""
    yield context.call_activity("double" if next(_flips) % 2 == 0 else "flaky", 1)
    yield context.wait_for_external_event("Never")


def recorder(calls: Calls, name: str, result: Callable[[Any], Any] = lambda _: {"ok": True}) -> Any:
    async def activity(payload: Any) -> Any:
        calls.append((name, payload))
        return result(payload)

    return activity


def toy_activities(calls: Calls) -> dict[str, Any]:
    flaky_calls = itertools.count(1)

    async def flaky(value: int) -> int:
        calls.append(("flaky", value))
        if next(flaky_calls) <= 2:  # the first round's first two attempts fail
            raise RuntimeError("flaky failure")
        return value + 100

    async def boom(_: Any) -> None:
        calls.append(("boom", None))
        raise ValueError("boom")

    async def hang(_: Any) -> None:
        calls.append(("hang", None))
        await asyncio.Event().wait()

    return {"double": recorder(calls, "double", lambda x: x * 2), "flaky": flaky, "boom": boom, "hang": hang}


def durable_tasks() -> list[str]:
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("durable-")]


async def no_durable_tasks() -> None:
    """Cancelled tasks end on the next turns of the loop: wait for them (a condition, not a delay)."""
    async with asyncio.timeout(1):
        while durable_tasks():
            await asyncio.sleep(0)


@pytest.fixture
async def durable() -> AsyncIterator[tuple[LocalDurable, Calls]]:
    calls: Calls = []
    activities = {**toy_activities(calls), **{a.value: recorder(calls, a.value) for a in Activity}}
    engine = LocalDurable({"toy": toy, "collect": collect, "failing": failing, "fickle": fickle,
                           "give_up": give_up, "hanging": hanging, "call_session": call_session}, activities)
    async with engine:
        yield engine, calls
    assert durable_tasks() == []


def waiting(round_: int) -> Callable[[dict[str, Any]], bool]:
    return lambda status: status["customStatus"] == {"round": round_, "waiting": True}


# --- (a) the toy orchestrator ---------------------------------------------------------------------
async def test_activities_retries_timers_events_and_continue_as_new(durable: tuple[LocalDurable, Calls]) -> None:
    engine, calls = durable
    assert await engine.start_new("toy", "toy-1", {"round": 1, "total": 0}) == "toy-1"
    await engine.wait_for("toy-1", waiting(1), timeout=2)
    assert calls == [("double", 1), ("flaky", 2), ("flaky", 2), ("flaky", 2)]  # two failures, then retried
    await engine.raise_event("toy-1", "Next", {"add": 1000})
    status = await engine.wait_for("toy-1", waiting(2), timeout=2)  # a new execution, with the carried input
    assert status["input"] == {"round": 2, "total": 1102}
    assert status["runtimeStatus"] == "Running"
    await engine.raise_event("toy-1", "Next", {"add": 5000})
    done = await engine.wait_for_completion("toy-1", timeout=2)
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == {"total": 1102 + 104 + 5000, "rounds": 2}
    assert calls[4:] == [("double", 2), ("flaky", 4)]
    assert set(done) == {"name", "instanceId", "runtimeStatus", "input", "customStatus", "output", "createdTime",
                         "lastUpdatedTime"}
    await no_durable_tasks()  # the cancelled one-hour timers do not outlive the instance


async def test_events_raised_together_are_applied_in_order(durable: tuple[LocalDurable, Calls]) -> None:
    engine, _ = durable
    await engine.start_new("collect", "c-1", {"count": 5})
    await asyncio.gather(*(engine.raise_event("c-1", "E", n) for n in range(5)))
    done = await engine.wait_for_completion("c-1", timeout=2)
    assert done["output"] == [0, 1, 2, 3, 4]


async def test_a_failed_activity_fails_the_orchestration(durable: tuple[LocalDurable, Calls],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    engine, _ = durable
    await engine.start_new("failing", "f-1")
    done = await engine.wait_for_completion("f-1", timeout=2)
    assert done["runtimeStatus"] == "Failed"
    assert done["output"].startswith("Orchestrator function 'failing' failed: Activity function 'boom' failed: "
                                     "ValueError: boom")
    assert "+15551234567" not in caplog.text  # no payloads in the logs
    assert any(r.message == "orchestration failed" for r in caplog.records)


async def test_retries_give_up_after_the_last_attempt_with_the_history_replay_records(
        durable: tuple[LocalDurable, Calls]) -> None:
    engine, calls = durable
    await engine.start_new("give_up", "g-1")
    done = await engine.wait_for_completion("g-1", timeout=2)
    assert (done["runtimeStatus"], done["output"]) == ("Completed", "Activity function 'boom' failed")
    assert calls == [("boom", None)] * 3
    # The same history, event for event, as the tests' driver of the replay engine (local_stack.durable.replay).
    replay = Replay(give_up, None, name="give_up", instance_id="g-1")
    replay.run()
    replay.fail("boom", "Activity function 'boom' failed: ValueError: boom")
    assert replay.run().output == done["output"]
    keys = ("EventType", "EventId", "Name", "TaskScheduledId", "TimerId")
    recorded = engine._instances["g-1"].execution.history.events
    assert [[e.get(k) for k in keys] for e in recorded] == [[e.get(k) for k in keys] for e in replay.history.events]


async def test_close_stops_timers_and_running_activities(durable: tuple[LocalDurable, Calls]) -> None:
    engine, calls = durable
    await engine.start_new("hanging", "h-1")
    await engine.start_new("toy", "toy-2", {"round": 1, "total": 0})
    await engine.wait_for("toy-2", waiting(1), timeout=2)
    async with asyncio.timeout(1):
        while ("hang", None) not in calls:
            await asyncio.sleep(0)
    # toy-2's one-hour timer is its 8th task (ids 0-6: the activities, their retry timers, the 30 ms timer).
    assert sorted(durable_tasks()) == ["durable-activity-hang", "durable-timer-h-1-1", "durable-timer-toy-2-7"]
    await engine.close()
    assert durable_tasks() == []
    with pytest.raises(RuntimeError, match="closed"):
        await engine.start_new("toy")


async def test_a_non_deterministic_orchestrator_fails_with_a_clear_message(
        durable: tuple[LocalDurable, Calls]) -> None:
    engine, _ = durable
    await engine.start_new("fickle", "n-1")
    done = await engine.wait_for_completion("n-1", timeout=2)
    assert done["runtimeStatus"] == "Failed"
    assert done["output"] == ("Non-deterministic workflow detected: action 0 was CALL_ACTIVITY double, "
                              "the replay decided CALL_ACTIVITY flaky")


async def test_the_handle_dfapp_registers_runs_too() -> None:
    app = df.DFApp()
    app.orchestration_trigger(context_name="context")(collect)
    [registered] = app.get_functions()
    async with LocalDurable({"collect": registered.get_user_function()}, {}) as engine:
        await engine.start_new("collect", "r-1", {"count": 1})
        await engine.raise_event("r-1", "E", 7)
        assert (await engine.wait_for_completion("r-1", timeout=2))["output"] == [7]


async def test_terminate_unknown_and_finished_instances(durable: tuple[LocalDurable, Calls]) -> None:
    engine, _ = durable
    with pytest.raises(UnknownOrchestrator):
        await engine.start_new("nope")
    with pytest.raises(UnknownInstance):
        await engine.raise_event("missing", "E", 1)
    with pytest.raises(UnknownInstance):
        engine.status("missing")
    await engine.start_new("collect", "t-1", {"count": 1})
    await engine.terminate("t-1", "enough")
    status = engine.status("t-1")
    assert (status["runtimeStatus"], status["output"]) == ("Terminated", "enough")
    with pytest.raises(InstanceGone):
        await engine.raise_event("t-1", "E", 1)
    with pytest.raises(InstanceGone):
        await engine.terminate("t-1", "again")
    # Starting an existing id replaces the instance, as the extension does.
    await engine.start_new("collect", "t-1", {"count": 1})
    assert engine.status("t-1")["runtimeStatus"] == "Running"
    await engine.raise_event("t-1", "E", "x")
    assert (await engine.wait_for_completion("t-1", timeout=2))["output"] == ["x"]


# --- (b) the real call_session --------------------------------------------------------------------
def call_input() -> dict[str, Any]:
    return CallSessionInput(call_id="call-1", call_connection_id="conn-1", scenario="banking", entry_agent="auth",
                            human_queue=QUEUE, max_handoffs=2, auth_required=["cards"], connect_timeout_s=45,
                            max_duration_s=3600, media_restart_attempts=2).model_dump(mode="json")


def phase(state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda status: (status["customStatus"] or {}).get("state") == state


async def test_call_session_transfer_from_ringing_to_record(durable: tuple[LocalDurable, Calls]) -> None:
    engine, calls = durable
    await engine.start_new("call_session", "call-1", call_input())
    assert engine.status("call-1")["customStatus"]["state"] == "ringing"
    await engine.raise_event("call-1", "CallConnected", {"callConnectionId": "conn-1"})
    await engine.raise_event("call-1", "AgentHandoff", {"from_agent": "auth", "to_agent": "cards"})  # not authenticated
    await engine.raise_event("call-1", "TransferRequested", {"reason": "caller wants a person"})
    await engine.wait_for("call-1", lambda s: s["customStatus"]["transfer"] == "pending", timeout=2)
    await engine.raise_event("call-1", "CallTransferAccepted", {"operationContext": "transfer-1"})
    await engine.wait_for("call-1", phase("transferred"), timeout=2)
    await engine.raise_event("call-1", "CallDisconnected", {"callConnectionId": "conn-1"})
    done = await engine.wait_for_completion("call-1", timeout=2)

    assert done["runtimeStatus"] == "Completed"
    output = done["output"]
    assert output["end_reason"] == "transferred"
    assert output["transfer"] == {"status": "accepted", "target": QUEUE, "attempts": 1}
    assert (output["record_written"], output["session_cleaned"], output["connected"]) == (True, True, True)
    assert [name for name, _ in calls] == ["notify_media_host", "transfer_call", "write_call_record", "clean_session"]
    notice, transfer, record, clean = (payload for _, payload in calls)
    assert notice["kind"] == "handoff_denied"
    assert transfer == {"call_id": "call-1", "call_connection_id": "conn-1", "target": QUEUE,
                        "operation_context": "transfer-1", "reason": "caller wants a person"}
    assert record["outcome"] == {k: v for k, v in output.items() if k not in ("record_written", "session_cleaned")}
    assert clean == {"call_id": "call-1", "call_connection_id": "conn-1"}
    await no_durable_tasks()  # the one-hour max-duration timer was cancelled with the call


async def test_call_session_continues_as_new_and_keeps_its_state(durable: tuple[LocalDurable, Calls]) -> None:
    engine, calls = durable
    await engine.start_new("call_session", "call-2", {**call_input(), "call_id": "call-2"})
    await engine.raise_event("call-2", "CallConnected", {})
    for n in range(EVENTS_PER_EXECUTION):
        await engine.raise_event("call-2", "ParticipantsUpdated", {"participants": [{}, {}], "sequenceNumber": n})
    status = engine.status("call-2")
    assert status["input"]["state"]["executions"] == 2  # the carried-over state is the new execution's input
    await engine.raise_event("call-2", "CallDisconnected", {})
    output = (await engine.wait_for_completion("call-2", timeout=3))["output"]
    assert (output["executions"], output["events_handled"], output["end_reason"]) == (2, 52, "disconnected")
    assert [name for name, _ in calls] == ["write_call_record", "clean_session"]


# --- (c) the webhook, through the real DurableOrchestrationClient ---------------------------------
@pytest.fixture
async def served(durable: tuple[LocalDurable, Calls]) -> AsyncIterator[tuple[df.DurableOrchestrationClient, str]]:
    app = web.Application()
    add_durable_routes(app, durable[0])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base_url = f"http://127.0.0.1:{runner.addresses[0][1]}{PREFIX}"
    try:
        yield df.DurableOrchestrationClient(binding(base_url)), base_url
    finally:
        await _close_session()  # the Durable SDK's process-wide aiohttp session
        await runner.cleanup()


async def test_the_real_client_starts_raises_reads_and_terminates(
        served: tuple[df.DurableOrchestrationClient, str]) -> None:
    client, base_url = served
    instance_id = await client.start_new("collect", None, {"count": 2})
    assert len(instance_id) == 32
    status = await client.get_status(instance_id)
    assert status.runtime_status is OrchestrationRuntimeStatus.Running
    assert status.input_ == {"count": 2}
    await client.raise_event(instance_id, "E", {"n": 1})
    await client.raise_event(instance_id, "E", "two")
    status = await client.get_status(instance_id)
    assert status.runtime_status is OrchestrationRuntimeStatus.Completed
    assert status.output == [{"n": 1}, "two"]
    with pytest.raises(Exception, match="is gone"):  # 410
        await client.raise_event(instance_id, "E", 3)
    with pytest.raises(Exception, match="No instance with ID missing found"):  # 404
        await client.raise_event("missing", "E", 3)
    assert not await client.get_status("missing")  # 404, no body
    with pytest.raises(Exception, match="doesn't exist"):  # 400
        await client.start_new("nope", "x")

    assert await client.start_new("collect", "t-2", {"count": 1}) == "t-2"
    await client.terminate("t-2", "caller hung up")
    status = await client.get_status("t-2")
    assert (status.runtime_status, status.output) == (OrchestrationRuntimeStatus.Terminated, "caller hung up")
    await client.terminate("t-2", "again")  # 410: the client accepts it
    with pytest.raises(Exception, match="No instance with ID 'missing' found"):
        await client.terminate("missing", "x")

    async with ClientSession() as http:  # the statuses and bodies themselves
        async with http.post(f"{base_url}orchestrators/collect/h-1", json='{"count": 1}') as started:
            assert started.status == 202
            links = await started.json()
            assert started.headers["Location"] == links["statusQueryGetUri"]
            assert links["sendEventPostUri"].startswith(f"{base_url}instances/h-1/raiseEvent/{{eventName}}?")
        async with http.get(f"{base_url}instances/h-1") as running:
            assert (running.status, (await running.json())["runtimeStatus"]) == (202, "Running")
        async with http.post(f"{base_url}instances/h-1/raiseEvent/E", json='"x"') as raised:
            assert raised.status == 202
        async with http.get(f"{base_url}instances/h-1") as finished:
            assert (finished.status, (await finished.json())["output"]) == (200, ["x"])
        async with http.post(f"{base_url}instances/h-1/raiseEvent/E", json='"y"') as gone:
            assert gone.status == 410
        async with http.get(f"{base_url}instances/nobody") as unknown:
            assert (unknown.status, await unknown.read()) == (404, b"")
