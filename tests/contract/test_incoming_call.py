"""IncomingCall through the real azure-functions objects: the eventGridTrigger `on_incoming_call` (both
Event Grid schemas, decoded by the worker's converter), its HTTP twin `incoming_call_webhook`, the real
Call Automation SDK against LocalAcs, the real DurableOrchestrationClient against a fake Durable webhook,
and Redis.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from websockets.asyncio.server import ServerConnection, serve

from local_stack.acs import MediaOffer
from local_stack.callers.acs_caller import AcsMediaClient
from media_host.transports.acs_models import InboundMessage
from orchestrations.models import CallSessionInput
from switchboard.session_models import CallPhase
from switchboard.tokens import Purpose
from tests.support.functions_harness import (
    BANKING,
    CALLER,
    CLINIC,
    MEDIA_URL,
    UNKNOWN,
    Harness,
    open_harness,
    payload,
    query_token,
    reply_json,
)

# enableDtmfTones: ACS streams DtmfData only when asked ("When DTMF is enabled Azure Communication Services sends
# a DtmfData type": learn.microsoft.com/azure/communication-services/how-tos/call-automation/audio-streaming-quickstart)
MEDIA_STREAMING = {"transportType": "websocket", "contentType": "audio", "audioChannelType": "mixed",
                   "startMediaStreaming": True, "enableBidirectional": True, "audioFormat": "pcm24KMono",
                   "enableDtmfTones": True}


def expected_input(h: Harness, call_id: str, call_connection_id: str, scenario_name: str) -> dict[str, Any]:
    scenario = h.worker.agents.current.scenario(scenario_name)
    return {"call_id": call_id, "call_connection_id": call_connection_id, "scenario": scenario_name,
            "entry_agent": scenario.spec.entry_agent, "human_queue": scenario.spec.policy.human_queue,
            "max_handoffs": scenario.spec.policy.max_handoffs,
            "auth_required": sorted(a.name for a in scenario.agents.values() if a.spec.requires_auth),
            "connect_timeout_s": 45, "max_duration_s": 3600, "media_restart_attempts": 5}


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
async def test_an_incoming_call_is_answered_with_media_and_its_session_started(harness: Harness,
                                                                               schema: str) -> None:
    h = harness
    event = h.incoming(BANKING, CALLER, schema=schema)
    call_id, context = event["data"]["correlationId"], event["data"]["incomingCallContext"]

    await h.deliver(event)

    [answer] = h.acs.requests
    assert (answer.operation, answer.status) == ("answer", 200)
    body = answer.body
    callback_token = query_token(body["callbackUri"])
    media_token = query_token(body["mediaStreamingOptions"]["transportUrl"])
    assert body == {
        "incomingCallContext": context,
        "callbackUri": f"{h.host_url}/api/callbacks/{call_id}?token={callback_token}",
        "operationContext": "answer",
        "mediaStreamingOptions": {**MEDIA_STREAMING,
                                  "transportUrl": f"{MEDIA_URL}/api/v1/media/stream?token={media_token}"},
    }
    assert h.store.verify_token(callback_token, Purpose.CALLBACK, call_id).call_id == call_id
    assert h.store.verify_token(media_token, Purpose.MEDIA, call_id).call_id == call_id

    session = await h.store.get(call_id)
    assert session is not None
    assert (session.scenario, session.correlation_id, session.caller, session.callee) == (
        "banking", call_id, CALLER, BANKING)
    assert session.current_agent == h.worker.agents.current.scenario("banking").spec.entry_agent
    assert session.call_connection_id == answer.call_connection_id
    assert session.status is CallPhase.RINGING

    [start] = h.durable.started()
    assert (start.instance_id, start.name, start.status) == (call_id, "call_session", 202)
    assert start.body == expected_input(h, call_id, answer.call_connection_id or "", "banking")
    CallSessionInput.model_validate(start.body)  # what the orchestration will parse
    assert h.durable.instances[call_id].input == start.body


async def test_a_key_pressed_on_an_answered_call_reaches_the_media_socket(harness: Harness) -> None:
    """The answer asks for DTMF, so the local ACS (which streams DtmfData only then) delivers a `#` to the
    socket at the transportUrl: here a stand-in for the media host, as MEDIA_URL is not served."""
    h = harness
    received: list[InboundMessage] = []
    pressed, errors = asyncio.Event(), list[BaseException]()

    async def media_host(ws: ServerConnection) -> None:
        async for message in ws:
            received.append(InboundMessage.model_validate_json(message))  # as the media host's ACS adapter parses
            if received[-1].kind == "DtmfData":
                pressed.set()

    async with serve(media_host, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]

        async def caller(offer: MediaOffer) -> None:
            media = AcsMediaClient.for_offer(offer)
            await media.connect(f"ws://127.0.0.1:{port}/api/v1/media/stream", offer.headers)
            try:
                await media.send_dtmf("#")
            except Exception as exc:  # the key never left the phone: say why instead of timing out
                errors.append(exc)
                pressed.set()
            await offer.ended.wait()
            await media.disconnect()

        h.acs.media.connector = caller
        _, connection = await h.answered_call()
        assert await h.acs.post_callback(connection, "CallConnected") == 200
        assert await h.acs.post_callback(connection, "MediaStreamingStarted") == 200  # ACS opens the socket
        await asyncio.wait_for(pressed.wait(), 5)
        h.acs.caller_hangs_up(connection)
    assert errors == []
    assert received[0].kind == "AudioMetadata"
    assert received[0].audio_metadata is not None
    assert received[0].audio_metadata.sample_rate == 24000  # pcm24KMono, as the answer asked
    [key] = [m.dtmf_data for m in received if m.dtmf_data is not None]
    assert key.data == "#"


async def test_calls_are_routed_by_the_called_number_and_unknown_numbers_get_the_default(
        harness: Harness) -> None:
    h = harness
    clinic_call, clinic_connection = await h.answered_call(CLINIC)
    other_call, other_connection = await h.answered_call(UNKNOWN)
    assert h.worker.settings.default_scenario == "banking"

    for call_id, connection, scenario in ((clinic_call, clinic_connection, "clinic"),
                                          (other_call, other_connection, "banking")):
        session = await h.store.get(call_id)
        assert session is not None
        assert (session.scenario, session.callee) == (scenario, CLINIC if scenario == "clinic" else UNKNOWN)
        [start] = h.durable.started(call_id)
        assert start.body == expected_input(h, call_id, connection, scenario)
    assert [r.operation for r in h.acs.requests] == ["answer", "answer"]


async def test_an_unknown_number_is_rejected_when_configured(redis_url: str, tmp_path: Path) -> None:
    async with open_harness(redis_url, tmp_path, unknown_number_action="reject") as h:
        event = h.incoming(UNKNOWN)
        await h.deliver(event)

        [reject] = h.acs.requests
        assert (reject.operation, reject.status) == ("reject", 204)
        assert reject.body == {"incomingCallContext": event["data"]["incomingCallContext"],
                               "callRejectReason": "none"}
        assert await h.store.get(event["data"]["correlationId"]) is None
        assert h.durable.requests == []

        await h.deliver(h.incoming(BANKING))  # a known number still answers
        assert [r.operation for r in h.acs.requests] == ["reject", "answer"]


async def test_a_failed_reject_releases_the_claim_so_a_redelivery_rejects(redis_url: str, tmp_path: Path) -> None:
    async with open_harness(redis_url, tmp_path, unknown_number_action="reject") as h:
        event = h.incoming(UNKNOWN)
        h.acs.fail_next("reject", status=429)
        with pytest.raises(HttpResponseError):
            await h.deliver(event)
        await h.deliver(event)
        assert [(r.operation, r.status) for r in h.acs.requests] == [("reject", 429), ("reject", 204)]


async def test_five_concurrent_deliveries_of_one_event_answer_once(harness: Harness) -> None:
    h = harness
    event = h.incoming()
    await asyncio.gather(*(h.deliver(event) for _ in range(5)))
    await h.deliver(event)  # and a late redelivery

    assert [r.operation for r in h.acs.requests] == ["answer"]
    assert len(h.durable.started()) == 1


async def test_a_failed_answer_releases_the_claim_so_a_redelivery_answers(harness: Harness) -> None:
    h = harness
    event = h.incoming()
    call_id = event["data"]["correlationId"]
    # A bare 429 is not retried by the SDK for a POST: the first delivery fails at once.
    h.acs.fail_next("answer", status=429)

    with pytest.raises(HttpResponseError) as failed:
        await h.deliver(event)  # raising is what makes Event Grid deliver again
    assert failed.value.status_code == 429
    assert h.durable.requests == []

    await h.deliver(event)
    assert [(r.operation, r.status) for r in h.acs.requests] == [("answer", 429), ("answer", 200)]
    session = await h.store.get(call_id)
    assert session is not None
    assert session.call_connection_id == h.acs.requests[1].call_connection_id
    [start] = h.durable.started()
    assert start.instance_id == call_id


async def test_a_failed_session_start_after_answering_is_not_answered_again(harness: Harness) -> None:
    h = harness
    event = h.incoming()
    h.durable.fail_next("start_new", 500)
    with pytest.raises(Exception, match="Injected fault"):
        await h.deliver(event)
    await h.deliver(event)  # answering twice would fail at ACS: the redelivery is a duplicate
    assert [r.operation for r in h.acs.requests] == ["answer"]


async def test_events_that_are_not_incoming_calls_are_ignored(harness: Harness) -> None:
    h = harness
    event = h.incoming()
    event["eventType"] = "Microsoft.Communication.CallStarted"
    await h.deliver(event)
    assert h.acs.requests == []
    assert h.durable.requests == []


# --- the HTTP twin ------------------------------------------------------------------------------


async def test_the_webhook_answers_the_subscription_validation_handshake(harness: Harness) -> None:
    events = payload("eventgrid_validation")
    response = await harness.http("incoming_call_webhook", "POST", "eventgrid/incoming-call", body=events,
                                  headers={"aeg-event-type": "SubscriptionValidation"})
    assert response.status_code == 200
    assert reply_json(response) == {"validationResponse": events[0]["data"]["validationCode"]}
    assert reply_json(response) == payload("eventgrid_validation_response") | {
        "validationResponse": events[0]["data"]["validationCode"]}


async def test_the_webhook_answers_cloudevents_abuse_protection_for_event_grid_only(harness: Harness) -> None:
    response = await harness.http("incoming_call_webhook", "OPTIONS", "eventgrid/incoming-call",
                                  headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert response.status_code == 200
    assert response.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"

    other = await harness.http("incoming_call_webhook", "OPTIONS", "eventgrid/incoming-call",
                               headers={"WebHook-Request-Origin": "evil.example.test"})
    assert other.status_code == 400
    assert "WebHook-Allowed-Origin" not in other.headers


@pytest.mark.parametrize("body", [b"{not json", b"[]", json.dumps([{"eventType": "x"}]).encode()])
async def test_the_webhook_refuses_malformed_deliveries_with_a_reason(harness: Harness, body: bytes) -> None:
    response = await harness.http("incoming_call_webhook", "POST", "eventgrid/incoming-call", body=body)
    assert response.status_code == 400
    error = reply_json(response)["error"]
    assert error["code"] == "bad_request"
    assert error["message"]
    assert harness.acs.requests == []


async def test_the_webhook_answers_incoming_calls_in_either_schema(harness: Harness) -> None:
    h = harness
    grid = h.incoming(BANKING)
    response = await h.http("incoming_call_webhook", "POST", "eventgrid/incoming-call", body=[grid])
    assert response.status_code == 200
    assert reply_json(response) == {"calls": [{"call_id": grid["data"]["correlationId"], "outcome": "answered"}],
                                    "ignored": 0, "rejected": []}

    cloud = h.incoming(CLINIC, schema="cloudevents")  # one CloudEvent, not an array
    response = await h.http("incoming_call_webhook", "POST", "eventgrid/incoming-call", body=cloud)
    assert reply_json(response)["calls"] == [{"call_id": cloud["data"]["correlationId"], "outcome": "answered"}]

    again = await h.http("incoming_call_webhook", "POST", "eventgrid/incoming-call", body=[grid])
    assert reply_json(again)["calls"] == [{"call_id": grid["data"]["correlationId"], "outcome": "duplicate"}]
    assert [r.operation for r in h.acs.requests] == ["answer", "answer"]
    assert [s.instance_id for s in h.durable.started()] == [grid["data"]["correlationId"],
                                                           cloud["data"]["correlationId"]]


# --- batched deliveries: each event on its own ----------------------------------------------------
# Event Grid takes 200-204 as delivered, drops or dead-letters a 400 without retrying, retries other
# failures, and a batch succeeds or fails as a whole (learn.microsoft.com/azure/event-grid/delivery-and-retry).


def malformed(h: Harness) -> dict[str, Any]:
    """An IncomingCall ACS would never send: no incomingCallContext, so it can never be answered."""
    event = h.incoming(CLINIC)
    del event["data"]["incomingCallContext"]
    return event


async def test_one_malformed_event_does_not_cost_the_good_calls_of_its_batch(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h = harness
    first, bad, second = h.incoming(BANKING), malformed(h), h.incoming(CLINIC)
    response = await h.http("incoming_call_webhook", "POST", "eventgrid/incoming-call", body=[first, bad, second])

    assert response.status_code == 200  # delivered: Event Grid neither retries nor dead-letters it
    reply = reply_json(response)
    assert reply["calls"] == [{"call_id": first["data"]["correlationId"], "outcome": "answered"},
                              {"call_id": second["data"]["correlationId"], "outcome": "answered"}]
    assert reply["rejected"] == [{"index": 1, "id": bad["id"],
                                  "reason": "invalid IncomingCall: incomingCallContext: Field required"}]
    answers = [r for r in h.acs.requests if r.operation == "answer"]
    assert sorted(r.body["incomingCallContext"] for r in answers) == sorted(
        e["data"]["incomingCallContext"] for e in (first, second))
    assert all(r.status == 200 for r in answers)
    assert sorted(s.instance_id for s in h.durable.started()) == sorted(
        e["data"]["correlationId"] for e in (first, second))
    [line] = [r for r in caplog.records if r.getMessage() == "rejecting a malformed event of an Event Grid delivery"]
    assert (line.event_index, line.event_id) == (1, bad["id"])  # type: ignore[attr-defined]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for number in (CALLER, BANKING, CLINIC):
        assert number not in logged


async def test_a_good_call_that_failed_for_a_passing_reason_fails_its_batch_so_it_is_delivered_again(
        harness: Harness) -> None:
    h = harness
    batch = [h.incoming(BANKING), malformed(h), h.incoming(CLINIC)]
    h.acs.fail_next("answer", status=429)  # one of the two answers meets a throttled ACS
    response = await h.http("incoming_call_webhook", "POST", "eventgrid/incoming-call", body=batch)
    assert response.status_code == 500  # Event Grid retries it

    again = await h.http("incoming_call_webhook", "POST", "eventgrid/incoming-call", body=batch)
    assert again.status_code == 200
    reply = reply_json(again)
    assert sorted(c["outcome"] for c in reply["calls"]) == ["answered", "duplicate"]  # de-duplicated on correlationId
    assert [r["index"] for r in reply["rejected"]] == [1]
    assert sorted(r.status for r in h.acs.requests if r.operation == "answer") == [200, 200, 429]
    assert len(h.durable.started()) == 2


async def test_a_batch_of_nothing_but_malformed_events_is_refused_for_dead_lettering(harness: Harness) -> None:
    h = harness
    bad = [malformed(h), {"eventType": "x"}]
    response = await h.http("incoming_call_webhook", "POST", "eventgrid/incoming-call", body=bad)
    assert response.status_code == 400
    reply = reply_json(response)
    assert reply["error"]["code"] == "bad_request"
    assert [(r["index"], r["id"]) for r in reply["rejected"]] == [(0, bad[0]["id"]), (1, None)]
    assert reply["rejected"][1]["reason"] == "invalid event: id: Field required"
    assert h.acs.requests == []


async def test_events_that_are_not_calls_beside_a_malformed_one_are_acknowledged(harness: Harness) -> None:
    h = harness
    other = h.incoming()
    other["eventType"] = "Microsoft.Communication.CallStarted"
    response = await h.http("incoming_call_webhook", "POST", "eventgrid/incoming-call", body=[other, malformed(h)])
    assert response.status_code == 200
    assert reply_json(response)["ignored"] == 1
    assert h.acs.requests == []
