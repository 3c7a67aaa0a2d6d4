"""ACS: what the local ACS sends parses with the SDK's own models, as the real service's messages do.

Grounded in azure-communication-callautomation 1.6.0 (`_generated/models`: the callback event models
CallConnected, MediaStreamingStarted, ..., CallConnectionProperties, CommunicationErrorResponse) and
azure-core's CloudEvent; media-socket messages in the contract of the SDK's StreamingDataParser (see
test_acs_documented_examples.py: the installed Python SDK has none). Each is also parsed by our own
edges: callbacks/wire.py for callbacks, media_host/transports/acs_models.py for media messages.

Not checkable without Azure: which optional fields live ACS adds to each callback, and the timing
and order of callbacks and media messages under load.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from azure.communication.callautomation._generated import models as sdk
from azure.core.messaging import CloudEvent
from websockets.asyncio.server import ServerConnection, serve

from callbacks.wire import callback_events
from local_stack.acs import INTERRUPTED, UNSUCCESSFUL, AcsCallConnection, MediaOffer, StreamingOptions
from local_stack.acs.calls import DEFAULT_DATA, STREAM_URL_MISSING, bot_identity, cloud_event, media_failed
from local_stack.acs.incoming import identifier, with_kind
from local_stack.acs.models import event_model, parse
from local_stack.acs.rest import AcsFailure, error_response
from local_stack.callers.acs_caller import AcsMediaClient
from media_host.transports.acs_models import InboundMessage
from tests.conformance.test_acs_documented_examples import streaming_contract

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
STREAMING = StreamingOptions("ws://127.0.0.1/api/v1/media/stream", "mixed", "audio", True, True, "pcm24KMono", True)


def a_call() -> AcsCallConnection:
    caller = identifier("+14255550123")
    return AcsCallConnection("401f3500-62bd-46a9-8c09-9e1b06caca01", "c2VydmVyLWNhbGw=",
                             "a0619022-0b2b-4ff2-a622-ff6aaee5c60a", "https://app.example.test/api/callbacks", [caller],
                             bot_identity("res"), operation_context="answer", media_streaming=STREAMING)


def emitted() -> list[tuple[str, dict[str, Any]]]:
    """Every callback the local ACS builds: each event's defaults, and the data the server adds to some."""
    call = a_call()
    target = with_kind({"rawId": "4:+15551230000", "phoneNumber": {"value": "+15551230000"}})
    transfer = {"operationContext": "transfer-1", "transferTarget": target, "transferee": call.targets[0]}
    events: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in DEFAULT_DATA]
    events += [("CallTransferAccepted", transfer)]
    events += [("MediaStreamingFailed", media_failed(d)) for d in (UNSUCCESSFUL, INTERRUPTED, STREAM_URL_MISSING)]
    events += [("RecognizeCompleted", {"recognitionType": "dtmf", "dtmfResult": {"tones": ["one", "pound"]}})]
    return [(name, cloud_event(call, name, data)) for name, data in events]


def check_callback(event: dict[str, Any]) -> Any:
    """One callback as the SDK and the app read it: the CloudEvent, its data's generated model, wire.py."""
    CloudEvent.from_dict(event)
    model = event_model(event["type"])
    assert model is not None, f"the SDK has no model for {event['type']}"
    data = parse(model, event["data"], "data")
    [ours] = callback_events(json.dumps([event]).encode())
    assert ours.details.call_connection_id == event["data"]["callConnectionId"]
    return data


@pytest.mark.parametrize(("name", "event"), emitted(), ids=[n for n, _ in emitted()])
def test_every_callback_the_local_acs_builds_parses_with_the_sdk_models(name: str, event: dict[str, Any]) -> None:
    data = check_callback(event)
    assert data.call_connection_id == event["data"]["callConnectionId"]
    assert data.result_information is None or data.result_information.code is not None


@pytest.mark.parametrize("fixture", sorted(PAYLOADS.glob("acs_callback_*.json")), ids=lambda p: p.stem)
def test_the_captured_callbacks_parse_with_the_sdk_models(fixture: Path) -> None:
    for event in json.loads(fixture.read_text()):
        check_callback(event)


def test_call_properties_and_errors_parse_with_the_sdk_models() -> None:
    props = parse(sdk.CallConnectionProperties, a_call().properties(), "body")
    assert props.media_streaming_subscription.subscribed_content_types == ["audio"]
    response = error_response(AcsFailure(400, "BadRequest", "body.callbackUri: the field is required"))
    assert response.text is not None
    error = parse(sdk.CommunicationErrorResponse, json.loads(response.text), "body")
    assert (error.error.code, error.error.message) == ("BadRequest", "body.callbackUri: the field is required")
    parse(sdk.CommunicationErrorResponse, json.loads((PAYLOADS / "acs_rest_error_response.json").read_text()), "body")


@pytest.fixture
async def media_host() -> AsyncIterator[tuple[str, list[str], asyncio.Event]]:
    """A socket at the transportUrl that keeps every text message ACS sends; the event: a DtmfData came."""
    messages: list[str] = []
    keyed = asyncio.Event()

    async def handle(ws: ServerConnection) -> None:
        async for message in ws:
            messages.append(str(message))
            if '"DtmfData"' in str(message):
                keyed.set()

    async with serve(handle, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/", messages, keyed


async def test_every_media_message_the_local_acs_sends_parses_as_the_sdk_and_the_media_host_read_it(
        media_host: tuple[str, list[str], asyncio.Event]) -> None:
    url, messages, keyed = media_host
    call = a_call()
    offer = MediaOffer(call, url, {"x-ms-call-connection-id": call.call_connection_id})
    async with AcsMediaClient.for_offer(offer) as media:
        media.say(bytes(range(256)) * 30)  # speech, then silence
        await media.spoken()
        await media.send_dtmf("5#")
        await asyncio.wait_for(keyed.wait(), 5)
    kinds = {json.loads(m)["kind"] for m in messages}
    assert kinds == {"AudioMetadata", "AudioData", "DtmfData"}
    for message in messages:
        payload = streaming_contract(message)
        parsed = InboundMessage.model_validate_json(message)
        if parsed.audio_data is not None:
            assert len(base64.b64decode(payload["data"])) == 960  # 20 ms at 24 kHz, the call's pcm24KMono
            assert parsed.audio_data.participant == "4:+14255550123"

