"""The local function host: its start-up, its activity invocations and its Event Grid endpoint.

As the Functions host does: an app the Python worker refuses does not start (the worker's own message), an
activity's input and result go through the worker's converter, the validation handshake echoes the code,
CloudEvents abuse protection answers OPTIONS, each event of a delivery invokes the trigger once, and bad
deliveries get a 4xx reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from local_stack.acs import DeliveryFailed, EventGridSubscription, incoming_call_event
from local_stack.function_host import EVENTGRID_PATH, Function, FunctionHost
from local_stack.processes import Child, StackError
from local_stack.serve_functions import REFUSED

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "worker_apps"

BINDING = '{"taskHubName": "LocalHub"}'


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self.fail = False

    async def __call__(self, event: Any, client: Any) -> None:
        if self.fail:
            raise RuntimeError("boom")
        self.calls.append((event, client))


@pytest.fixture
async def host() -> AsyncIterator[tuple[str, Recorder]]:
    recorder = Recorder()
    trigger = {"type": "eventGridTrigger", "direction": "IN", "name": "event"}
    functions = {"on_incoming_call": Function("on_incoming_call", trigger,
                                              [trigger, {"type": "durableClient", "direction": "IN",
                                                         "name": "client"}], recorder)}
    app = web.Application()
    FunctionHost(functions, BINDING).add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", recorder
    await runner.cleanup()


async def test_the_subscription_validates_then_each_event_invokes_the_trigger_once(host: tuple[str, Recorder]) -> None:
    base, recorder = host
    async with aiohttp.ClientSession() as session:
        sub = EventGridSubscription(session, f"{base}{EVENTGRID_PATH}?functionName=on_incoming_call")
        await sub.validate()
        assert sub.validated
        assert recorder.calls == []  # the handshake never reaches the function
        event = incoming_call_event("+18005550100", "+14255550123")
        assert await sub.deliver(event) == 202
        cloud = incoming_call_event("+18005550100", "+14255550123", schema="cloudevents")
        await sub.deliver(cloud)
    [(first, client), (second, _)] = recorder.calls
    assert first.event_type == "Microsoft.Communication.IncomingCall"
    assert first.get_json()["correlationId"] == event["data"]["correlationId"]
    assert client == BINDING  # the durable client arrives as its binding JSON
    assert second.type == "Microsoft.Communication.IncomingCall"  # a func.CloudEvent


async def test_bad_deliveries_are_refused_with_a_reason(host: tuple[str, Recorder]) -> None:
    base, recorder = host
    url = f"{base}{EVENTGRID_PATH}?functionName=on_incoming_call"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}{EVENTGRID_PATH}?functionName=nope", json=[],
                                headers={"aeg-event-type": "Notification"}) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"] == "unknown_function"
        async with session.post(url, data=b"{not json", headers={"aeg-event-type": "Notification"}) as resp:
            assert (resp.status, (await resp.json())["error"]) == (400, "malformed_json")
        async with session.post(url, json=[{"id": "1"}], headers={"aeg-event-type": "Other"}) as resp:
            assert (resp.status, (await resp.json())["error"]) == (400, "unknown_delivery")
        async with session.post(url, json=[1, 2], headers={"aeg-event-type": "Notification"}) as resp:
            assert (resp.status, (await resp.json())["error"]) == (400, "invalid_events")
        async with session.post(url, json=[], headers={"aeg-event-type": "SubscriptionValidation"}) as resp:
            assert (resp.status, (await resp.json())["error"]) == (400, "no_validation_code")
        async with session.options(url, headers={"WebHook-Request-Origin": "eventgrid.azure.net"}) as resp:
            assert resp.status == 200
            assert resp.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
        recorder.fail = True  # a failing function is a failed delivery: Event Grid retries it
        with pytest.raises(DeliveryFailed, match="HTTP 500"):
            await EventGridSubscription(session, url).deliver(incoming_call_event("+18005550100", "+14255550123"))
    assert recorder.calls == []


def test_the_host_refuses_to_start_an_app_the_worker_refuses(tmp_path: Path) -> None:
    """Started as the local stack starts it: the stack reports the exit and the worker's message."""
    child = Child("function host", "local_stack.serve_functions", env={"PYTHON_SCRIPT_FILE_NAME":
                                                                       "refused_annotation_app.py"},
                  args=["--port", "0", "--directory", str(APPS)], log_path=tmp_path / "function_host.log")
    child.start()
    with pytest.raises(StackError) as refused:
        child.wait_healthy("http://127.0.0.1:9/api/health", timeout=60)  # port 9: nothing listens
    assert child.process is not None
    assert child.process.returncode == REFUSED
    assert str(refused.value).startswith(f"function host exited with code {REFUSED} before it was healthy")
    assert str(refused.value).endswith("function host: cannot load the echo function: binding payload has invalid "
                                       "non-type annotation dict[str, typing.Any]")


async def test_activities_take_and_return_json_through_the_workers_converter() -> None:
    class Custom:
        pass

    results: list[Any] = [{"done": True}, "ok", Custom()]

    async def activity(payload: Any) -> Any:
        seen.append(payload)
        return results.pop(0)

    seen: list[Any] = []
    trigger = {"type": "activityTrigger", "direction": "IN", "name": "payload"}
    host = FunctionHost({"echo": Function("echo", trigger, [trigger], activity)}, BINDING)
    run = host.activities()["echo"]
    assert await run({"call_id": "c1"}) == {"done": True}
    assert await run("not json") == "ok"  # the extension's input is JSON text: a string arrives as a string
    assert seen == [{"call_id": "c1"}, "not json"]
    with pytest.raises(ValueError, match="activity trigger output must be json serializable"):
        await run({})  # the worker fails such an activity: its result cannot go back to the orchestrator
