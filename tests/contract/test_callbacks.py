"""Call Automation callbacks and media-host events through the real azure-functions objects.

`acs_callbacks` and `media_host_event` are invoked with `func.HttpRequest`s carrying the captured callback
CloudEvents (rewritten to the call's ids) and the real DurableOrchestrationClient against a fake Durable
webhook. Calls are answered first through the IncomingCall trigger against LocalAcs, so each has its
Redis session and its orchestration instance. The media host's `FunctionsControlPlane` posts to the
same functions through a small local function host.
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from media_host.control_plane import FunctionsControlPlane
from switchboard.redis_server import free_port
from switchboard.session_models import CallSession
from switchboard.tokens import Purpose, TokenSigner
from tests.conftest import TEST_SECRET
from tests.support.functions_harness import (
    AGENT,
    Harness,
    open_harness,
    payload,
    query_token,
    reply_json,
)
from tests.support.jwks_server import AUDIENCE, Signer, jwks_server

ORCHESTRATION_PAYLOADS = {
    "CallConnected": "acs_callback_call_connected",
    "MediaStreamingStarted": "acs_callback_media_streaming_started",
    "ParticipantsUpdated": "acs_callback_participants_updated",
    "CallTransferFailed": "acs_callback_call_transfer_failed",
    "CallTransferAccepted": "acs_callback_call_transfer_accepted",
    "MediaStreamingFailed": "acs_callback_media_streaming_failed",
    "MediaStreamingStopped": "acs_callback_media_streaming_stopped",
    "CallDisconnected": "acs_callback_call_disconnected",
}


def callback(h: Harness, call_id: str, connection_id: str, name: str, *, event_id: str | None = None,
             **data: Any) -> dict[str, Any]:
    """The captured callback CloudEvent for `name`, rewritten to this call's ids (and `data` overrides)."""
    file = ORCHESTRATION_PAYLOADS.get(name) or {
        "PlayCompleted": "acs_callback_play_completed",
        "RecognizeCompleted": "acs_callback_recognize_completed_dtmf"}[name]
    [event] = copy.deepcopy(payload(file))
    assert event["type"] == f"Microsoft.Communication.{name}"
    source = f"calling/callConnections/{connection_id}"
    event.update(id=event_id or str(uuid.uuid4()), source=source, subject=source)
    event["data"].update({"callConnectionId": connection_id, "correlationId": call_id,
                          "serverCallId": h.acs.calls[connection_id].server_call_id, **data})
    return dict(event)


async def post(h: Harness, call_id: str, body: Any, *, token: str | None = "valid",
               authorization: str | None = None) -> Any:
    params = {"token": h.token(call_id) if token == "valid" else token} if token is not None else {}
    headers = {"Authorization": authorization} if authorization is not None else {}
    return await h.http("acs_callbacks", "POST", f"callbacks/{call_id}", body=body, params=params,
                        route_params={"call_id": call_id}, headers=headers)


async def post_media_event(h: Harness, call_id: str, name: str, body: Any, *, token: str | None = "valid") -> Any:
    params = {"token": h.token(call_id) if token == "valid" else token} if token is not None else {}
    return await h.http("media_host_event", "POST", f"calls/{call_id}/events/{name}", body=body, params=params,
                        route_params={"call_id": call_id, "name": name})


def raised(h: Harness, call_id: str) -> list[tuple[str | None, Any]]:
    return [(r.name, r.body) for r in h.durable.raised(call_id)]


# --- ACS callbacks ------------------------------------------------------------------------------


async def test_each_orchestration_callback_is_raised_with_its_name_and_data(harness: Harness) -> None:
    h = harness
    call_id, connection = await h.answered_call()
    sent = []
    for name in ORCHESTRATION_PAYLOADS:
        event = callback(h, call_id, connection, name)
        response = await post(h, call_id, [event])
        assert response.status_code == 200, reply_json(response)
        assert reply_json(response) == {"raised": 1, "duplicates": 0, "ignored": 0}
        sent.append((name, event["data"]))
    assert raised(h, call_id) == sent


