"""Call state kept by the local ACS, the CallConnectionProperties it answers with, and the callback
CloudEvents it posts (shaped like `reference/payloads/acs_rest_*` and `acs_callback_*`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local_stack.acs.incoming import identifier
from local_stack.acs.models import StreamingOptions

Json = dict[str, Any]
EVENT_PREFIX = "Microsoft.Communication."
EVENT_VERSION = "2024-09-15"  # what live callbacks carry in data.version
STREAM_URL_MISSING = "streamUrlMissing"  # mediaStreamingStatusDetails when there is nowhere to stream to
_OK = {"code": 200, "subCode": 0, "message": "Action completed successfully."}


def _streaming(status: str, details: str) -> Json:
    return {"contentType": "Audio", "mediaStreamingStatus": status, "mediaStreamingStatusDetails": details}


# Event-specific data each event carries unless overridden (values from captured callbacks).
DEFAULT_DATA: dict[str, Json] = {
    "CallConnected": {},
    "CallDisconnected": {"resultInformation": {
        "code": 200, "subCode": 560000, "message": "The conversation has ended. DiagCode: 0#560000.@"}},
    "CallTransferAccepted": {"resultInformation": {
        "code": 202, "subCode": 0, "message": "The transfer operation completed successfully."}},
    "CallTransferFailed": {"resultInformation": {"code": 500, "subCode": 7504, "message": "Transfer failed."}},
    "MediaStreamingStarted": {"mediaStreamingUpdate": _streaming("mediaStreamingStarted", "subscriptionStarted"),
                              "resultInformation": _OK},
    "MediaStreamingStopped": {"mediaStreamingUpdate": _streaming("mediaStreamingStopped", "subscriptionStopped"),
                              "resultInformation": _OK},
    "MediaStreamingFailed": {
        "mediaStreamingUpdate": _streaming("mediaStreamingFailed", "streamConnectionUnsuccessful"),
        "resultInformation": {"code": 500, "subCode": 8581, "message": "Action failed, StreamConnectionUnsuccessful."}},
    "PlayCompleted": {"resultInformation": _OK},
    "PlayFailed": {"failedPlaySourceIndex": 0, "resultInformation": {
        "code": 400, "subCode": 8535, "message": "Action failed, file format is invalid."}},
    "RecognizeFailed": {"resultInformation": {
        "code": 400, "subCode": 8510, "message": "Action failed, initial silence timeout reached."}},
}


@dataclass(frozen=True)
class Delivery:
    """A callback POST: the CloudEvents array sent, and the app's status (None: could not connect)."""

    event_type: str
    url: str
    body: list[Json]
    status: int | None


