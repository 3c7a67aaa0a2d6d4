"""media_host/http.py reaches into websockets' internals to read HTTP requests of any method with a body.
These tests fail loudly the day the installed websockets no longer matches what it relies on: the pinned
range, the private names and signatures, the source of the code `_parse` stands in for, and the behaviour,
driven through websockets' own sans-I/O protocol objects (no sockets, no timing)."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from websockets.asyncio.server import ServerConnection, serve
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidMessage
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, parse_headers, parse_line
from websockets.protocol import CONNECTING, OPEN, Protocol
from websockets.server import ServerProtocol
from websockets.streams import StreamReader
from websockets.uri import parse_uri

from media_host.http import HttpRequest, accept_http_requests, json_response

ROOT = Path(__file__).resolve().parents[2]

# sha256 (first 16 hex digits) of the websockets 15.0.1 source that http.py mirrors or wraps. A mismatch means
# websockets changed it: compare the new source with media_host/http.py (`_read_request` mirrors
# Request.parse, `_parse` replaces ServerProtocol.parse, `accept_http_requests` wraps send_response),
# adapt http.py, then record the new digest here.
MIRRORED = {
    "ServerProtocol.parse": (ServerProtocol.parse, "70dba1c6c9bf6fa0"),
    "ServerProtocol.send_response": (ServerProtocol.send_response, "4a3ab6beaaa3de15"),
    "Request.parse": (Request.parse, "2023567a07321d26"),
}


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_websockets_is_pinned_to_the_range_http_py_was_checked_on() -> None:
    lines = (ROOT / "requirements-media.txt").read_text().splitlines()
    [pin] = [Requirement(line.split("#")[0]) for line in lines if line.startswith("websockets")]
    assert pin.specifier == SpecifierSet(">=15,<16"), "check media_host/http.py against the new range first"
    assert version("websockets") in pin.specifier


@pytest.mark.parametrize(("name", "mirrored"), MIRRORED.items())
def test_the_code_http_py_mirrors_is_unchanged(name: str, mirrored: tuple[Callable[..., Any], str]) -> None:
    function, digest = mirrored
    assert hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16] == digest, (
        f"websockets changed {name}: re-read it against media_host/http.py, then update MIRRORED")


def test_the_private_names_http_py_uses_are_still_there() -> None:
    assert _parameters(parse_line) == ["read_line"]
    assert _parameters(parse_headers) == ["read_line"]
    assert _parameters(StreamReader.read_line) == ["self", "m"]
    assert _parameters(StreamReader.read_exact) == ["self", "n"]
    assert _parameters(Protocol.parse) == ["self"]
    assert _parameters(ServerProtocol.discard) == ["self"]
    assert _parameters(ServerProtocol.send_eof) == ["self"]
    assert _parameters(ServerProtocol.send_response) == ["self", "response"]
    assert _parameters(ServerConnection.__init__)[:3] == ["self", "protocol", "server"]
    assert {"create_connection", "process_request"} <= set(_parameters(serve))
    protocol = ServerProtocol()
    assert isinstance(protocol.reader, StreamReader)
    assert protocol.state is CONNECTING
    assert (protocol.events, protocol.handshake_exc, protocol.eof_sent, protocol.reader.eof) == ([], None, False,
                                                                                                 False)
    assert inspect.isgenerator(protocol.parser)


def _server() -> ServerProtocol:
    protocol = ServerProtocol()
    accept_http_requests(protocol)
    return protocol


def test_a_post_with_a_body_is_one_request() -> None:
    server = _server()
    server.receive_data(b"POST /api/v1/realtime/sessions?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 14\r\n\r\n"
                        b'{"scenario":1')
    assert server.events_received() == []  # the body is not all there yet
    server.receive_data(b"}")
    [request] = server.events_received()
    assert isinstance(request, HttpRequest)
    assert (request.method, request.path, request.body) == ("POST", "/api/v1/realtime/sessions?x=1",
                                                            b'{"scenario":1}')
    server.send_response(json_response(201, {}))
    assert server.data_to_send()[0].startswith(b"HTTP/1.1 201 Created\r\n")


@pytest.mark.parametrize("request_bytes", [
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b"GET /health HTTP/1.0\r\n\r\n",
    b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST /x HTTP/1.1\r\nContent-Length: 65537\r\n\r\n",
])
def test_what_is_not_a_request_we_read_ends_the_connection(request_bytes: bytes) -> None:
    server = _server()
    server.receive_data(request_bytes)
    assert server.events_received() == []
    assert isinstance(server.handshake_exc, InvalidMessage)
    assert server.data_to_send() == [b""]  # EOF: websockets closes, and the host logs the refusal


def test_an_upgrade_still_opens_a_websocket_and_reads_frames() -> None:
    client = ClientProtocol(parse_uri("ws://h/api/v1/media/stream"))
    client.send_request(client.connect())
    server = _server()
    for data in client.data_to_send():
        server.receive_data(data)
    [request] = server.events_received()
    assert isinstance(request, Request)
    server.send_response(server.accept(request))
    assert server.state is OPEN
    for data in server.data_to_send():
        client.receive_data(data)
    assert client.state is OPEN
    client.send_text(b"hello")
    for data in client.data_to_send():
        server.receive_data(data)
    [frame] = server.events_received()
    assert isinstance(frame, Frame)
    assert (frame.opcode, frame.data) == (Opcode.TEXT, b"hello")


def test_bytes_before_the_answer_wait_for_it() -> None:
    server = _server()
    server.receive_data(b"GET /health HTTP/1.1\r\nHost: h\r\n\r\n\x81\x05hello")  # an unmasked frame, too early
    [request] = server.events_received()
    assert isinstance(request, Request)
    # Held: read as a frame now, it would fail the connection before the answer went out.
    assert (server.events_received(), server.data_to_send()) == ([], [])
    server.send_response(json_response(200, {"status": "ok"}))
    assert server.data_to_send()[0].startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_client_gone_before_the_answer_is_answered_by_nobody() -> None:
    server = _server()
    server.receive_data(b"GET /ready HTTP/1.1\r\nHost: h\r\n\r\n")
    server.receive_eof()  # the client left while the answer was prepared (a Redis ping)
    assert [type(event) for event in server.events_received()] == [HttpRequest]
    assert server.eof_sent
    server.send_response(json_response(200, {}))  # websockets alone would assert here
    assert server.data_to_send() == [b""]  # only websockets' own EOF: no answer to a closed connection
