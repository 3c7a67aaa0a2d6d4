"""Every token-protected endpoint refuses every kind of bad token, and every endpoint has its limits,
on the real servers: the Function App's routes over HTTP through the local function host, the media
host's sockets through websockets. docs/security.md lists what protects each endpoint.

At the media host the token is the socket's only call binding (the URL names no call): the socket
serves the call its token names, so "another call's token" there is a token for a call with no
session, refused once the call opens (1008, tests/contract/test_acs_transport.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from callbacks.wire import MAX_BODY_BYTES
from media_host.http import MAX_BODY_BYTES as MEDIA_HOST_MAX_BODY
from media_host.server import MediaHost
from media_host.transports.browser import register_routes
from switchboard.session_models import CallSession
from switchboard.tokens import Purpose, TokenSigner
from tests.conftest import TEST_SECRET
from tests.support.functions_harness import Harness, open_harness, query_token
from tests.support.media_harness import AUDIOCODES_TOKEN, running_host

OTHER_SECRET = "another-secret-0123456789abcdef"
Mint = Callable[[str, Purpose], str]  # (call id, purpose) -> a valid token


def bad_tokens(mint: Mint, call_id: str, purpose: Purpose) -> dict[str, tuple[str | None, str]]:
    """Each way a token can be wrong for (call, purpose): the token, and the reason it is refused."""
    body, signature = mint(call_id, purpose).split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    widened = {**claims, "e": claims["e"] + 10**6}  # the same signature over a longer life
    tampered = base64.urlsafe_b64encode(json.dumps(widened).encode()).rstrip(b"=").decode()
    cases: dict[str, tuple[str | None, str]] = {
        "missing": (None, "missing token"),
        "malformed": ("not-a-token", "malformed token"),
        "tampered": (f"{tampered}.{signature}", "bad token signature"),
        "forged": (TokenSigner(OTHER_SECRET).issue(call_id, purpose, 600), "bad token signature"),
        "expired": (TokenSigner(TEST_SECRET, clock=lambda: time.time() - 7200).issue(call_id, purpose, 600),
                    "token expired"),
    }
    for other in Purpose:
        if other is not purpose:
            cases[f"{other.value} purpose"] = (mint(call_id, other), f"token is not valid for {purpose.value}")
    return cases


# --- the Function App -------------------------------------------------------------------------------


async def post(http: aiohttp.ClientSession, url: str, token: str | None, body: Any) -> tuple[int, Any]:
    params = {"token": token} if token is not None else {}
    async with http.post(url, params=params, data=body if isinstance(body, bytes) else json.dumps(body),
                         headers={"Content-Type": "application/json"}) as response:
        return response.status, await response.json(content_type=None)


async def test_callback_and_media_host_event_routes_refuse_every_bad_token(harness: Harness) -> None:
    h = harness
    call_id, connection = await h.answered_call()
    event = {"id": str(uuid.uuid4()), "type": "Microsoft.Communication.CallConnected",
             "data": {"callConnectionId": connection, "correlationId": call_id}}
    routes = {f"{h.host_url}/api/callbacks/{call_id}": [event],
              f"{h.host_url}/api/calls/{call_id}/events/HangupRequested": {"reason": "bye"}}
    cases = bad_tokens(h.token, call_id, Purpose.CALLBACK)
    cases["another call"] = (h.token(str(uuid.uuid4())), "token is for another call")
    async with aiohttp.ClientSession() as http:
        for url, body in routes.items():
            for case, (token, reason) in cases.items():
                assert await post(http, url, token, body) == (
                    401, {"error": {"code": "unauthorized", "message": f"callback token: {reason}"}}), (url, case)
        assert h.durable.raised() == []
        assert [(await post(http, url, h.token(call_id), body))[0] for url, body in routes.items()] == [200, 202]


async def test_function_app_bodies_over_the_limit_are_refused_with_413(harness: Harness) -> None:
    h = harness
    call_id, _ = await h.answered_call()
    huge = b"[" + b" " * MAX_BODY_BYTES + b"]"
    too_large = {"error": {"code": "too_large", "message": f"body larger than {MAX_BODY_BYTES} bytes"}}
    async with aiohttp.ClientSession() as http:  # over HTTP, through the local function host
        assert await post(http, f"{h.host_url}/api/callbacks/{call_id}", h.token(call_id), huge) == (413, too_large)
        assert await post(http, f"{h.host_url}/api/calls/{call_id}/events/AgentHandoff", h.token(call_id),
                          huge) == (413, too_large)
    for name, route, params in (("incoming_call_webhook", "eventgrid/incoming-call", {}),
                                ("place_call", "calls", {}),
                                ("transfer_call_api", f"calls/{call_id}/transfer", {"call_id": call_id})):
        response = await h.http(name, "POST", route, body=huge, route_params=params)
        assert (response.status_code, json.loads(response.get_body())) == (413, too_large), name
    assert h.durable.raised() == []
    assert [r.operation for r in h.acs.requests] == ["answer"]


async def test_the_tokens_an_answer_hands_to_acs_live_for_token_ttl_seconds(redis_url: str, tmp_path: Path) -> None:
    async with open_harness(redis_url, tmp_path, token_ttl_seconds=600, session_ttl_seconds=7200) as h:
        call_id, _ = await h.answered_call()
        [answer] = h.acs.requests
        urls = (answer.body["callbackUri"], answer.body["mediaStreamingOptions"]["transportUrl"])
        for url, purpose in zip(urls, (Purpose.CALLBACK, Purpose.MEDIA), strict=True):
            claims = h.store.verify_token(query_token(url), purpose, call_id)
            assert time.time() < claims.expires_at <= time.time() + 600  # not the 2 h a session lives


# --- the media host ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def media_host(redis_url: str, **overrides: Any) -> AsyncIterator[MediaHost]:
    async with running_host(redis_url, **overrides) as host:
        register_routes(host)
        yield host


async def new_call(host: MediaHost) -> str:
    call_id = f"call-{uuid.uuid4().hex[:12]}"
    await host.store.create(CallSession(call_id=call_id, scenario="banking", current_agent="auth"))
    return call_id


def url(host: MediaHost, path: str, token: str | None) -> str:
    return f"ws://127.0.0.1:{host.port}{path}" + ("" if token is None else f"?token={token}")


async def refused(address: str) -> tuple[int, Any]:
    with pytest.raises(InvalidStatus) as info:
        async with connect(address, open_timeout=5):
            pass
    return info.value.response.status_code, json.loads(info.value.response.body or b"{}")


@pytest.mark.parametrize(("path", "purpose"), [("/api/v1/media/stream", Purpose.MEDIA),
                                               ("/api/v1/realtime/conversation", Purpose.BROWSER)])
async def test_media_sockets_refuse_every_bad_token_at_the_upgrade(redis_url: str, path: str,
                                                                   purpose: Purpose) -> None:
    async with media_host(redis_url) as host:
        call_id = await new_call(host)
        for case, (token, reason) in bad_tokens(lambda c, p: host.store.issue_token(c, p, 600), call_id,
                                                purpose).items():
            assert await refused(url(host, path, token)) == (401, {"error": "unauthorized", "detail": reason}), case
        async with connect(url(host, path, host.store.issue_token(call_id, purpose, 600))):
            pass  # the right token opens it


def credentials(host: MediaHost, call_id: str) -> dict[str, tuple[str, dict[str, str]]]:
    """A valid upgrade for each transport: (URL, headers)."""
    bearer = {"Authorization": f"Bearer {AUDIOCODES_TOKEN}"}
    return {"acs": (url(host, "/api/v1/media/stream", host.store.issue_token(call_id, Purpose.MEDIA, 600)), {}),
            "audiocodes": (url(host, "/ws", None), bearer),
            "browser": (url(host, "/api/v1/realtime/conversation",
                            host.store.issue_token(call_id, Purpose.BROWSER, 600)), {})}


async def close_of(address: str, headers: dict[str, str], send: str | None = None) -> tuple[int | None, str]:
    """Open a socket (sending `send`, or nothing), and wait for the host to close it."""
    async with connect(address, additional_headers=headers, max_size=None) as ws:
        with contextlib.suppress(ConnectionClosed):
            if send is not None:
                await ws.send(send)
            async with asyncio.timeout(10):
                async for _ in ws:
                    pass
        return ws.close_code, ws.close_reason or ""


async def test_every_socket_closes_a_call_that_never_starts_and_a_message_over_the_limit(redis_url: str) -> None:
    async with media_host(redis_url, media_open_timeout_seconds=0.2, media_max_message_bytes=4096) as host:
        call_id = await new_call(host)
        for transport, (address, headers) in credentials(host, call_id).items():
            code, reason = await close_of(address, headers)
            assert (code, reason) == (1008, "no call started within 0.2 s"), transport
            code, _ = await close_of(address, headers, send="x" * 5000)
            assert code == 1009, transport
        errors = host.metrics.errors
        assert [errors.get(transport=t, kind="open_timeout") for t in ("acs", "audiocodes", "browser")] == [1, 1, 1]


async def test_metrics_are_not_served_through_a_proxy(redis_url: str) -> None:
    async with media_host(redis_url) as host, aiohttp.ClientSession() as http:
        metrics = f"http://127.0.0.1:{host.port}/metrics"
        async with http.get(metrics) as response:
            assert response.status == 200
        for header in ("X-Forwarded-For", "X-Forwarded-Proto"):  # what the Container Apps ingress adds
            async with http.get(metrics, headers={header: "https"}) as response:
                assert (response.status, await response.json()) == (
                    403, {"error": "forbidden", "detail": "metrics are not served through a proxy"})


async def test_an_http_body_over_the_limit_closes_only_that_connection(redis_url: str) -> None:
    async with media_host(redis_url) as host:
        reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
        writer.write(b"POST /api/v1/realtime/sessions HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n{" % (MEDIA_HOST_MAX_BODY + 1))
        await writer.drain()
        answer = await reader.read()  # refused before the body is read: an HTTP error, or just closed
        assert answer == b"" or answer.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 413 ")), answer[:40]
        writer.close()
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{host.port}/health") as response:
            assert response.status == 200
