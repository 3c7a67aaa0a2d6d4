"""Small helpers for the plain HTTP routes the media host serves beside its WebSockets."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from websockets.datastructures import Headers
from websockets.http11 import Response


def respond(status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> Response:
    headers = Headers({"Content-Type": content_type, "Content-Length": str(len(body)),
                       "Cache-Control": "no-store", **(extra or {})})
    return Response(status, HTTPStatus(status).phrase, headers, body)


def json_response(status: int, payload: Any) -> Response:
    return respond(status, json.dumps(payload).encode(), "application/json")


def text_response(status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> Response:
    return respond(status, text.encode(), content_type)
