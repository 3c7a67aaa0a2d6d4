"""The ACS REST surface: which operation a request is, body parsing, and ACS-style error bodies."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from local_stack.acs.incoming import IncomingContext, parse_incoming_call_context

Json = dict[str, Any]
_CALL = r"/calling/callConnections/(?P<id>[^/:]+)"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"/calling/callConnections"), "create"),
    ("POST", re.compile(r"/calling/callConnections:answer"), "answer"),
    ("POST", re.compile(r"/calling/callConnections:reject"), "reject"),
    ("POST", re.compile(r"/calling/callConnections:redirect"), "redirect"),
    ("GET", re.compile(_CALL), "get_call"),
    ("DELETE", re.compile(_CALL), "hang_up"),
    ("GET", re.compile(_CALL + "/participants"), "list_participants"),
    ("POST", re.compile(_CALL + r":(?P<action>\w+)"), ""),  # the operation comes from ACTIONS
]
ACTIONS = {"terminate": "terminate", "transferToParticipant": "transfer", "play": "play", "recognize": "recognize",
           "cancelAllMediaOperations": "cancel_all_media_operations",
           "startMediaStreaming": "start_media_streaming", "stopMediaStreaming": "stop_media_streaming"}
FAULT_CODES = {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}


@dataclass(frozen=True)
class AcsRequest:
    """A request that passed HMAC verification, and the status it was answered with."""

    operation: str
    method: str
    path: str
    query: Mapping[str, str]
    body: Any  # the parsed JSON body; None when empty or malformed
    headers: Mapping[str, str]  # lower-case names
    call_connection_id: str | None  # for answer/create: the connection they made
    status: int


class AcsFailure(Exception):
    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, dict(headers or {})


def route(method: str, path: str) -> tuple[str, str | None]:
    """The operation name and call connection id of a request (`unknown` for paths ACS does not have)."""
    for verb, pattern, operation in ROUTES:
        match = pattern.fullmatch(path)
        if verb == method and match:
            groups = match.groupdict()
            action = groups.get("action")
            return (ACTIONS.get(action, action) if action else operation), groups.get("id")
    return "unknown", None


def parse_json(raw: bytes) -> Any:
    """The JSON object body, None when empty; anything else is the 400 ACS gives malformed bodies."""
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AcsFailure(400, "BadRequest", f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise AcsFailure(400, "BadRequest", "The request body must be a JSON object.")
    return body


def valid_context(token: str) -> IncomingContext:
    ctx = parse_incoming_call_context(token)
    if ctx is None:
        raise AcsFailure(400, "BadRequest", "The incomingCallContext is invalid.")
    return ctx


def error_response(failure: AcsFailure) -> web.Response:
    body = {"error": {"code": failure.code, "message": failure.message}}
    return web.json_response(body, status=failure.status, headers=failure.headers)
