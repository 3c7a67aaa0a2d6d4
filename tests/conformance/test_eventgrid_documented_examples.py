"""Event Grid: Microsoft's documented events, delivered to both IncomingCall entry points.

Grounded in:
- IncomingCall, Event Grid schema: the example of
  learn.microsoft.com/azure/event-grid/communication-services-voice-video-events#microsoftcommunicationincomingcall
  (MicrosoftDocs/azure-docs articles/event-grid/communication-services-voice-video-events.md).
- The same event in the CloudEvents v1.0 schema, which Event Grid delivers when the subscription asks for
  it ("Event Grid format -> CloudEvents format", learn.microsoft.com/azure/event-grid/cloud-event-schema):
  id, subject and data as they are, `topic` as `source`, `eventType` as `type`, `eventTime` as `time`.
- The subscription validation event and its answer: learn.microsoft.com/azure/event-grid/webhook-event-delivery
  ("Validation details"); the CloudEvents abuse protection: github.com/cloudevents/spec v1.0 http-webhook.md §4.
- Each is also read by the vendors' own models: azure-eventgrid's EventGridEvent.from_dict, azure-core's
  CloudEvent.from_dict, and the Python worker's Event Grid converter (azure.functions EventGridEventInConverter,
  as the eventGridTrigger `on_incoming_call` receives it).

Not checkable without Azure: what live ACS puts in a real incomingCallContext, and Event Grid's own retry
and batching behaviour (the webhook's answers follow learn.microsoft.com/azure/event-grid/delivery-and-retry).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, SystemEventNames

from tests.conformance.examples import INCOMING_CALL
from tests.support.functions_harness import Harness, grid_event, reply_json

CALL_ID = "d732db64-4803-462d-be9c-518943ea2b7a"

# learn.microsoft.com/azure/event-grid/webhook-event-delivery, "Validation details": the event, and the answer.
VALIDATION: list[dict[str, Any]] = [{
    "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
    "topic": "/subscriptions/xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "subject": "",
    "data": {
        "validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
        "validationUrl": "https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/estest/validate?"
                         "id=512d38b6-c7b8-40c8-89fe-f46f9e9622b6&t=2018-04-26T20:30:54.4538837Z"
                         "&apiVersion=2018-05-01-preview&token=1A1A1A1A",
    },
    "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
    "eventTime": "2018-01-25T22:12:19.4556811Z",
    "metadataVersion": "1",
    "dataVersion": "1",
}]
VALIDATION_RESPONSE = {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}


def as_cloud_event(event: dict[str, Any]) -> dict[str, Any]:
    """The Event Grid schema event as Event Grid delivers it to a CloudEvents v1.0 subscription."""
    return {"specversion": "1.0", "type": event["eventType"], "source": event["topic"], "id": event["id"],
            "time": event["eventTime"], "subject": event["subject"], "data": event["data"]}


def delivery(schema: str, event: dict[str, Any]) -> Any:
    """A webhook body: an array in the Event Grid schema, one event in the CloudEvents schema."""
    return as_cloud_event(event) if schema == "cloudevents" else [event]


def test_the_documented_events_parse_with_the_vendors_models() -> None:
    [call], [validation] = INCOMING_CALL, VALIDATION
    grid = EventGridEvent.from_dict(call)
    assert (grid.event_type, grid.data["correlationId"]) == (SystemEventNames.AcsIncomingCallEventName, CALL_ID)
    cloud: CloudEvent[Any] = CloudEvent.from_dict(as_cloud_event(call))
    assert (cloud.type, cloud.source, cloud.subject) == (grid.event_type, grid.topic, grid.subject)
    assert EventGridEvent.from_dict(validation).event_type == SystemEventNames.EventGridSubscriptionValidationEventName
    for schema, body in (("eventgrid", call), ("cloudevents", as_cloud_event(call))):  # as the worker decodes it
        decoded = grid_event(body)
        assert decoded.get_json() == call["data"], schema


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
async def test_the_webhook_accepts_the_documented_incoming_call(harness: Harness, schema: str) -> None:
    # Published in 2022, it is far too old to ring: acknowledged as stale (not rejected), and never answered.
    response = await harness.http("incoming_call_webhook", "POST", "eventgrid/incoming-call",
                                  body=delivery(schema, INCOMING_CALL[0]))
    assert response.status_code == 200
    assert reply_json(response) == {"calls": [{"call_id": CALL_ID, "outcome": "stale"}], "ignored": 0,
                                    "rejected": []}
    assert harness.acs.requests == []


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
async def test_the_documented_incoming_call_made_current_is_answered_by_both_entry_points(
        harness: Harness, schema: str) -> None:
    h = harness
    for entry in ("trigger", "webhook"):
        # The documented event (an ACS user calling an ACS user), with a context the local ACS can answer.
        fresh = h.incoming()
        event = copy.deepcopy(INCOMING_CALL[0])
        event["eventTime"] = datetime.now(UTC).isoformat()
        for key in ("incomingCallContext", "correlationId", "serverCallId"):
            event["data"][key] = fresh["data"][key]
        if entry == "trigger":
            await h.deliver(as_cloud_event(event) if schema == "cloudevents" else event)
        else:
            response = await h.http("incoming_call_webhook", "POST", "eventgrid/incoming-call",
                                    body=delivery(schema, event))
            assert reply_json(response)["calls"] == [{"call_id": fresh["data"]["correlationId"],
                                                      "outcome": "answered"}]
        session = await h.store.get(fresh["data"]["correlationId"])
        assert session is not None
        # No phone number to route by: the default scenario, and the caller known by its raw id.
        assert (session.scenario, session.caller, session.callee) == (
            h.worker.settings.default_scenario, event["data"]["from"]["rawId"], None)
    assert [(r.operation, r.status) for r in h.acs.requests] == [("answer", 200), ("answer", 200)]


async def test_the_documented_validation_handshake_is_answered_as_documented(harness: Harness) -> None:
    response = await harness.http("incoming_call_webhook", "POST", "eventgrid/incoming-call", body=VALIDATION,
                                  headers={"aeg-event-type": "SubscriptionValidation"})
    assert response.status_code == 200  # "HTTP 202 Accepted is not recognized as a valid ... response"
    assert reply_json(response) == VALIDATION_RESPONSE


async def test_cloudevents_abuse_protection_is_answered_as_the_spec_says(harness: Harness) -> None:
    response = await harness.http("incoming_call_webhook", "OPTIONS", "eventgrid/incoming-call",
                                  headers={"WebHook-Request-Origin": "eventgrid.azure.net"})
    assert response.status_code == 200
    assert response.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert json.loads(response.get_body() or b"null") is None