async def test_local_acs_callbacks_reach_the_orchestration_over_http(harness: Harness) -> None:
    h = harness
    call_id, connection = await h.answered_call()
    [answer] = h.acs.requests
    assert h.acs.calls[connection].callback_url == answer.body["callbackUri"]

    assert await h.acs.post_callback(connection, "CallConnected") == 200
    assert await h.acs.post_callback(connection, "MediaStreamingStarted") == 200
    assert [name for name, _ in raised(h, call_id)] == ["CallConnected", "MediaStreamingStarted"]
    assert raised(h, call_id)[0][1] == h.acs.callbacks[0].body[0]["data"]


async def test_callbacks_the_orchestration_does_not_act_on_are_acknowledged_and_dropped(harness: Harness) -> None:
    h = harness
    call_id, connection = await h.answered_call()
    body = [callback(h, call_id, connection, "PlayCompleted"), callback(h, call_id, connection, "RecognizeCompleted"),
            callback(h, call_id, connection, "CallConnected")]
    response = await post(h, call_id, body)
    assert reply_json(response) == {"raised": 1, "duplicates": 0, "ignored": 2}
    assert [name for name, _ in raised(h, call_id)] == ["CallConnected"]


def _other_secret_token(call_id: str) -> str:
    return TokenSigner("a-different-secret-0123456789abcdef").issue(call_id, Purpose.CALLBACK, 600)


def _expired_token(call_id: str) -> str:
    two_hours_ago = TokenSigner(TEST_SECRET, clock=lambda: time.time() - 7200)
    return two_hours_ago.issue(call_id, Purpose.CALLBACK, 600)


@pytest.mark.parametrize(("case", "reason"), [
    ("forged", "bad token signature"), ("missing", "missing token"), ("expired", "token expired"),
    ("other call", "token is for another call"), ("media purpose", "token is not valid for callback"),
    ("garbage", "malformed token"),
])
async def test_callbacks_without_a_valid_token_for_the_call_are_refused(harness: Harness, case: str,
                                                                        reason: str) -> None:
    h = harness
    call_id, connection = await h.answered_call()
    token = {"forged": _other_secret_token(call_id), "missing": None, "expired": _expired_token(call_id),
             "other call": h.token(str(uuid.uuid4())), "media purpose": h.token(call_id, Purpose.MEDIA),
             "garbage": "not-a-token"}[case]
    response = await post(h, call_id, [callback(h, call_id, connection, "CallConnected")], token=token)
    assert response.status_code == 401
    assert reply_json(response) == {"error": {"code": "unauthorized", "message": f"callback token: {reason}"}}
    assert h.durable.raised() == []


async def test_a_token_is_only_good_for_the_call_in_its_url(harness: Harness) -> None:
    h = harness
    first, _ = await h.answered_call()
    second, second_connection = await h.answered_call()
    event = callback(h, second, second_connection, "CallConnected")
    response = await h.http("acs_callbacks", "POST", f"callbacks/{second}", body=[event],
                            params={"token": h.token(first)}, route_params={"call_id": second})
    assert response.status_code == 401
    assert h.durable.raised() == []


