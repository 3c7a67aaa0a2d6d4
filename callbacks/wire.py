"""The ACS ingress's wire messages, parsed once into typed models (unknown fields ignored).

Event Grid delivers `IncomingCall` in its own schema or as a CloudEvent; Call Automation posts its
callbacks as a CloudEvents array. Anything that does not fit is rejected here with a reason, so the
handlers behind only ever see well-formed events.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

INCOMING_CALL = "Microsoft.Communication.IncomingCall"
VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
ACS_PREFIX = "Microsoft.Communication."
MAX_BODY_BYTES = 256 * 1024  # a callback array is a few kB; anything this large is not ACS
MAX_EVENTS = 50
# A call id is also a Durable instance id, and the Durable client puts it in URLs unescaped: only GUIDs,
# `web-<uuid>` and AudioCodes conversation ids' characters (which a call id may be) are accepted.
CALL_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"


def is_call_id(value: str) -> bool:
    return re.fullmatch(CALL_ID, value) is not None


class WireError(ValueError):
    """A message that is not what ACS or Event Grid sends; the text is safe to return to the sender."""

    status, code = 400, "bad_request"


class BodyTooLarge(WireError):
    """A body over MAX_BODY_BYTES: refused before it is parsed (the Functions host itself allows 100 MB)."""

    status, code = 413, "too_large"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class PhoneNumber(_Wire):
    value: str


class Identifier(_Wire):
    """A CommunicationIdentifierModel: a phone number, an ACS user, a Teams user..."""

    raw_id: str = Field("", alias="rawId")
    kind: str = ""
    phone_number: PhoneNumber | None = Field(None, alias="phoneNumber")

    @property
    def number(self) -> str | None:
        if self.phone_number is not None:
            return self.phone_number.value
        return self.raw_id[2:] if self.raw_id.startswith("4:") else None


class IncomingCallData(_Wire):
    to: Identifier
    from_: Identifier = Field(alias="from")
    server_call_id: str = Field("", alias="serverCallId")
    incoming_call_context: str = Field(alias="incomingCallContext", min_length=1)
    correlation_id: str = Field(alias="correlationId", pattern=CALL_ID)  # it becomes the call id
    caller_display_name: str = Field("", alias="callerDisplayName")


class GridEvent(_Wire):
    """One Event Grid event, in either schema (`eventType` or CloudEvents `type`)."""

    id: str = Field(min_length=1, max_length=200)
    event_type: str | None = Field(None, alias="eventType")
    type: str | None = None
    event_time: str | None = Field(None, alias="eventTime", max_length=64)
    time: str | None = Field(None, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.event_type or self.type or ""

    @property
    def sent_at(self) -> datetime | None:
        """When the event was published (a redelivery keeps it); None if absent or unreadable."""
        try:
            return datetime.fromisoformat(self.event_time or self.time or "")
        except ValueError:
            return None


class ResultInformation(_Wire):
    code: int | None = None
    sub_code: int | None = Field(None, alias="subCode")
    message: str = ""


class CallbackData(_Wire):
    call_connection_id: str = Field("", alias="callConnectionId")
    server_call_id: str = Field("", alias="serverCallId")
    correlation_id: str = Field("", alias="correlationId")
    operation_context: str | None = Field(None, alias="operationContext")
    result_information: ResultInformation | None = Field(None, alias="resultInformation")


class CallbackEvent(_Wire):
    """One Call Automation callback (a CloudEvent)."""

    id: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=200)
    source: str = ""
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        """`CallConnected` for `Microsoft.Communication.CallConnected`: the orchestration event's name."""
        return self.type.removeprefix(ACS_PREFIX)

    @property
    def details(self) -> CallbackData:
        return CallbackData.model_validate(self.data)


# The Durable SDK decodes any dict with these keys into a Python object: such data must never reach it.
DURABLE_RESERVED = frozenset({"__class__", "__module__", "__data__"})


def check_event_data(value: Any, depth: int = 0) -> None:
    """Raise WireError if event data holds keys the Durable SDK would turn into objects."""
    if depth > 32:
        raise WireError("event data nested too deeply")
    if isinstance(value, dict):
        if DURABLE_RESERVED & value.keys():
            raise WireError("event data holds reserved keys")
        for item in value.values():
            check_event_data(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_event_data(item, depth + 1)


def json_body(body: bytes) -> Any:
    if len(body) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise WireError("body is not valid JSON") from None


def _events(value: Any, model: type[_Wire]) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise WireError("no events in the body")
    if len(items) > MAX_EVENTS:
        raise WireError(f"more than {MAX_EVENTS} events in one body")
    try:
        return [model.model_validate(item) for item in items]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "event"
        raise WireError(f"invalid event: {where}: {first['msg']}") from None


def grid_events(body: bytes) -> list[GridEvent]:
    """An Event Grid delivery: a JSON array (or one CloudEvent) of events."""
    events: list[GridEvent] = _events(json_body(body), GridEvent)
    return events


def callback_events(body: bytes) -> list[CallbackEvent]:
    events: list[CallbackEvent] = _events(json_body(body), CallbackEvent)
    for event in events:
        check_event_data(event.data)
        try:  # the handler reads `details`: a mistyped field is the sender's error (400), not ours (500)
            CallbackData.model_validate(event.data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise WireError(f"invalid event: data.{where}: {first['msg']}") from None
    return events


def incoming_call(data: Any) -> IncomingCallData:
    try:
        return IncomingCallData.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise WireError(f"invalid IncomingCall: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
