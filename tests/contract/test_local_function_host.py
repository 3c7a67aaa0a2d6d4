"""The local function host's Event Grid endpoint, driven by the local ACS's Event Grid subscription.

As the Functions host does: the validation handshake echoes the code, CloudEvents abuse protection
answers OPTIONS, each event of a delivery invokes the trigger once, and bad deliveries get a 4xx reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from local_stack.acs import DeliveryFailed, EventGridSubscription, incoming_call_event
from local_stack.function_host import EVENTGRID_PATH, Function, FunctionHost

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