async def test_acs_jwts_are_checked_when_the_resource_id_is_configured(redis_url: str, tmp_path: Path) -> None:
    acs_signer, stranger = Signer("acs-key-1"), Signer("someone-else")
    with jwks_server(acs_signer) as (jwks_url, _):
        async with open_harness(redis_url, tmp_path, acs_resource_id=AUDIENCE, acs_jwks_url=jwks_url) as h:
            call_id, connection = await h.answered_call()
            refused = {
                "wrong audience": (acs_signer.token(audience="another-resource"),
                                   "token audience is not this ACS resource"),
                "wrong issuer": (acs_signer.token(issuer="https://evil.example.test"), "token issuer is not ACS"),
                "expired": (acs_signer.token(expires_in=-120), "token expired"),
                "unknown key": (stranger.token(), "token signed with an unknown key"),
            }
            for case, (jwt, reason) in refused.items():
                response = await post(h, call_id, [callback(h, call_id, connection, "CallConnected")],
                                      authorization=f"Bearer {jwt}")
                assert response.status_code == 401, case
                assert reply_json(response)["error"] == {"code": "unauthorized", "message": f"ACS token: {reason}"}
            missing = await post(h, call_id, [callback(h, call_id, connection, "CallConnected")])
            assert reply_json(missing)["error"]["message"] == "ACS token: missing bearer token"
            assert h.durable.raised() == []

            event = callback(h, call_id, connection, "CallConnected")
            response = await post(h, call_id, [event], authorization=f"Bearer {acs_signer.token()}")
            assert response.status_code == 200
            assert raised(h, call_id) == [("CallConnected", event["data"])]

            # A valid JWT does not stand in for the per-call token.
            response = await post(h, call_id, [callback(h, call_id, connection, "CallConnected")], token=None,
                                  authorization=f"Bearer {acs_signer.token()}")
            assert response.status_code == 401


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "body is not valid JSON"),
    (b"[]", "no events in the body"),
    (b'[{"id": "e1", "data": {}}]', "invalid event: type: Field required"),
    (b'[{"id": "e1", "type": "Microsoft.Communication.CallConnected", "data": {"correlationId": 5}}]',
     "invalid event: data.correlationId: Input should be a valid string"),
    (b'[{"id": "e1", "type": "Microsoft.Communication.CallConnected", "data": {"__class__": "x"}}]',
     "event data holds reserved keys"),
    (b'[{"id": "e1", "type": "Microsoft.Communication.CallConnected", "data": {"a": [{"b": {"__module__": "os"}}]}}]',
     "event data holds reserved keys"),
])
async def test_malformed_callbacks_are_refused_with_a_reason(harness: Harness, body: bytes, message: str) -> None:
    h = harness
    call_id, _ = await h.answered_call()
    response = await post(h, call_id, body)
    assert response.status_code == 400
    assert reply_json(response) == {"error": {"code": "bad_request", "message": message}}
    assert h.durable.raised() == []


async def test_a_callback_for_another_call_is_refused(harness: Harness) -> None:
    h = harness
    call_id, connection = await h.answered_call()
    event = callback(h, call_id, connection, "CallConnected", correlationId=str(uuid.uuid4()))
    response = await post(h, call_id, [event])
    assert response.status_code == 400
    assert reply_json(response)["error"]["message"] == "event for another call"
    assert h.durable.raised() == []


async def test_a_placed_calls_callback_is_accepted_before_its_acs_correlation_id_is_stored(
        harness: Harness) -> None:
    h = harness
    call_id = str(uuid.uuid4())  # a placed call: create_call has not returned yet, so no correlation id
    await h.store.create(CallSession(call_id=call_id, scenario="banking", current_agent="auth"))
    h.durable.add_instance(call_id)
    [event] = copy.deepcopy(payload("acs_callback_call_connected"))
    event["data"]["correlationId"] = str(uuid.uuid4())  # ACS's own
    response = await post(h, call_id, [event])
    assert reply_json(response) == {"raised": 1, "duplicates": 0, "ignored": 0}
    assert raised(h, call_id) == [("CallConnected", event["data"])]


async def test_a_callback_for_a_call_with_no_session_is_not_found(harness: Harness) -> None:
    h = harness
    call_id, connection = await h.answered_call()
    await h.store.delete(call_id)  # ended and cleaned up
    response = await post(h, call_id, [callback(h, call_id, connection, "CallDisconnected")])
    assert response.status_code == 404
    assert reply_json(response)["error"]["code"] == "unknown_call"
    assert h.durable.raised() == []


async def test_a_redelivered_event_is_raised_once(harness: Harness) -> None:
    h = harness
    call_id, connection = await h.answered_call()
    event = callback(h, call_id, connection, "CallConnected")
    assert reply_json(await post(h, call_id, [event]))["raised"] == 1
    assert reply_json(await post(h, call_id, [event])) == {"raised": 0, "duplicates": 1, "ignored": 0}
    assert reply_json(await post(h, call_id, [event, event])) == {"raised": 0, "duplicates": 2, "ignored": 0}
    assert [name for name, _ in raised(h, call_id)] == ["CallConnected"]


