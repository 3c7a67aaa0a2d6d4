"""`Microsoft.Communication.IncomingCall` events as Event Grid delivers them, and ACS identifier models.

The `incomingCallContext` is shaped like the real one (an unsigned JWT-looking token) but carries the
call's ids in the clear, so any `LocalAcs` can map an answer back to the call without shared state.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

RESOURCE_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-local/providers/"
               "Microsoft.Communication/communicationServices/acs-local")
INCOMING_CALL = "Microsoft.Communication.IncomingCall"
_CONTEXT_HEADER = {"alg": "none", "typ": "JWT"}
_KINDS = ("phoneNumber", "communicationUser", "microsoftTeamsUser", "microsoftTeamsApp", "teamsExtensionUser")


def identifier(value: str) -> dict[str, Any]:
    """The CommunicationIdentifierModel (with `kind`) for an E.164 number or a raw id (`4:+1...`, `8:acs:...`)."""
    if value.startswith(("+", "4:")):
        number = value.removeprefix("4:")
        return {"kind": "phoneNumber", "rawId": f"4:{number}", "phoneNumber": {"value": number}}
    if value.startswith("8:"):
        return {"kind": "communicationUser", "rawId": value, "communicationUser": {"id": value}}
    return {"kind": "unknown", "rawId": value}


def with_kind(model: Mapping[str, Any]) -> dict[str, Any]:
    """Requests carry identifiers without `kind` (the SDK leaves it out); events and responses carry it."""
    kind = next((k for k in _KINDS if k in model), "unknown")
    return {"kind": kind, **model}


@dataclass(frozen=True)
class IncomingContext:
    correlation_id: str
    server_call_id: str
    to: str  # raw ids
    caller: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_incoming_call_context(ctx: IncomingContext) -> str:
    claims = {"cc": uuid.uuid4().hex, "correlationId": ctx.correlation_id, "serverCallId": ctx.server_call_id,
              "to": ctx.to, "from": ctx.caller}
    header = _b64url(json.dumps(_CONTEXT_HEADER, separators=(",", ":")).encode())
    return f"{header}.{_b64url(json.dumps(claims, separators=(',', ':')).encode())}."


def parse_incoming_call_context(token: str) -> IncomingContext | None:
    """The call behind a context made by `incoming_call_event`, or None for anything else."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return IncomingContext(claims["correlationId"], claims["serverCallId"], claims["to"], claims["from"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None


def new_server_call_id() -> str:
    # Real ones are base64 of a conversation URL; callers must treat them as opaque.
    return base64.b64encode(f"https://local.acs.test/conv/{uuid.uuid4().hex}?i=local".encode()).decode()


def incoming_call_event(to_number: str, from_number: str, *, correlation_id: str | None = None,
                        schema: Literal["eventgrid", "cloudevents"] = "eventgrid",
                        sip_headers: Mapping[str, str] | None = None, caller_display_name: str = "") -> dict[str, Any]:
    """One IncomingCall event (Event Grid delivers the Event Grid schema as a JSON array of these)."""
    to, caller = identifier(to_number), identifier(from_number)
    ctx = IncomingContext(correlation_id or str(uuid.uuid4()), new_server_call_id(), to["rawId"], caller["rawId"])
    data = {
        "to": to,
        "from": caller,
        "serverCallId": ctx.server_call_id,
        "callerDisplayName": caller_display_name,
        "customContext": {"sipHeaders": dict(sip_headers or {}), "voipHeaders": {}},
        "incomingCallContext": make_incoming_call_context(ctx),
        "correlationId": ctx.correlation_id,
    }
    event_id = str(uuid.uuid4())
    subject = f"/caller/{caller['rawId']}/recipient/{to['rawId']}"
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    if schema == "cloudevents":
        return {"id": event_id, "source": RESOURCE_ID, "specversion": "1.0", "type": INCOMING_CALL,
                "subject": subject, "time": now, "data": data}
    return {"id": event_id, "topic": RESOURCE_ID, "subject": subject, "data": data, "eventType": INCOMING_CALL,
            "dataVersion": "1.0", "metadataVersion": "1", "eventTime": now}
