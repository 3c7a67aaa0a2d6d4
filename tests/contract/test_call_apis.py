"""The call APIs and the call_session activities, through the real azure-functions objects, the real Call
Automation SDK against LocalAcs, the real DurableOrchestrationClient against a fake Durable webhook,
Redis, and the SQLite record store.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from switchboard.call_records import build_record, caller_salt
from switchboard.logs import mask_phone
from switchboard.session_models import CallEvent, Speaker, Turn
from switchboard.tokens import Purpose
from tests.support.functions_harness import (
    AGENT,
    BANKING,
    CALLER,
    MEDIA_URL,
    Harness,
    query_token,
    reply_json,
)
from tests.support.functions_index import functions

CALLEE = "+14255550199"


async def place(h: Harness, body: Any) -> Any:
    return await h.http("place_call", "POST", "calls", body=body)


def trigger(name: str) -> dict[str, Any]:
    bindings = json.loads(functions()[name].get_function_json())["bindings"]
    found: dict[str, Any] = next(b for b in bindings if b["type"] == "httpTrigger")
    return found


def test_callbacks_are_anonymous_and_the_call_apis_need_a_function_key() -> None:
    levels = {name: trigger(name)["authLevel"] for name in (
        "acs_callbacks", "media_host_event", "health", "place_call", "call", "transfer_call_api", "call_record",
        "incoming_call_webhook")}
    assert levels == {"acs_callbacks": "ANONYMOUS", "media_host_event": "ANONYMOUS", "health": "ANONYMOUS",
                      "place_call": "FUNCTION", "call": "FUNCTION", "transfer_call_api": "FUNCTION",
                      "call_record": "FUNCTION", "incoming_call_webhook": "FUNCTION"}
    assert (trigger("call")["route"], trigger("call")["methods"]) == ("calls/{call_id}", ["GET", "DELETE"])
    assert trigger("media_host_event")["route"] == "calls/{call_id}/events/{name}"


# --- POST /api/calls ----------------------------------------------------------------------------


async def test_placing_a_call_creates_it_at_acs_with_media_and_starts_its_session(harness: Harness) -> None:
    h = harness
    response = await place(h, {"to": CALLEE, "scenario": "banking"})
    assert response.status_code == 201
    body = reply_json(response)
    call_id = body["call_id"]
    [create] = h.acs.requests
    assert (create.operation, create.status) == ("create", 201)
    assert body == {"call_id": call_id, "call_connection_id": create.call_connection_id, "scenario": "banking"}

    callback_token = query_token(create.body["callbackUri"])
    media_token = query_token(create.body["mediaStreamingOptions"]["transportUrl"])
    assert create.body == {
        "targets": [{"rawId": f"4:{CALLEE}", "phoneNumber": {"value": CALLEE}}],
        "sourceCallerIdNumber": {"value": BANKING},  # the scenario's number
        "callbackUri": f"{h.host_url}/api/callbacks/{call_id}?token={callback_token}",
        "operationContext": "outbound",
        "mediaStreamingOptions": {"transportType": "websocket", "contentType": "audio", "audioChannelType": "mixed",
                                  "startMediaStreaming": True, "enableBidirectional": True,
                                  "audioFormat": "pcm24KMono", "enableDtmfTones": True,
                                  "transportUrl": f"{MEDIA_URL}/api/v1/media/stream?token={media_token}"},
    }
    h.store.verify_token(callback_token, Purpose.CALLBACK, call_id)
    h.store.verify_token(media_token, Purpose.MEDIA, call_id)

    session = await h.store.get(call_id)
    assert session is not None
    assert (session.scenario, session.call_connection_id, session.context) == (
        "banking", create.call_connection_id, {"direction": "outbound"})
    [start] = h.durable.started()
    assert (start.instance_id, start.name) == (call_id, "call_session")
    assert start.body["call_connection_id"] == create.call_connection_id
    assert start.body["scenario"] == "banking"


async def test_an_outbound_calls_callbacks_reach_its_orchestration(harness: Harness) -> None:
    """ACS gives an outbound call its own correlation id: its callbacks carry that, not our call id."""
    h = harness
    call_id = reply_json(await place(h, {"to": CALLEE}))["call_id"]
    [create] = h.acs.requests
    assert create.call_connection_id is not None
    correlation_id = h.acs.calls[create.call_connection_id].correlation_id
    assert correlation_id != call_id
    session = await h.store.get(call_id)
    assert session is not None
    assert session.correlation_id == correlation_id

    assert await h.acs.post_callback(create.call_connection_id, "CallConnected") == 200
    assert await h.acs.post_callback(create.call_connection_id, "CallDisconnected") == 200
    assert [r.name for r in h.durable.raised(call_id)] == ["CallConnected", "CallDisconnected"]

    # Once ACS's correlation id is known, an event carrying any other is refused.
    stray = await h.acs.post_callback(create.call_connection_id, "ParticipantsUpdated",
                                      {"correlationId": str(uuid.uuid4())})
    assert stray == 400
    assert len(h.durable.raised(call_id)) == 2


@pytest.mark.parametrize(("body", "message"), [
    (b"{oops", "body is not valid JSON"),
    ({}, "to: Field required"),
    ({"to": "0800 123"}, "to: String should match pattern '^\\+[1-9][0-9]{6,14}$'"),
    ({"to": CALLEE, "extra": 1}, "extra: Extra inputs are not permitted"),
    ({"to": CALLEE, "scenario": "nope"}, "unknown scenario 'nope'"),
    ([CALLEE], "body: Input should be a valid dictionary or instance of NewCall"),
])
async def test_a_bad_call_request_is_refused_with_a_reason(harness: Harness, body: Any, message: str) -> None:
    response = await place(harness, body)
    assert response.status_code == 400
    assert reply_json(response) == {"error": {"code": "bad_request", "message": message}}
    assert harness.acs.requests == []
    assert harness.durable.requests == []


async def test_a_call_acs_refuses_is_a_502_and_leaves_no_session(harness: Harness) -> None:
    h = harness
    h.acs.fail_next("create", status=403)
    response = await place(h, {"to": CALLEE})
    assert response.status_code == 502
    assert reply_json(response)["error"]["code"] == "acs_error"
    assert [k async for k in h.store.redis.scan_iter(match=f"{h.store.prefix}call:*")] == []
    assert h.durable.requests == []


# --- GET and DELETE /api/calls/{id}, POST /transfer, GET /record --------------------------------


async def test_the_status_of_a_call_is_its_orchestration_and_a_masked_session_summary(harness: Harness) -> None:
    h = harness
    call_id, _ = await h.answered_call()
    instance = h.durable.instances[call_id]
    instance.runtime_status, instance.custom_status = "Running", {"state": "connected", "agent": "auth"}
    await h.store.append_turn(call_id, Turn(speaker=Speaker.CALLER, text="hello"))

    response = await h.http("call", "GET", f"calls/{call_id}", route_params={"call_id": call_id})
    assert response.status_code == 200
    body = reply_json(response)
    entry = h.worker.agents.current.scenario("banking").spec.entry_agent
    assert body["session"] == {"scenario": "banking", "agent": entry, "status": "ringing",
                               "caller": mask_phone(CALLER), "turns": 1, "handoffs": 0}
    orchestration = body["orchestration"]
    assert orchestration["runtime_status"] == "Running"
    assert orchestration["custom_status"] == {"state": "connected", "agent": "auth"}
    assert orchestration["created_time"]
    assert orchestration["last_updated_time"]
    assert body["call_id"] == call_id
    assert CALLER not in response.get_body().decode()
    assert [(r.operation, r.instance_id) for r in h.durable.of("get_status")] == [("get_status", call_id)]

    # Ended: the session is cleaned, the orchestration's status remains.
    instance.runtime_status = "Completed"
    await h.store.delete(call_id)
    body = reply_json(await h.http("call", "GET", f"calls/{call_id}", route_params={"call_id": call_id}))
    assert (body["orchestration"]["runtime_status"], body["session"]) == ("Completed", None)


async def test_the_status_of_an_unknown_call_is_404(harness: Harness) -> None:
    call_id = str(uuid.uuid4())
    response = await harness.http("call", "GET", f"calls/{call_id}", route_params={"call_id": call_id})
    assert response.status_code == 404
    assert reply_json(response)["error"]["code"] == "unknown_call"
    assert [r.status for r in harness.durable.of("get_status")] == [404]


async def test_transfer_and_hang_up_are_raised_to_the_orchestration(harness: Harness) -> None:
    h = harness
    call_id, _ = await h.answered_call()
    route = {"call_id": call_id}
    response = await h.http("transfer_call_api", "POST", f"calls/{call_id}/transfer", route_params=route,
                            body={"target": AGENT, "reason": "escalation"})
    assert (response.status_code, reply_json(response)) == (202, {"call_id": call_id, "requested": "transfer"})
    response = await h.http("transfer_call_api", "POST", f"calls/{call_id}/transfer", route_params=route, body=b"")
    assert response.status_code == 202
    response = await h.http("call", "DELETE", f"calls/{call_id}", route_params=route)
    assert (response.status_code, reply_json(response)) == (202, {"call_id": call_id, "requested": "hang-up"})

    assert [(r.name, r.body) for r in h.durable.raised(call_id)] == [
        ("TransferRequested", {"target": AGENT, "reason": "escalation"}),
        ("TransferRequested", {"reason": "requested through the API"}),
        ("HangupRequested", {"reason": "requested through the API"}),
    ]
    assert h.acs.requests[1:] == []  # the orchestration acts on the call, not the API


async def test_transfer_and_hang_up_refuse_bad_targets_and_unknown_calls(harness: Harness) -> None:
    h = harness
    call_id, _ = await h.answered_call()
    bad = await h.http("transfer_call_api", "POST", f"calls/{call_id}/transfer", route_params={"call_id": call_id},
                       body={"target": "sip:someone"})
    assert bad.status_code == 400
    other = str(uuid.uuid4())
    missing = await h.http("transfer_call_api", "POST", f"calls/{other}/transfer", route_params={"call_id": other},
                           body={"target": AGENT})
    gone = await h.http("call", "DELETE", f"calls/{other}", route_params={"call_id": other})
    assert (missing.status_code, gone.status_code) == (404, 404)
    assert h.durable.raised() == []


async def test_the_record_of_a_call_is_404_until_written(harness: Harness) -> None:
    h = harness
    call_id, _ = await h.answered_call()
    route = {"call_id": call_id}
    response = await h.http("call_record", "GET", f"calls/{call_id}/record", route_params=route)
    assert response.status_code == 404
    assert reply_json(response)["error"]["code"] == "not_found"

    record = await build_record(h.store, call_id, outcome={"end_reason": "disconnected"},
                                ended_at=datetime.now(UTC), ttl_days=30, salt=caller_salt(h.settings))
    assert record is not None
    await h.worker.records.upsert(record)
    response = await h.http("call_record", "GET", f"calls/{call_id}/record", route_params=route)
    assert response.status_code == 200
    assert reply_json(response) == record.to_document()
    assert reply_json(response)["caller"]["masked"] == mask_phone(CALLER)


# --- the activities, with the real services ------------------------------------------------------


async def connected_call(h: Harness) -> tuple[str, str]:
    call_id, connection = await h.answered_call()
    assert await h.acs.post_callback(connection, "CallConnected") == 200  # LocalAcs: the call is established
    return call_id, connection


async def test_transfer_call_asks_acs_to_transfer_to_the_target(harness: Harness) -> None:
    h = harness
    call_id, connection = await connected_call(h)
    result = await h.call("transfer_call", payload={"call_id": call_id, "call_connection_id": connection,
                                                    "target": AGENT, "operation_context": "transfer-1"})
    assert result == {"ok": True, "operation_context": "transfer-1"}
    transfer = await h.acs.wait_for("transfer")
    assert (transfer.call_connection_id, transfer.status) == (connection, 202)
    assert transfer.body == {"targetParticipant": {"rawId": f"4:{AGENT}", "phoneNumber": {"value": AGENT}},
                             "operationContext": "transfer-1"}


async def test_hang_up_call_terminates_the_call_for_everyone(harness: Harness) -> None:
    h = harness
    call_id, connection = await connected_call(h)
    assert await h.call("hang_up_call", payload={"call_id": call_id, "call_connection_id": connection}) == {"ok": True}
    terminate = await h.acs.wait_for("terminate")
    assert (terminate.call_connection_id, terminate.status) == (connection, 204)
    assert h.acs.calls[connection].state == "disconnected"


async def test_start_media_streaming_restarts_the_calls_media(harness: Harness) -> None:
    h = harness
    call_id, connection = await connected_call(h)
    result = await h.call("start_media_streaming", payload={"call_id": call_id, "call_connection_id": connection})
    assert result == {"ok": True}
    started = await h.acs.wait_for("start_media_streaming")
    assert (started.call_connection_id, started.status) == (connection, 202)
    assert started.body == {"operationContext": "media-restart"}


async def test_an_acs_failure_fails_the_activity_so_durable_retries_it(harness: Harness) -> None:
    from azure.core.exceptions import HttpResponseError

    h = harness
    call_id, connection = await connected_call(h)
    h.acs.fail_next("terminate", status=403)
    with pytest.raises(HttpResponseError):
        await h.call("hang_up_call", payload={"call_id": call_id, "call_connection_id": connection})


async def test_write_call_record_keeps_the_transcript_from_the_session(harness: Harness) -> None:
    h = harness
    call_id, _ = await h.answered_call()
    await h.store.append_turn(call_id, Turn(speaker=Speaker.AGENT, text="Welcome to the bank.", agent="auth"))
    await h.store.append_turn(call_id, Turn(speaker=Speaker.CALLER, text=f"My number is {CALLER}."))
    payload = {"call_id": call_id, "outcome": {"end_reason": "disconnected", "handoffs": 0}}

    assert await h.call("write_call_record", payload=payload) == {"ok": True}
    record = await h.worker.records.get(call_id)
    assert record is not None
    assert [(t.speaker, t.text) for t in record.transcript] == [
        ("agent", "Welcome to the bank."), ("caller", f"My number is {mask_phone(CALLER)}.")]
    assert (record.scenario, record.called_number, record.end_reason) == ("banking", BANKING, "disconnected")
    assert record.caller.masked == mask_phone(CALLER)
    assert CALLER not in record.to_json()

    # notify_media_host and clean_session, the other two activities, on the same session.
    notice = {"call_id": call_id, "kind": "handoff_denied", "agent": "auth", "data": {"reason": "not yet"}}
    assert await h.call("notify_media_host", payload=notice) == {"ok": True, "kind": "handoff_denied"}
    [event] = await h.store.events(call_id)
    assert isinstance(event, CallEvent)
    assert (event.kind, event.agent, event.data) == ("handoff_denied", "auth", {"reason": "not yet"})
    assert await h.call("clean_session", payload={"call_id": call_id}) == {"ok": True}
    assert await h.store.load(call_id) is None
    assert await h.call("write_call_record", payload=payload) == {"ok": True}  # a retry after cleaning: no-op
    assert await h.worker.records.get(call_id) == record