async def test_callbacks_out_of_order_are_all_raised_in_the_order_received(harness: Harness) -> None:
    h = harness
    call_id, connection = await h.answered_call()
    disconnected = callback(h, call_id, connection, "CallDisconnected")
    connected = callback(h, call_id, connection, "CallConnected")
    assert (await post(h, call_id, [disconnected])).status_code == 200
    assert (await post(h, call_id, [connected])).status_code == 200
    assert raised(h, call_id) == [("CallDisconnected", disconnected["data"]), ("CallConnected", connected["data"])]


async def test_an_unreachable_orchestration_gets_a_503_and_the_retry_gets_through(harness: Harness) -> None:
    h = harness
    call_id, connection = await h.answered_call()
    event = callback(h, call_id, connection, "CallConnected")
    h.durable.fail_next("raise_event", 500, times=4)  # the first try and every quick retry fail
    response = await post(h, call_id, [event])
    assert response.status_code == 503
    assert reply_json(response)["error"]["code"] == "unavailable"
    assert raised(h, call_id) == []

    response = await post(h, call_id, [event])  # ACS retries the same event: its claim was released
    assert reply_json(response) == {"raised": 1, "duplicates": 0, "ignored": 0}
    assert raised(h, call_id) == [("CallConnected", event["data"])]


async def test_a_callback_that_overtakes_its_orchestration_start_is_raised_after_a_quick_retry(
        harness: Harness) -> None:
    h = harness
    call_id, connection = await h.answered_call()
    event = callback(h, call_id, connection, "CallConnected")
    h.durable.fail_next("raise_event", 404)  # the instance does not exist yet
    assert reply_json(await post(h, call_id, [event])) == {"raised": 1, "duplicates": 0, "ignored": 0}
    assert raised(h, call_id) == [("CallConnected", event["data"])]


# --- media host events --------------------------------------------------------------------------


async def test_media_host_events_are_raised_with_a_callback_token(harness: Harness) -> None:
    h = harness
    call_id, _ = await h.answered_call()
    handoff = {"from_agent": "auth", "to_agent": "cards", "reason": "lost card", "authenticated": True}
    response = await post_media_event(h, call_id, "AgentHandoff", handoff)
    assert response.status_code == 202
    assert reply_json(response) == {"raised": "AgentHandoff"}
    response = await post_media_event(h, call_id, "HangupRequested", b"")  # no body: empty data
    assert response.status_code == 202
    assert raised(h, call_id) == [("AgentHandoff", handoff), ("HangupRequested", {})]


BAD_REQUEST, UNAUTHORIZED = (400, "bad_request"), (401, "unauthorized")


@pytest.mark.parametrize(("name", "body", "token", "expected"), [
    ("Shutdown", {}, "valid", BAD_REQUEST),
    ("CallConnected", {}, "valid", BAD_REQUEST),  # ACS events come from ACS only
    ("AgentHandoff", {"to_agent": "x"}, None, UNAUTHORIZED),
    ("AgentHandoff", {"to_agent": "x"}, "media", UNAUTHORIZED),
    ("AgentHandoff", ["not", "an", "object"], "valid", BAD_REQUEST),
    ("AgentHandoff", b"{oops", "valid", BAD_REQUEST),
    ("AgentHandoff", {"x": {"__class__": "Evil"}}, "valid", BAD_REQUEST),
    ("AgentHandoff", {"blob": "x" * 20000}, "valid", BAD_REQUEST),
])
async def test_media_host_events_that_are_unknown_unauthorized_or_malformed_are_refused(
        harness: Harness, name: str, body: Any, token: str | None, expected: tuple[int, str]) -> None:
    h = harness
    call_id, _ = await h.answered_call()
    response = await post_media_event(h, call_id, name, body,
                                      token=h.token(call_id, Purpose.MEDIA) if token == "media" else token)
    assert (response.status_code, reply_json(response)["error"]["code"]) == expected
    assert h.durable.raised() == []


async def test_a_media_host_event_for_a_call_with_no_session_is_not_found(harness: Harness) -> None:
    call_id = str(uuid.uuid4())
    response = await post_media_event(harness, call_id, "HangupRequested", {"reason": "bye"})
    assert response.status_code == 404
    assert harness.durable.requests == []


