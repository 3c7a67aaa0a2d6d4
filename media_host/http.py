"""The plain HTTP side of the media host: responses, and requests with a method and a body.

websockets parses only `GET` without a body (all a WebSocket handshake needs). The host also serves a
few HTTP routes (health, metrics, the browser token route, which is a POST), so each connection gets
a request parser that reads any method and a small Content-Length body. Everything else about the
connection is websockets' own.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Generator
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import InvalidMessage
from websockets.http11 import Request, Response, parse_headers, parse_line
from websockets.protocol import CONNECTING, Protocol
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

MAX_BODY_BYTES = 65536


@dataclasses.dataclass
class HttpRequest(Request):
    method: str = "GET"
    body: bytes = b""


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
    yield from Protocol.parse(protocol)


class HttpCapableConnection(ServerConnection):
    """A websockets server connection whose handshake request may be any method with a body."""

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        protocol.parser = _parse(protocol)
        next(protocol.parser)
        super().__init__(protocol, *args, **kwargs)


def respond(status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> Response:
    headers = Headers({"Content-Type": content_type, "Content-Length": str(len(body)),
                       "Cache-Control": "no-store", **(extra or {})})
    return Response(status, HTTPStatus(status).phrase, headers, body)


def json_response(status: int, payload: Any) -> Response:
    return respond(status, json.dumps(payload).encode(), "application/json")


def text_response(status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> Response:
    return respond(status, text.encode(), content_type)