@dataclass
class AcsCallConnection:
    """One call connection as the local ACS sees it (what `callConnectionId` names)."""

    call_connection_id: str
    server_call_id: str
    correlation_id: str
    callback_url: str
    targets: list[Json]  # the other party (the caller for an answered call), with `kind`
    source: Json  # this app's identity in the call
    state: str = "connecting"  # connecting | connected | transferring | transferAccepted | disconnected
    operation_context: str | None = None  # from answer/create; echoed by call-level events
    answered_by: str | None = None
    answered_for: Json | None = None
    source_caller_id_number: Json | None = None
    incoming_call_context: str | None = None
    media_streaming: StreamingOptions | None = None  # mediaStreamingOptions as requested, parsed by the SDK model
    media_state: str = "inactive"  # inactive | active
    transcription: Json | None = None
    subscription_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Set once the call is disconnected: whoever holds the caller's end (between media sockets too) hangs up.
    over: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    def disconnect(self) -> None:
        self.state = "disconnected"
        self.over.set()

    @property
    def media_transport_url(self) -> str | None:
        return None if self.media_streaming is None else self.media_streaming.transport_url

    @property
    def participants(self) -> list[Json]:
        return [*self.targets, self.source]

    def properties(self) -> Json:
        """The CallConnectionProperties body of answer, create and get."""
        props: Json = {"callConnectionId": self.call_connection_id, "serverCallId": self.server_call_id,
                       "targets": self.targets, "callConnectionState": self.state, "callbackUri": self.callback_url,
                       "source": self.source, "correlationId": self.correlation_id}
        if self.source_caller_id_number is not None:
            props["sourceCallerIdNumber"] = self.source_caller_id_number
        if self.answered_by is not None:
            props["answeredBy"] = {"id": self.answered_by}
        if self.answered_for is not None:
            props["answeredFor"] = self.answered_for
        if self.media_streaming is not None:
            props["mediaStreamingSubscription"] = {
                "id": self.subscription_id, "state": self.media_state,
                "subscribedContentTypes": [self.media_streaming.content_type]}
        if self.transcription is not None:
            props["transcriptionSubscription"] = {"id": self.subscription_id, "state": "inactive",
                                                  "locale": self.transcription.get("locale", "en-US")}
        return props

    def apply(self, event_type: str) -> None:
        """What an event means for the call's state (applied as it is posted, whoever posts it)."""
        match event_type:
            case "CallConnected" | "CallTransferFailed":
                self.state = "connected"
            case "CallTransferAccepted":
                self.state = "transferAccepted"
            case "CallDisconnected":
                self.disconnect()
            case "MediaStreamingStarted":
                self.media_state = "active"
            case "MediaStreamingStopped" | "MediaStreamingFailed":
                self.media_state = "inactive"


def media_failed(details: str) -> Json:
    """MediaStreamingFailed's data when the media socket could not open or broke (`details`: ACS's
    mediaStreamingStatusDetails, e.g. streamConnectionUnsuccessful, streamConnectionInterrupted)."""
    name = details[:1].upper() + details[1:]
    return {"mediaStreamingUpdate": _streaming("mediaStreamingFailed", details),
            "resultInformation": {"code": 500, "subCode": 8581, "message": f"Action failed, {name}."}}


def streaming_started(options: StreamingOptions | None, context: Json) -> tuple[str, Json]:
    """The event starting a stream posts: without a transportUrl ACS cannot connect, and says so
    (MediaStreamingStatusDetails.STREAM_URL_MISSING in the SDK's generated enums)."""
    if options is None or not options.transport_url:
        return "MediaStreamingFailed", {**context, **media_failed(STREAM_URL_MISSING)}
    return "MediaStreamingStarted", context


def event_name(event_type: str) -> str:
    """`CallConnected` from either `CallConnected` or `Microsoft.Communication.CallConnected`."""
    return event_type.removeprefix(EVENT_PREFIX)


def cloud_event(call: AcsCallConnection, event_type: str, data_overrides: Mapping[str, Any] | None = None) -> Json:
    """One callback CloudEvent; an override of None removes that data field (e.g. `operationContext`)."""
    name = event_name(event_type)
    data: Json = {"version": EVENT_VERSION, **DEFAULT_DATA.get(name, {})}
    if call.operation_context is not None:
        data["operationContext"] = call.operation_context
    data.update({"callConnectionId": call.call_connection_id, "serverCallId": call.server_call_id,
                 "correlationId": call.correlation_id, "publicEventType": EVENT_PREFIX + name})
    for key, value in (data_overrides or {}).items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    source = f"calling/callConnections/{call.call_connection_id}"
    return {"id": str(uuid.uuid4()), "source": source, "type": EVENT_PREFIX + name, "data": data,
            "time": datetime.now(UTC).isoformat(), "specversion": "1.0", "datacontenttype": "application/json",
            "subject": source}


def transferee(call: AcsCallConnection) -> Json | None:
    return call.targets[0] if call.targets else None


def bot_identity(resource_guid: str) -> Json:
    return identifier(f"8:acs:{resource_guid}_{uuid.uuid4()}")