# --- the media host's control plane -------------------------------------------------------------


async def test_the_control_plane_raises_requests_through_the_function_app(harness: Harness) -> None:
    h = harness
    call_id, _ = await h.answered_call()
    plane = FunctionsControlPlane(h.store, h.host_url)
    try:
        await plane.notify_handoff(call_id, "triage", "cards", "lost card")
        await h.store.update(call_id, lambda s: setattr(s, "customer", {"id": "c-1"}))
        await plane.notify_handoff(call_id, "cards", "auth", "needs auth")
        await plane.request_transfer(call_id, AGENT, "caller asked for a person")
        await plane.request_transfer(call_id, "", "no target: the scenario's human queue")
        await plane.request_hangup(call_id, "goodbye")
    finally:
        await plane.aclose()

    assert plane.failures == 0
    assert raised(h, call_id) == [
        ("AgentHandoff", {"from_agent": "triage", "to_agent": "cards", "reason": "lost card", "authenticated": False}),
        ("AgentHandoff", {"from_agent": "cards", "to_agent": "auth", "reason": "needs auth", "authenticated": True}),
        ("TransferRequested", {"target": AGENT, "reason": "caller asked for a person"}),
        ("TransferRequested", {"target": None, "reason": "no target: the scenario's human queue"}),
        ("HangupRequested", {"reason": "goodbye"}),
    ]
    # The session keeps every request, whatever the Function App does.
    kinds = [e.kind for e in await h.store.events(call_id)]
    assert kinds == ["transfer_requested", "transfer_requested", "hangup_requested"]


async def test_the_control_plane_signs_each_request_with_a_callback_token_for_the_call(harness: Harness) -> None:
    h = harness
    call_id, _ = await h.answered_call()
    seen: list[str] = []
    plane = FunctionsControlPlane(h.store, h.host_url)

    async def trace(_session: Any, _ctx: Any, params: Any) -> None:
        seen.append(str(params.url))

    import aiohttp

    tracing = aiohttp.TraceConfig()
    tracing.on_request_start.append(trace)
    plane._client = aiohttp.ClientSession(timeout=plane.timeout, trace_configs=[tracing])
    try:
        await plane.request_hangup(call_id, "bye")
    finally:
        await plane.aclose()
    [url] = seen
    assert url.startswith(f"{h.host_url}/api/calls/{call_id}/events/HangupRequested?token=")
    claims = h.store.verify_token(query_token(url), Purpose.CALLBACK, call_id)
    assert claims.expires_at <= time.time() + 300


async def test_an_unreachable_or_refusing_function_app_is_logged_and_counted_not_raised(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h = harness
    call_id, _ = await h.answered_call()
    unreachable = FunctionsControlPlane(h.store, f"http://127.0.0.1:{free_port()}", timeout_s=2,
                                        retry_delays_s=(0.0, 0.0, 0.0))  # retries: test_control_requests.py
    refused = FunctionsControlPlane(h.store, h.host_url)
    refused.store = type(h.store)(h.store.redis, TokenSigner("a-different-secret-0123456789abcdef"),
                                  ttl_seconds=600, prefix=h.store.prefix)
    caplog.set_level(logging.WARNING, logger="media_host.control_plane")
    try:
        await unreachable.request_transfer(call_id, AGENT, "to a person")
        await unreachable.request_hangup(call_id, "bye")
        await refused.notify_handoff(call_id, "a", "b", "c")
    finally:
        await unreachable.aclose()
        await refused.aclose()

    assert (unreachable.failures, refused.failures) == (2, 1)
    warnings = [r.getMessage() for r in caplog.records if r.name == "media_host.control_plane"]
    assert warnings == ["raising TransferRequested to the orchestration failed",
                        "raising HangupRequested to the orchestration failed",
                        "raising AgentHandoff to the orchestration failed"]
    assert h.durable.raised() == []
    assert [e.kind for e in await h.store.events(call_id)] == ["transfer_requested", "hangup_requested"]
    session = await h.store.get(call_id)
    assert isinstance(session, CallSession)
