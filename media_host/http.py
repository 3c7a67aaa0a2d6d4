"""The plain HTTP side of the media host: responses, and requests with a method and a body.

websockets parses only `GET` without a body (all a WebSocket handshake needs). The host also serves a
few HTTP routes on the same port (health, metrics, the softphone, and POST /api/v1/realtime/sessions, a
public contract in the design), so each connection gets a request parser that reads any method and a
small Content-Length body. Everything else about the connection is websockets' own.

Contained, not public: this reaches into websockets 15's sans-I/O internals (the `ServerProtocol`
parser generator and its `reader`, `state`, `events`, `handshake_exc`, `send_eof`, `discard`,
`eof_sent`, `send_response`; `Protocol.parse`; `http11.parse_line`/`parse_headers`).
requirements-media.txt pins websockets below 16, and tests/contract/test_media_host_http.py fails the
day the installed websockets no longer has them as used here (names, signatures, the source of what
`_parse` stands in for, and the behaviour). Moving up does not remove the need: websockets 17 hands
requests of any method to `process_request`, but its `Request.parse` still refuses a body (17.4).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Generator
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage
from websockets.http11 import Request, Response, parse_headers, parse_line
from websockets.protocol import CONNECTING, Protocol
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 65536


@dataclasses.dataclass
class HttpRequest(Request):
    method: str = "GET"
    body: bytes = b""


def request_path(target: str) -> str:
    """The path of a request target. Targets are origin-form (`/path?query`): splitting them as URLs
    would read `//host/...` as an authority (and raise on `//[`), so they are split at `?` and `#`."""
    return target.partition("?")[0].partition("#")[0]


def request_query(target: str) -> str:
    return target.partition("?")[2].partition("#")[0]


def method_of(request: Request) -> str:
    return getattr(request, "method", "GET")


def body_of(request: Request) -> bytes:
    return getattr(request, "body", b"")


def _read_request(reader: StreamReader) -> Generator[None, None, HttpRequest]:
    line = yield from parse_line(reader.read_line)
    method, raw_path, protocol = line.split(b" ", 2)
    if protocol != b"HTTP/1.1":
        raise ValueError("HTTP/1.1 only")
    headers = yield from parse_headers(reader.read_line)
    if "Transfer-Encoding" in headers:
        raise ValueError("chunked bodies are not supported")
    length = int(headers.get("Content-Length", "0"))
    if not 0 <= length <= MAX_BODY_BYTES:
        raise ValueError("body too large")
    body = (yield from reader.read_exact(length)) if length else b""
    return HttpRequest(raw_path.decode("ascii", "surrogateescape"), headers, method=method.decode("ascii"),
                       body=body)


def _parse(protocol: ServerProtocol) -> Generator[None]:
    """ServerProtocol.parse, with the request line and body read by `_read_request`."""
    if protocol.state is CONNECTING:
        try:
            request = yield from _read_request(protocol.reader)
        except Exception as exc:
            protocol.handshake_exc = InvalidMessage("did not receive a valid HTTP request")
            protocol.handshake_exc.__cause__ = exc
            protocol.send_eof()
            protocol.parser = protocol.discard()
            next(protocol.parser)
            yield
        protocol.events.append(request)
        # A client must wait for the response before it sends frames (RFC 6455 4.1). Parsing its early
        # bytes as frames could fail the connection before the response goes out, which websockets does
        # not expect (an AssertionError when it then sends the response): keep them until it has gone.
        # An EOF goes through at once: websockets must see the client leave (the connection ends CLOSED).
        while protocol.state is CONNECTING and not protocol.reader.eof:
            yield
    yield from Protocol.parse(protocol)


def accept_http_requests(protocol: ServerProtocol) -> None:
    """Make a fresh `ServerProtocol` read any method with a body (`_parse`), and answer a client that
    has gone by answering nobody."""
    protocol.parser = _parse(protocol)
    next(protocol.parser)
    answer = protocol.send_response

    def send_response(response: Response) -> None:
        # The client left while the answer was prepared (a route awaiting Redis, a JWKS fetch): websockets
        # has already closed the connection, and asserts if asked to answer it. There is nobody to answer.
        if not protocol.eof_sent:
            answer(response)

    protocol.send_response = send_response  # type: ignore[method-assign]


class HttpCapableConnection(ServerConnection):
    """A websockets server connection whose handshake request may be any method with a body."""

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        accept_http_requests(protocol)
        super().__init__(protocol, *args, **kwargs)

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        """As websockets does, except that a handshake the client got wrong (not HTTP, no upgrade headers,
        gone before the answer) is logged as the rejection it is, not as an ERROR with a traceback: scanners
        and load-balancer probes do this all day. The connection is closed all the same (it is not OPEN)."""
        try:
            await super().handshake(*args, **kwargs)
        except (InvalidHandshake, ConnectionClosed, EOFError) as exc:
            cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
            log.info("handshake refused: %s%s", exc, cause)


def respond(status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> Response:
    headers = Headers({"Content-Type": content_type, "Content-Length": str(len(body)),
                       "Cache-Control": "no-store", **(extra or {})})
    return Response(status, HTTPStatus(status).phrase, headers, body)


def json_response(status: int, payload: Any) -> Response:
    return respond(status, json.dumps(payload).encode(), "application/json")


def text_response(status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> Response:
    return respond(status, text.encode(), content_type)
