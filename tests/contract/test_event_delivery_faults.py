"""Event delivery faults, end to end on the real pieces: IncomingCall delivered many times at once and
late, callbacks duplicated, reordered and arriving for finished calls.

Everything goes over HTTP to the local function host (function_app's own routes and its Event Grid
endpoint), the real Call Automation SDK answers against LocalAcs (HMAC-checked, recording every
request), and call_session runs on the local Durable runtime (the real replay engine) with its real
activities (SQLite records, Redis). Every test ends with the same checks: exactly one answer, one
orchestration started, a consistent final state, no exception escaped a function, and a next call works.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from local_stack.acs import AcsRequest, EventGridSubscription
from local_stack.acs.calls import cloud_event
from switchboard.call_records import CallRecord
from tests.support.functions_harness import Harness, open_harness

N = 12  # deliveries of one event at once


class Stack:
    """The harness with the local Durable runtime, counting orchestration starts and record writes."""

    def __init__(self, h: Harness, http: aiohttp.ClientSession, grid: EventGridSubscription) -> None:
        assert h.engine is not None
        self.h, self.engine, self.http, self.grid = h, h.engine, http, grid
        self.starts: list[str] = []
        self.records: list[str] = []

    def answers(self, event: dict[str, Any]) -> list[AcsRequest]:
        context = event["data"]["incomingCallContext"]
        return [r for r in self.h.acs.requests if r.operation == "answer" and r.body["incomingCallContext"] == context]

    async def post(self, url: str, body: Any) -> tuple[int, Any]:
        async with self.http.post(url, json=body) as response:
            return response.status, await response.json(content_type=None)

    async def answered(self, event: dict[str, Any]) -> tuple[str, str]:
        """(call id, callback URL) of an event answered exactly once."""
        [answer] = self.answers(event)
        assert answer.status == 200
        assert answer.call_connection_id is not None
        return answer.call_connection_id, answer.body["callbackUri"]

    def event(self, connection: str, name: str) -> dict[str, Any]:
        """A fresh callback CloudEvent for the call, as ACS would post it."""
        return cloud_event(self.h.acs.calls[connection], name)

    async def ended(self, call_id: str) -> dict[str, Any]:
        status = await self.engine.wait_for_completion(call_id, timeout=20)
        assert status["runtimeStatus"] == "Completed", status
        assert status["customStatus"]["state"] == "ended"
        assert status["output"]["record_written"]
        assert status["output"]["session_cleaned"]
        assert self.records.count(call_id) == 1  # written once (an upsert by call id)
        assert await self.h.store.get(call_id) is None
        return status

    async def next_call_works(self) -> None:
        event = self.h.incoming()
        assert await self.grid.deliver(event) == 202
        await self.answered(event)
        status = self.engine.status(event["data"]["correlationId"])
        assert (status["runtimeStatus"], status["customStatus"]["state"]) == ("Running", "ringing")


@pytest.fixture
async def stack(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                caplog: pytest.LogCaptureFixture) -> AsyncIterator[Stack]:
    caplog.set_level(logging.INFO)
    async with open_harness(redis_url, tmp_path, local_durable=True) as h, aiohttp.ClientSession() as http:
        grid = EventGridSubscription(http, f"{h.host_url}/runtime/webhooks/eventgrid?functionName=on_incoming_call")
        await grid.validate()
        s = Stack(h, http, grid)
        start_new, upsert = s.engine.start_new, h.worker.records.upsert

        async def counted_start(name: str, instance_id: str | None = None, input: Any = None) -> str:
            s.starts.append(instance_id or "")
            return await start_new(name, instance_id, input)

        async def counted_upsert(record: CallRecord) -> None:
            s.records.append(record.call_id)
            await upsert(record)

        monkeypatch.setattr(s.engine, "start_new", counted_start)
        monkeypatch.setattr(h.worker.records, "upsert", counted_upsert)
        yield s
        await s.next_call_works()
    # No exception escaped a function (the host logs each one), and no orchestration failed.
    assert [r.getMessage() for r in caplog.records if r.name == "local_stack.function_host"
            and r.levelno >= logging.ERROR] == []


async def call_ends(s: Stack, call_id: str, connection: str) -> dict[str, Any]:
    assert await s.h.acs.post_callback(connection, "CallConnected") == 200
    assert await s.h.acs.post_callback(connection, "CallDisconnected") == 200
    return await s.ended(call_id)


# --- IncomingCall ---------------------------------------------------------------------------------


async def test_incoming_call_delivered_many_times_at_once_then_late_is_answered_once(stack: Stack) -> None:
    s = stack
    event = s.h.incoming()
    call_id = event["data"]["correlationId"]
    half = N // 2  # through the Event Grid endpoint over HTTP, and through the trigger as the host invokes it
    statuses = await asyncio.gather(*(s.grid.deliver(event) for _ in range(half)),
                                    *(s.h.deliver(event) for _ in range(N - half)))
    assert statuses[:half] == [202] * half
    connection, _ = await s.answered(event)
    assert s.starts == [call_id]
    assert s.engine.status(call_id)["customStatus"]["state"] == "ringing"

    assert await s.grid.deliver(event) == 202  # late: the call is live
    await s.h.store.release("incoming", call_id)  # ...and its claim has expired: the session says answered
    assert await s.grid.deliver(event) == 202
    assert len(s.answers(event)) == 1
    output = (await call_ends(s, call_id, connection))["output"]
    assert (output["end_reason"], output["connected"], output["events_handled"]) == ("disconnected", True, 2)

    assert await s.grid.deliver(event) == 202  # later: the call has ended, its claim still held
    # Later still: the claim expired (DEDUPE_TTL_SECONDS) and Event Grid redelivers the event as it was
    # first published; its eventTime says the call rang long ago, so nothing is sent to ACS.
    await s.h.store.release("incoming", call_id)
    aged = {**event, "eventTime": (datetime.now(UTC) - timedelta(hours=2)).isoformat()}
    assert await s.grid.deliver(aged) == 202

    assert len(s.answers(event)) == 1
    assert s.starts == [call_id]
    assert s.engine.status(call_id)["output"] == output  # the finished call is untouched
    assert await s.h.store.get(call_id) is None


async def test_a_late_event_that_looks_fresh_is_refused_by_acs_and_acknowledged(stack: Stack) -> None:
    """Defence in depth: a claim gone and a fresh-looking time (clock skew, or no eventTime at all)."""
    s = stack
    event = s.h.incoming()
    call_id = event["data"]["correlationId"]
    await s.grid.deliver(event)
    connection, _ = await s.answered(event)
    await call_ends(s, call_id, connection)

    await s.h.store.release("incoming", call_id)
    del event["eventTime"]
    for _ in range(2):  # acknowledged (no Event Grid retry), and the claim kept: the second never reaches ACS
        assert await s.grid.deliver(event) == 202
    assert [(r.status, r.call_connection_id is None) for r in s.answers(event)] == [(200, False), (400, True)]
    assert s.starts == [call_id]
    assert await s.h.store.get(call_id) is None  # the seed for the dead call was removed
    assert s.engine.status(call_id)["runtimeStatus"] == "Completed"


@pytest.mark.parametrize(("schema", "time_key"), [("eventgrid", "eventTime"), ("cloudevents", "time")])
async def test_the_webhook_acknowledges_events_too_old_to_answer(stack: Stack, schema: str, time_key: str) -> None:
    s = stack
    event = s.h.incoming(schema=schema)
    event[time_key] = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    status, body = await s.post(f"{s.h.host_url}/api/eventgrid/incoming-call", [event])
    assert (status, body) == (200, {"calls": [{"call_id": event["data"]["correlationId"], "outcome": "stale"}],
                                    "ignored": 0, "rejected": []})
    assert s.answers(event) == []
    assert s.starts == []


# --- callbacks ------------------------------------------------------------------------------------


async def test_the_same_callback_delivered_many_times_at_once_is_handled_once(stack: Stack) -> None:
    s = stack
    event = s.h.incoming()
    call_id = event["data"]["correlationId"]
    await s.grid.deliver(event)
    connection, url = await s.answered(event)

    connected = s.event(connection, "CallConnected")
    replies = await asyncio.gather(*(s.post(url, [connected]) for _ in range(N)))
    assert {status for status, _ in replies} == {200}
    assert sum(body["raised"] for _, body in replies) == 1
    assert sum(body["duplicates"] for _, body in replies) == N - 1
    assert s.engine.status(call_id)["customStatus"]["state"] == "connected"

    disconnected = s.event(connection, "CallDisconnected")
    await asyncio.gather(*(s.post(url, [disconnected, connected]) for _ in range(N)))
    output = (await s.ended(call_id))["output"]
    assert output["events_handled"] == 2  # each distinct event once


async def test_a_reordered_burst_and_callbacks_after_the_end_leave_one_consistent_outcome(stack: Stack) -> None:
    s = stack
    event = s.h.incoming()
    call_id = event["data"]["correlationId"]
    await s.grid.deliver(event)
    connection, url = await s.answered(event)

    # The disconnect overtakes everything; CallConnected comes twice (two ids); participants come last.
    burst = [s.event(connection, name) for name in ("CallDisconnected", "MediaStreamingStarted", "CallConnected",
                                                    "CallConnected", "ParticipantsUpdated")]
    for callback in burst:
        status, body = await s.post(url, [callback])
        # Raised (the orchestration is still finishing), dropped as late, or the call is gone (404): never a 5xx.
        assert status in (200, 404), body
        assert status == 200 or body["error"]["code"] == "unknown_call"
    final = await s.ended(call_id)
    assert (final["output"]["end_reason"], final["output"]["connected"]) == ("disconnected", False)
    assert final["output"]["events_handled"] == 1  # the disconnect: the call never counted as connected

    # Long after: every callback gets a 404 with a reason, the record and the outcome stay as they were.
    late = await asyncio.gather(*(s.post(url, [callback]) for callback in burst))
    assert late == [(404, {"error": {"code": "unknown_call", "message": "no such call in progress"}})] * len(burst)
    assert s.engine.status(call_id) == final
    assert len(s.answers(event)) == 1
    assert s.starts == [call_id]


async def test_events_for_a_finished_call_whose_session_outlived_it_are_acknowledged(stack: Stack) -> None:
    """The session lingers when the record could not be written: the orchestration is gone (Durable 410)."""
    s = stack
    event = s.h.incoming()
    call_id = event["data"]["correlationId"]
    await s.grid.deliver(event)
    connection, url = await s.answered(event)
    session = await s.h.store.get(call_id)
    final = await call_ends(s, call_id, connection)
    assert session is not None
    assert await s.h.store.create(session)

    status, body = await s.post(url, [s.event(connection, "ParticipantsUpdated")])
    assert (status, body) == (200, {"raised": 0, "duplicates": 0, "ignored": 1, "call_ended": True})
    token = url.split("?token=")[1]
    status, body = await s.post(f"{s.h.host_url}/api/calls/{call_id}/events/HangupRequested?token={token}", {})
    assert (status, body) == (409, {"error": {"code": "call_ended", "message": "the call has ended"}})
    async with s.http.delete(f"{s.h.host_url}/api/calls/{call_id}") as response:
        assert (response.status, (await response.json())["error"]["code"]) == (409, "call_ended")
    status, body = await s.post(f"{s.h.host_url}/api/calls/{call_id}/transfer", {})
    assert (status, body["error"]["code"]) == (409, "call_ended")
    assert s.engine.status(call_id) == final
    await s.h.store.delete(call_id)  # as the record's retry would
