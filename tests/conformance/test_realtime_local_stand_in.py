"""OpenAI Realtime API: the local Realtime server (tests/support/realtime_server.py) is strict as the service is, over
a plain WebSocket, in both dialects.

Grounded in the openai SDK's event models, openai 3.63.0 (tests/support/realtime_events.py), and the documented event
order (tests/support/realtime_responses.py: the API reference's server events and their docstrings, "also emitted
when a Response is interrupted, incomplete, or cancelled"; ResponseCancelEvent: "The server will respond
with a response.done event with a status of response.status=cancelled. If there is no response to cancel,
the server will respond with an error"). The service's refusal of an unknown field, `unknown_parameter`
with the field as `param`, as quoted in livekit/agents#3210 and openai/openai-realtime-api-beta#9.

Not checkable without the service: its exact wording of other refusals, and the timing of its events.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support.realtime_events import NonConformingEvent, check_server_event
from tests.support.realtime_server import RealtimeServer, Speak

FLAVORS = ["ga", "beta"]


@asynccontextmanager
async def client(server: RealtimeServer) -> AsyncIterator[ClientConnection]:
    headers = {} if server.ga else {"OpenAI-Beta": "realtime=v1"}
    async with connect(f"{server.url}/realtime?model=gpt-realtime", additional_headers=headers) as ws:
        created = json.loads(await ws.recv())
        assert created["type"] == "session.created"
        yield ws


async def until(ws: ClientConnection, kind: str) -> list[dict[str, Any]]:
    """The events received up to and including the first of `kind`."""
    received: list[dict[str, Any]] = []
    while not received or received[-1]["type"] != kind:
        received.append(json.loads(await ws.recv()))
    return received


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_an_event_the_sdk_rejects_is_never_sent(flavor: str) -> None:
    # A delta needs its content_index; function_call_arguments.done has a `name` in GA only.
    bad = {"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", "output_index": 0,
           "delta": "AAAA"}
    async with RealtimeServer(flavor) as server, client(server):
        with pytest.raises(NonConformingEvent, match="content_index"):
            await server.emit(bad)
        with pytest.raises(NonConformingEvent):
            check_server_event({"type": "response.function_call_arguments.done", "event_id": "e", "response_id": "r",
                                "item_id": "i", "output_index": 0, "call_id": "c", "arguments": "{}",
                                **({} if flavor == "ga" else {"name": "f"})}, flavor == "ga")
        server.nonconforming.clear()  # the server would raise again on closing


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_client_event_with_an_unknown_field_gets_the_services_error(flavor: str) -> None:
    async with RealtimeServer(flavor) as server, client(server) as ws:
        field = "voice" if flavor == "ga" else "output_modalities"  # the other dialect's
        await ws.send(json.dumps({"type": "session.update", "event_id": "evt_1",
                                  "session": {**({"type": "realtime"} if flavor == "ga" else {}), field: "x"}}))
        error = (await until(ws, "error"))[-1]["error"]
        assert error == {"type": "invalid_request_error", "code": "unknown_parameter", "param": f"session.{field}",
                         "message": f"Unknown parameter: 'session.{field}'.", "event_id": "evt_1"}
        assert server.problems


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_cancelled_response_ends_with_the_documented_sequence(flavor: str) -> None:
    names = {"audio": "response.output_audio", "transcript": "response.output_audio_transcript"} if flavor == "ga" \
        else {"audio": "response.audio", "transcript": "response.audio_transcript"}
    async with RealtimeServer(flavor, [Speak("one two three four five", 2000, pace=0.1)]) as server, \
            client(server) as ws:
        await ws.send(json.dumps({"type": "response.create"}))
        await until(ws, f"{names['audio']}.delta")
        await ws.send(json.dumps({"type": "response.cancel"}))
        received = await until(ws, "response.done")
        closing = received[next(i for i, e in enumerate(received) if e["type"] == f"{names['audio']}.done"):]
        assert [e["type"] for e in closing] == [
            f"{names['audio']}.done", f"{names['transcript']}.done", "response.content_part.done",
            "response.output_item.done", *(["conversation.item.done"] if flavor == "ga" else []), "response.done"]
        said = closing[1]["transcript"]
        assert "one two three four five".startswith(said)
        assert said != "one two three four five"
        assert closing[3]["item"]["status"] == "incomplete"
        response = closing[-1]["response"]
        assert (response["status"], response["status_details"]) == (
            "cancelled", {"type": "cancelled", "reason": "client_cancelled"})
        assert [(i["status"], i["content"][0]["transcript"]) for i in response["output"]] == [("incomplete", said)]
        await ws.send(json.dumps({"type": "response.cancel", "event_id": "evt_2"}))  # nothing left to cancel
        error = (await until(ws, "error"))[-1]["error"]
        assert (error["code"], error["event_id"]) == ("response_cancel_not_active", "evt_2")
        assert server.problems == []
