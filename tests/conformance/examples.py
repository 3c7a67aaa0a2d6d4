"""Documented examples more than one conformance module reads (each with its source)."""

from __future__ import annotations

from typing import Any

# learn.microsoft.com/azure/event-grid/communication-services-voice-video-events, "Microsoft.Communication.
# IncomingCall", as published (the signed incomingCallContext shortened: it is opaque to every parser here).
INCOMING_CALL: list[dict[str, Any]] = [{
    "id": "d5546be8-227a-4db8-b2c3-4f06fd675fd6",
    "topic": "/subscriptions/{subscription-id}/resourcegroups/{group-name}/providers/microsoft.communication/"
             "communicationservices/{communication-services-resource-name}",
    "subject": "/caller/8:acs:98e4cbef-70e7-4733-8594-063c4a72d711_00000014-2033-438d-1000-343a0d006e10/recipient/"
               "8:acs:98e4cbef-70e7-4733-8594-063c4a72d711_00000014-1889-f3a7-6a0b-343a0d0061f3",
    "data": {
        "to": {"kind": "communicationUser",
               "rawId": "8:acs:98e4cbef-70e7-4733-8594-063c4a72d711_00000014-1889-f3a7-6a0b-343a0d0061f3",
               "communicationUser": {
                   "id": "8:acs:98e4cbef-70e7-4733-8594-063c4a72d711_00000014-1889-f3a7-6a0b-343a0d0061f3"}},
        "from": {"kind": "communicationUser",
                 "rawId": "8:acs:98e4cbef-70e7-4733-8594-063c4a72d711_00000014-2033-438d-1000-343a0d006e10",
                 "communicationUser": {
                     "id": "8:acs:98e4cbef-70e7-4733-8594-063c4a72d711_00000014-2033-438d-1000-343a0d006e10"}},
        "serverCallId": "tob2JIV0wzOHdab3dWcGVWZmsrL2QxYVZnQ2U1bVVLQTh1T056YmpvdXdnQjNzZTlnTEhjNFlYem5BVU9nRGY5dUFQ",
        "callerDisplayName": "John Doe",
        "incomingCallContext": "eyJhbGciOiJub25lIiwidHliSldUIn0.eyJjYyI6Ikg0c0lBQi9iT0JiOUs0SVhtQS9UMGhJbFVaUUlHQVBI.",
        "correlationId": "d732db64-4803-462d-be9c-518943ea2b7a",
    },
    "eventType": "Microsoft.Communication.IncomingCall",
    "dataVersion": "1.0",
    "metadataVersion": "1",
    "eventTime": "2022-08-25T19:27:24.2415391Z",
}]
