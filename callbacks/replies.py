"""What an ingress handler answers: a status and a JSON body, turned into a Functions response at the edge."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from callbacks.wire import WireError


@dataclass
class Reply:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, code: str, message: str) -> Reply:
    """An error the sender can act on; `message` never holds caller data."""
    return Reply(status, {"error": {"code": code, "message": message}})


def refused(exc: WireError) -> Reply:
    """A body that is not what the route takes: 400, or 413 when it is too large."""
    return error(exc.status, exc.code, str(exc))


def to_http(reply: Reply) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(reply.body) if reply.body else None, status_code=reply.status,
                             headers=reply.headers, mimetype="application/json")
