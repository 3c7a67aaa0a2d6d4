"""ACS: Microsoft's documented examples, parsed by the SDK's models and by our own edges.

Grounded in:
- IncomingCall (Event Grid): the example of
  learn.microsoft.com/azure/event-grid/communication-services-voice-video-events#microsoftcommunicationincomingcall,
  parsed by azure-eventgrid's EventGridEvent, the Call Automation
  SDK's CommunicationIdentifierModel, and callbacks/wire.py (the ingress's parser).
- Media streaming messages: the examples of the ACS audio streaming quickstart,
  learn.microsoft.com/azure/communication-services/how-tos/call-automation/audio-streaming-quickstart
  (AudioMetadata, AudioData, DtmfData in; AudioData and StopAudio out), parsed by the contract of the
  SDK's StreamingDataParser and by media_host/transports/acs_models.py (the media host's parser).
  The Python SDK installed (azure-communication-callautomation 1.6.0) has no streaming parser (its
  betas parse only transcription): the contract is the .NET SDK's, transcribed in `streaming_contract`.
- Call Automation REST requests: the examples behind the REST reference's "Sample request"
  (learn.microsoft.com/rest/api/communication/callautomation, from Azure/azure-rest-api-specs
  specification/communication/data-plane/CallAutomation/stable/2025-06-15/examples/*.json), accepted
  by the local ACS's SDK-model parser; their documented responses parse with the SDK's models.

Not checkable without Azure: whether live ACS still sends exactly these shapes, what it puts in
incomingCallContext, and the error codes and messages of its 400s (only their body's shape is documented).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from azure.communication.callautomation._generated import models as sdk
from azure.eventgrid import EventGridEvent

from callbacks.wire import grid_events, incoming_call
from local_stack.acs import incoming_call_event
from local_stack.acs.models import parse, parse_request
from media_host.transports.acs_models import STOP_AUDIO, InboundMessage, audio_message
from tests.conformance.examples import INCOMING_CALL

# learn.microsoft.com/azure/communication-services/how-tos/call-automation/audio-streaming-quickstart
# ("Handling audio streams in your websocket server", "DTMF example", "Sending audio streaming data").
AUDIO_METADATA: dict[str, Any] = {"kind": "AudioMetadata", "audioMetadata": {
    "subscriptionId": "89e8cb59-b991-48b0-b154-1db84f16a077", "encoding": "PCM", "sampleRate": 16000, "channels": 1,
    "length": 640}}
AUDIO_DATA: dict[str, Any] = {"kind": "AudioData", "audioData": {
    "timestamp": "2024-11-15T19:16:12.925Z", "participantRawID": "8:acs:3d20e1de-0f28-41c5…",
    "data": "5ADwAOMA6AD0A…", "silent": False}}
DTMF_DATA: dict[str, Any] = {"kind": "DtmfData", "dtmfData": {"data": "3"}}
OUT_AUDIO: dict[str, Any] = {"Kind": "AudioData", "AudioData": {"Data": "<base64 PCM>"}, "StopAudio": None}
OUT_STOP: dict[str, Any] = {"Kind": "StopAudio", "AudioData": None, "StopAudio": {}}

# The .NET SDK's StreamingDataParser (azure-sdk-for-net, sdk/communication/Azure.Communication.CallAutomation/
# src/Models/Streaming/StreamingDataParser.cs; Media/AudioMetadataInternal.cs, AudioDataInternal.cs, DtmfData.cs):
# System.Text.Json, exact property names; an unknown kind is NotSupportedException.
STREAMING_CONTRACT: dict[str, tuple[str, dict[str, type]]] = {
    "AudioMetadata": ("audioMetadata", {"subscriptionId": str, "encoding": str, "sampleRate": int, "channels": int,
                                        "length": int}),
    "AudioData": ("audioData", {"data": str, "timestamp": datetime, "participantRawID": str, "silent": bool}),
    "DtmfData": ("dtmfData", {"data": str}),
}


def streaming_contract(message: str) -> dict[str, Any]:
    """The message's payload, checked as the SDK's StreamingDataParser reads it (AssertionError if it can't)."""
    doc = json.loads(message)
    assert doc["kind"] in STREAMING_CONTRACT, f"the SDK's parser does not support kind {doc['kind']!r}"
    key, fields = STREAMING_CONTRACT[doc["kind"]]
    payload: dict[str, Any] = doc[key]
    assert isinstance(payload, dict)
    for name, kind in fields.items():
        if name not in payload:
            continue  # System.Text.Json leaves a missing member at its default
        value = payload[name]
        if kind is datetime:
            datetime.fromisoformat(value)  # DateTime: an ISO 8601 string
        elif kind is int:
            assert not isinstance(value, bool), f"{name} is not an integer"
            assert isinstance(value, int), f"{name} is not an integer"
        else:
            assert isinstance(value, kind), f"{name} is not a {kind.__name__}"
    return payload


# Azure/azure-rest-api-specs, specification/communication/data-plane/CallAutomation/stable/2025-06-15/examples/
# (the REST reference's sample requests; long incomingCallContext tokens shortened).
CONTEXT = "H4sIAAAAAAAEAMVVS2/bOBD+LzrspaElPiSSBoJFNnvYoNi0aHaBtpcFRQ5t1rIokLRTJ8h/X1J2soHRQ4A9lAdZ4ry"
REST_EXAMPLES: list[tuple[str, str, dict[str, Any]]] = [
    ("AnswerCall.json", "answer", {
        "incomingCallContext": CONTEXT, "callbackUri": "https://app.contoso.com/callback",
        "operationContext": "operationContext", "callIntelligenceOptions": {"cognitiveServicesEndpoint": "string"},
        "answeredBy": {"id": "+11234567890"},
        "mediaStreamingOptions": {"audioChannelType": "mixed", "transportUrl": "string", "transportType": "websocket",
                                  "contentType": "audio", "startMediaStreaming": True, "enableBidirectional": True,
                                  "audioFormat": "pcm16KMono"},
        "transcriptionOptions": {"locale": "en-US", "transportUrl": "string", "transportType": "websocket",
                                 "speechModelEndpointId": "string", "startTranscription": True,
                                 "enableIntermediateResults": True}}),
    ("CreateCall.json", "create", {
        "targets": [{"kind": "communicationUser", "communicationUser": {
            "id": "8:acs:b9614373-fd0b-480c-8fd2-cb58b70eab9f_0f50d091-5bd3-448b-884d-44be7037d9b9"}}],
        "callbackUri": "https://app.contoso.com/callback", "operationContext": "string",
        "callIntelligenceOptions": {"cognitiveServicesEndpoint": "string"},
        "mediaStreamingOptions": {"audioChannelType": "mixed", "transportUrl": "string", "transportType": "websocket",
                                  "contentType": "audio", "startMediaStreaming": True, "enableBidirectional": True,
                                  "audioFormat": "pcm16KMono", "enableDtmfTones": True},
        "transcriptionOptions": {"locale": "en-US", "transportUrl": "string", "transportType": "websocket",
                                 "speechModelEndpointId": "string", "startTranscription": True,
                                 "enableIntermediateResults": True}}),
    ("CallConnection_TransferToParticipant.json", "transfer", {
        "targetParticipant": {"kind": "communicationUser", "communicationUser": {
            "id": "8:acs:b9614373-fd0b-480c-8fd2-cb58b70eab9f_da7be3a9-8788-42a6-85c6-56b2cf784fce"}},
        "transferee": {"kind": "communicationUser", "communicationUser": {
            "id": "8:acs:b9614373-fd0b-480c-8fd2-cb58b70eab9f_ae9e3307-f56e-44be-8934-80a63f080538"}},
        "operationCallbackUri": "https://app.contoso.com/callback", "operationContext": "trasferring call"}),
    ("CallMedia_Play.json", "play", {
        "playSources": [{"kind": "file", "playSourceCacheId": "string",
                         "file": {"uri": "https://some.file.azure.com/sample.wav"}}],
        "playTo": [{"kind": "communicationUser", "communicationUser": {
            "id": "8:acs:b9614373-fd0b-480c-8fd2-cb58b70eab9f_ae9e3307-f56e-44be-8934-80a63f080538"}}],
        "playOptions": {"loop": True}, "operationCallbackUri": "https://app.contoso.com/callback"}),
    ("CallMedia_Recognize.json", "recognize", {
        "recognizeInputType": "dtmf", "playPrompt": {"kind": "file", "file": {"uri": "https://some.file.azure.com/"
                                                                                      "sample.wav"}},
        "recognizeOptions": {"interruptPrompt": True, "initialSilenceTimeoutInSeconds": 5,
                             "targetParticipant": {"kind": "communicationUser", "communicationUser": {"id": (
                                 "8:acs:b9614373-fd0b-480c-8fd2-cb58b70eab9f_da7be3a9-8788-42a6-85c6-56b2cf784fce")}},
                             "dtmfOptions": {"interToneTimeoutInSeconds": 3, "maxTonesToCollect": 5,
                                             "stopTones": ["pound"]}},
        "operationCallbackUri": "https://app.contoso.com/callback"}),
    ("RedirectCall.json", "redirect", {
        "target": {"kind": "communicationUser", "communicationUser": {
            "id": "8:acs:b9614373-fd0b-480c-8fd2-cb58b70eab9f_0f50d091-5bd3-448b-884d-44be7037d9b9"}},
        "incomingCallContext": CONTEXT}),
    ("RejectCall.json", "reject", {"incomingCallContext": CONTEXT}),
    ("CallMedia_StartMediaStreaming.json", "start_media_streaming", {}),
]
# CreateCall.json's documented 201 response (AnswerCall.json's 200 is the same shape).
CALL_CONNECTION: dict[str, Any] = {
    "callConnectionId": "18dea47f-b081-4107-9a5c-4300819d2c6c",
    "serverCallId": "aHR0cHM6Ly9jb252ZXJzYXRpb251cmwvdGVzdA",
    "source": {"kind": "communicationUser", "communicationUser": {
        "id": "8:acs:b9614373-fd0b-480c-8fd2-cb58b70eab9f_da7be3a9-8788-42a6-85c6-56b2cf784fce"}},
    "targets": [{"kind": "communicationUser", "communicationUser": {
        "id": "8:acs:b9614373-fd0b-480c-8fd2-cb58b70eab9f_0f50d091-5bd3-448b-884d-44be7037d9b9"}}],
    "callConnectionState": "connected", "callbackUri": "https://app.contoso.com/callback",
    "mediaStreamingSubscription": {"id": "23dea47f-b081-4107-9a5c-4300819d2caa", "state": "active",
                                   "subscribedContentTypes": ["audio"]},
    "transcriptionSubscription": {"id": "45dea47f-b081-4107-9a5c-4300819d2caa", "state": "active",
                                  "subscribedResultTypes": ["final"]},
    "answeredFor": {"value": "+11234567890"}}


def test_the_documented_incoming_call_parses_with_the_sdk_and_the_ingress() -> None:
    [event] = INCOMING_CALL
    sdk_event = EventGridEvent.from_dict(event)
    assert sdk_event.event_type == "Microsoft.Communication.IncomingCall"
    for side in ("to", "from"):
        identifier = parse(sdk.CommunicationIdentifierModel, event["data"][side], f"data.{side}")
        assert identifier.raw_id == event["data"][side]["rawId"]

    [grid] = grid_events(json.dumps(INCOMING_CALL).encode())  # what on_incoming_call's HTTP twin parses
    assert (grid.kind, grid.sent_at is not None) == ("Microsoft.Communication.IncomingCall", True)
    call = incoming_call(grid.data)
    assert (call.correlation_id, call.caller_display_name) == ("d732db64-4803-462d-be9c-518943ea2b7a", "John Doe")
    assert call.to.raw_id == event["data"]["to"]["rawId"]
    assert call.to.number is None  # an ACS user, not a phone number: no scenario number to route by
    assert call.incoming_call_context == event["data"]["incomingCallContext"]


def test_the_local_acs_incoming_call_has_the_documented_shape() -> None:
    [documented] = INCOMING_CALL
    ours = incoming_call_event("+18005550100", "+14255550123")
    assert set(ours) == set(documented)
    assert set(documented["data"]) <= set(ours["data"])  # plus customContext (AcsIncomingCallEventData)
    for side in ("to", "from"):
        parse(sdk.CommunicationIdentifierModel, ours["data"][side], f"data.{side}")
    EventGridEvent.from_dict(ours)


@pytest.mark.parametrize("message", [AUDIO_METADATA, AUDIO_DATA, DTMF_DATA], ids=lambda m: m["kind"])
def test_documented_media_messages_parse_with_the_sdk_contract_and_the_media_host(message: dict[str, Any]) -> None:
    raw = json.dumps(message)
    payload = streaming_contract(raw)
    parsed = InboundMessage.model_validate_json(raw)
    assert parsed.kind == message["kind"]
    if parsed.audio_metadata is not None:
        assert (parsed.audio_metadata.sample_rate, parsed.audio_metadata.length) == (16000, 640)
    if parsed.audio_data is not None:
        assert parsed.audio_data.participant == payload["participantRawID"]
        assert parsed.audio_data.silent is False
    if parsed.dtmf_data is not None:
        assert parsed.dtmf_data.data == "3"


def test_the_media_host_sends_the_documented_outbound_shapes() -> None:
    assert json.loads(audio_message("<base64 PCM>")) == OUT_AUDIO
    assert json.loads(STOP_AUDIO) == OUT_STOP


@pytest.mark.parametrize(("example", "operation", "body"), REST_EXAMPLES, ids=[e[0] for e in REST_EXAMPLES])
def test_documented_requests_are_accepted_by_the_local_acs(example: str, operation: str, body: dict[str, Any]) -> None:
    typed = parse_request(operation, body)
    assert typed is not None
    assert typed.serialize() == body  # every documented field is one the SDK's model knows


def test_the_documented_call_connection_parses_with_the_sdk() -> None:
    props = parse(sdk.CallConnectionProperties, CALL_CONNECTION, "body")
    assert props.media_streaming_subscription.subscribed_content_types == ["audio"]
