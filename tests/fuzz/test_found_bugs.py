"""The bugs the fuzzer found, one test each, from their reproducers: each input is now handled (an answer
with a reason, or a quiet close) and none logs an ERROR."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import aiohttp
import pytest
from websockets.http11 import Request, Response

from media_host.http import json_response
from media_host.server import MediaHost
from tests.support.functions_harness import Harness
from tests.support.media_harness import AUDIOCODES_TOKEN, running_host


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The test's log, which must hold no ERROR line (the fuzzer's crash oracle)."""
    with caplog.at_level(logging.INFO):
        yield caplog
    assert [r.getMessage() for r in caplog.get_records("call") if r.levelno >= logging.ERROR] == []


async def raw(host: MediaHost, request: bytes) -> bytes:
    """Send bytes to the media host; what it answers before it closes (b"" when it only closes)."""
    assert host.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
    writer.write(request)
    await writer.drain()
    try:
        async with asyncio.timeout(5):
            return await reader.read(65536)
    finally:
        writer.close()


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


# --- media host (media_host/http.py, server.py, transports/base.py) -------------------------------------


async def test_a_target_starting_with_two_slashes_is_a_path_not_an_authority(redis_url: str,
                                                                            logs: pytest.LogCaptureFixture) -> None:
    async with running_host(redis_url) as host:
        # was: urlsplit raised in process_request (HTTP 500, ERROR "opening handshake failed")
        assert status(await raw(host, b"GET //[ HTTP/1.1\r\nHost: x\r\n\r\n")) == 404
        # and `//evil.example/health` was routed to /health
        assert status(await raw(host, b"GET //evil.example/health HTTP/1.1\r\nHost: x\r\n\r\n")) == 404
        assert status(await raw(host, b"GET /health?x=//[ HTTP/1.1\r\nHost: x\r\n\r\n")) == 200


@pytest.mark.parametrize("request_bytes", [
    b"SSH-2.0-OpenSSH_9.6\r\n",  # a scanner's greeting (bytes with no line end are waited for: a line may be long)
    b"GET /health HTTP/1.0\r\n\r\n",
    b"POST /api/v1/realtime/sessions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /health HTTP/1.1\r\nNo colon here\r\n\r\n",
    b"",  # a bare connect and close, as load-balancer probes do
])
async def test_requests_that_are_not_http_close_with_an_info_line(redis_url: str, request_bytes: bytes,
                                                                  logs: pytest.LogCaptureFixture) -> None:
    async with running_host(redis_url) as host:
        assert host.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
        writer.write(request_bytes)
        if not request_bytes:
            writer.close()  # was: ERROR "opening handshake failed" with a traceback, for every probe
            await asyncio.sleep(0.1)
        else:
            async with asyncio.timeout(5):
                assert await reader.read() == b""
            writer.close()
    assert any(r.getMessage().startswith("handshake refused") for r in logs.records)


async def test_bytes_sent_before_the_answer_do_not_trip_websockets(redis_url: str,
                                                                   logs: pytest.LogCaptureFixture) -> None:
    async with running_host(redis_url) as host:
        # An unmasked frame right behind the request: was an AssertionError inside websockets (ERROR).
        answer = await raw(host, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n\x81\x05hello")
        assert status(answer) == 200


@pytest.mark.parametrize("request_bytes", [b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n",  # answered after a Redis ping
                                           b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n\x81\x05hello"])
async def test_a_client_gone_before_the_answer_is_not_an_error(redis_url: str, request_bytes: bytes,
                                                               logs: pytest.LogCaptureFixture) -> None:
    async with running_host(redis_url) as host:
        assert host.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
        writer.write(request_bytes)
        writer.write_eof()  # the request, then gone: the EOF must not be held back with the early bytes
        async with asyncio.timeout(5):
            await reader.read()
        writer.close()
        await asyncio.sleep(0.1)  # the host notices the connection is gone


async def test_a_client_gone_while_the_answer_is_prepared_is_not_an_error(redis_url: str,
                                                                          logs: pytest.LogCaptureFixture) -> None:
    async with running_host(redis_url) as host:
        async def slow(_request: Request) -> Response:
            await asyncio.sleep(0.3)  # as /ready awaits Redis: the client's EOF lands meanwhile
            return json_response(200, {"status": "late"})

        host.add_http_route("/slow", slow)
        assert host.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.1)  # the host is preparing the answer
        writer.write_eof()  # was: websockets sent EOF twice (AssertionError, ERROR "unexpected internal error")
        async with asyncio.timeout(5):
            await reader.read()
        writer.close()
        await asyncio.sleep(0.4)


async def test_an_upgrade_path_without_upgrade_headers_is_426(redis_url: str, logs: pytest.LogCaptureFixture) -> None:
    async with running_host(redis_url) as host:
        answer = await raw(host, f"GET /ws HTTP/1.1\r\nAuthorization: Bearer {AUDIOCODES_TOKEN}\r\n\r\n".encode())
        assert status(answer) == 426  # was also an ERROR with a traceback


# --- Function App (callbacks/) ---------------------------------------------------------------------------


async def test_malformed_call_ids_are_refused_before_the_durable_client(harness: Harness,
                                                                        logs: pytest.LogCaptureFixture) -> None:
    for call_id in ("<script>alert(1)</script>", "a/b", "x?y=1", "..", "x" * 200):
        response = await harness.http("call", "GET", "calls/x", route_params={"call_id": call_id})
        # was: the id went into the Durable client's URL unescaped; a 404 page became a JSONDecodeError (500)
        assert response.status_code == 400
        assert json.loads(response.get_body())["error"]["message"] == "malformed call id"


async def test_an_incoming_call_whose_correlation_id_cannot_be_a_call_id_is_refused(harness: Harness) -> None:
    event = harness.incoming()
    event["data"]["correlationId"] = "a/b?c"  # it becomes the call id, and so the Durable instance id
    response = await harness.http("incoming_call_webhook", "POST", "eventgrid/incoming-call", body=[event])
    assert response.status_code == 400
    assert "correlationId" in json.loads(response.get_body())["error"]["message"]
    assert not [r for r in harness.acs.requests if r.operation == "answer"]  # not answered, then orphaned


# --- the local function host's Event Grid endpoint (local_stack/function_host.py) -----------------------


@pytest.mark.parametrize(("body", "headers", "error"), [
    (b"[" * 5000 + b"]" * 5000, {"aeg-event-type": "Notification"}, "malformed_json"),  # was RecursionError
    (json.dumps([{"id": "1", "eventType": "x", "subject": "s", "eventTime": [1], "data": {}, "dataVersion": "1"}]),
     {"aeg-event-type": "Notification"}, "invalid_event"),  # was TypeError in the worker's converter
    (json.dumps([{"id": "1", "eventType": "x", "subject": "s", "eventTime": "yesterday", "data": {},
                  "dataVersion": "1"}]), {"aeg-event-type": "Notification"}, "invalid_event"),  # was ValueError
    (json.dumps([{"eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "data": "code"}]),
     {"aeg-event-type": "SubscriptionValidation"}, "no_validation_code"),  # was AttributeError
])
async def test_the_local_event_grid_endpoint_refuses_what_the_worker_cannot_convert(
        harness: Harness, body: bytes | str, headers: dict[str, str], error: str,
        logs: pytest.LogCaptureFixture) -> None:
    url = f"{harness.host_url}/runtime/webhooks/eventgrid?functionName=on_incoming_call"
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["error"] == error
