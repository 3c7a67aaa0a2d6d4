"""local_stack.acs.LocalAcs driven by the real async Call Automation SDK (1.6.0) over plain HTTP.

What is pinned here: the request bodies the SDK sends (as captured from live ACS), that the SDK parses our
responses and errors, HMAC rejection, injected faults against the SDK's retry policy, and the callback
CloudEvents the app receives.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from azure.communication.callautomation import (
    AudioFormat,
    MediaStreamingAudioChannelType,
    MediaStreamingContentType,
    MediaStreamingOptions,
    PhoneNumberIdentifier,
    StreamingTransportType,
    TextSource,
)
from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from local_stack.acs import LocalAcs, incoming_call_event, parse_incoming_call_context
from local_stack.acs.hmac_auth import content_hash, sign

KEY = base64.b64encode(b"local-acs-test-key-0123456789abc").decode()
CALLER, OUR_NUMBER, AGENT = "+14255550123", "+18005550100", "+15551230000"
TRANSPORT_URL = "wss://media.example.test/ws/acs?token=abc"
ENVELOPE = {"id", "source", "type", "data", "time", "specversion", "datacontenttype", "subject"}


class Receiver:
    """The app's callback endpoint: records each POSTed CloudEvents array."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], list[dict[str, Any]]]] = []
        self.status = 200
        self._changed = asyncio.Condition()
        self.url = ""

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for _, body in self.posts for event in body]

    def types(self) -> list[str]:
        return [event["type"].removeprefix("Microsoft.Communication.") for event in self.events]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        async with self._changed:
            self.posts.append((dict(request.headers), body))
            self._changed.notify_all()
        return web.Response(status=self.status)

    async def event(self, name: str, timeout: float = 5.0) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            return next((e for e in self.events if e["type"] == f"Microsoft.Communication.{name}"), None)
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: find() is not None)
        found = find()
        assert found is not None
        return found


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/api/callbacks", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/callbacks?token=s3cr3t"
    yield rec
    await runner.cleanup()


@pytest.fixture
async def acs() -> AsyncIterator[LocalAcs]:
    async with LocalAcs(KEY, auto_callbacks=True) as server:
        yield server


@pytest.fixture
async def client(acs: LocalAcs) -> AsyncIterator[CallAutomationClient]:
    async with CallAutomationClient(acs.endpoint, AzureKeyCredential(KEY)) as sdk:
        yield sdk


def media(start: bool = True) -> MediaStreamingOptions:
    return MediaStreamingOptions(
        transport_url=TRANSPORT_URL, transport_type=StreamingTransportType.WEBSOCKET,
        content_type=MediaStreamingContentType.AUDIO, audio_channel_type=MediaStreamingAudioChannelType.MIXED,
        start_media_streaming=start, enable_bidirectional=True, audio_format=AudioFormat.PCM24_K_MONO)


async def answer(client: CallAutomationClient, receiver: Receiver, *, start_media: bool = True,
                 correlation_id: str | None = None) -> tuple[str, dict[str, Any]]:
    event = incoming_call_event(OUR_NUMBER, CALLER, correlation_id=correlation_id)
    props = await client.answer_call(event["data"]["incomingCallContext"], receiver.url,
                                     operation_context="answer-1", media_streaming=media(start_media))
    assert props.call_connection_id is not None
    return props.call_connection_id, event


async def test_answer_sends_the_captured_body_and_the_sdk_parses_the_response(
        acs: LocalAcs, client: CallAutomationClient, receiver: Receiver) -> None:
    event = incoming_call_event(OUR_NUMBER, CALLER, correlation_id="corr-42")
    context = event["data"]["incomingCallContext"]
    props = await client.answer_call(context, receiver.url, operation_context="answer-1", media_streaming=media(),
                                     cognitive_services_endpoint="https://my-speech.cognitiveservices.azure.com/")

    recorded = await acs.wait_for("answer")
    assert recorded.body == {
        "incomingCallContext": context,
        "callbackUri": receiver.url,
        "operationContext": "answer-1",
        "callIntelligenceOptions": {"cognitiveServicesEndpoint": "https://my-speech.cognitiveservices.azure.com/"},
        "mediaStreamingOptions": {"transportType": "websocket", "audioChannelType": "mixed",
                                  "transportUrl": TRANSPORT_URL, "contentType": "audio", "startMediaStreaming": True,
                                  "enableBidirectional": True, "audioFormat": "pcm24KMono"},
    }
    assert (recorded.method, recorded.path, recorded.status) == ("POST", "/calling/callConnections:answer", 200)
    assert recorded.query == {"api-version": "2026-03-12"}
    assert recorded.headers["repeatability-request-id"]

    call_id = props.call_connection_id
    assert call_id is not None
    assert call_id == recorded.call_connection_id
    assert props.correlation_id == "corr-42" == event["data"]["correlationId"]
    assert props.server_call_id == event["data"]["serverCallId"]
    assert props.call_connection_state == "connecting"
    assert props.callback_url == receiver.url
    assert [t.raw_id for t in props.targets or []] == [f"4:{CALLER}"]
    assert props.answered_for is not None
    assert props.answered_for.raw_id == f"4:{OUR_NUMBER}"
    assert props.source is not None
    assert props.source.raw_id == acs.identity["rawId"]
    assert props.media_streaming_subscription is not None
    assert props.media_streaming_subscription.state == "inactive"
    call = acs.calls[call_id]
    assert call.media_transport_url == TRANSPORT_URL  # where the media WebSocket will go

    await receiver.event("MediaStreamingStarted")
    connection = client.get_call_connection(call_id)
    current = await connection.get_call_properties()
    assert current.call_connection_state == "connected"
    assert current.media_streaming_subscription is not None
    assert current.media_streaming_subscription.state == "active"
    participants = [p.identifier.raw_id async for p in connection.list_participants() if p.identifier]
    assert participants == [f"4:{CALLER}", acs.identity["rawId"]]


async def test_auto_callbacks_after_answer_are_cloud_events_in_order(
        acs: LocalAcs, client: CallAutomationClient, receiver: Receiver) -> None:
    call_id, incoming = await answer(client, receiver)
    connected = await receiver.event("CallConnected")
    await receiver.event("MediaStreamingStarted")
    assert receiver.types() == ["CallConnected", "MediaStreamingStarted"]
    assert all(len(body) == 1 for _, body in receiver.posts)  # one event per POST, in an array
    assert all(headers["Content-Type"].startswith("application/json") for headers, _ in receiver.posts)

    assert set(connected) == ENVELOPE
    assert connected["source"] == connected["subject"] == f"calling/callConnections/{call_id}"
    assert (connected["specversion"], connected["datacontenttype"]) == ("1.0", "application/json")
    assert connected["data"] == {
        "version": "2024-09-15", "operationContext": "answer-1", "callConnectionId": call_id,
        "serverCallId": incoming["data"]["serverCallId"], "correlationId": incoming["data"]["correlationId"],
        "publicEventType": "Microsoft.Communication.CallConnected"}
    started = receiver.events[1]["data"]
    assert started["mediaStreamingUpdate"] == {"contentType": "Audio", "mediaStreamingStatus": "mediaStreamingStarted",
                                               "mediaStreamingStatusDetails": "subscriptionStarted"}
    assert started["resultInformation"]["code"] == 200
    await acs.idle()  # the app's answers are recorded once the POSTs return
    assert [(d.event_type, d.status) for d in acs.callbacks] == [("CallConnected", 200), ("MediaStreamingStarted", 200)]


async def test_transfer_is_recorded_and_accepted_then_the_call_ends(
        acs: LocalAcs, client: CallAutomationClient, receiver: Receiver) -> None:
    call_id, _ = await answer(client, receiver, start_media=False)
    await receiver.event("CallConnected")
    result = await client.get_call_connection(call_id).transfer_call_to_participant(
        PhoneNumberIdentifier(AGENT), operation_context="transfer-1", sip_headers={"X-MS-Custom-Reason": "escalation"})
    assert result.operation_context == "transfer-1"

    recorded = await acs.wait_for("transfer")
    assert recorded.path == f"/calling/callConnections/{call_id}:transferToParticipant"
    assert recorded.status == 202
    assert recorded.body == {"targetParticipant": {"rawId": f"4:{AGENT}", "phoneNumber": {"value": AGENT}},
                             "operationContext": "transfer-1",
                             "customCallingContext": {"sipHeaders": {"X-MS-Custom-Reason": "escalation"}}}

    accepted = (await receiver.event("CallTransferAccepted"))["data"]
    assert accepted["operationContext"] == "transfer-1"
    assert accepted["transferTarget"] == {"kind": "phoneNumber", "rawId": f"4:{AGENT}",
                                          "phoneNumber": {"value": AGENT}}
    assert accepted["transferee"]["rawId"] == f"4:{CALLER}"
    await receiver.event("CallDisconnected")
    assert receiver.types() == ["CallConnected", "CallTransferAccepted", "CallDisconnected"]
    assert acs.calls[call_id].state == "disconnected"


async def test_a_failing_transfer_leaves_the_call_up(
        acs: LocalAcs, client: CallAutomationClient, receiver: Receiver) -> None:
    acs.transfer_outcome = "failed"
    call_id, _ = await answer(client, receiver, start_media=False)
    await receiver.event("CallConnected")
    await client.get_call_connection(call_id).transfer_call_to_participant(PhoneNumberIdentifier(AGENT))
    failed = (await receiver.event("CallTransferFailed"))["data"]
    assert failed["resultInformation"]["code"] == 500
    assert failed["operationContext"] == "answer-1"  # no action context given: the call's own
    await acs.idle()
    assert acs.calls[call_id].state == "connected"


@pytest.mark.parametrize("case", [(True, "terminate", "POST", ":terminate"), (False, "hang_up", "DELETE", "")])
async def test_hang_up_ends_the_call_and_posts_call_disconnected(
        acs: LocalAcs, client: CallAutomationClient, receiver: Receiver, case: tuple[bool, str, str, str]) -> None:
    for_everyone, operation, method, suffix = case
    call_id, _ = await answer(client, receiver, start_media=False)
    await receiver.event("CallConnected")
    connection = client.get_call_connection(call_id)
    await connection.hang_up(is_for_everyone=for_everyone)

    recorded = await acs.wait_for(operation)
    assert (recorded.method, recorded.path, recorded.status) == (
        method, f"/calling/callConnections/{call_id}{suffix}", 204)
    assert recorded.body is None
    disconnected = (await receiver.event("CallDisconnected"))["data"]
    assert disconnected["resultInformation"]["subCode"] == 560000
    with pytest.raises(ResourceNotFoundError):  # the call is gone
        await connection.get_call_properties()


async def test_media_streaming_can_be_started_and_stopped_later(
        acs: LocalAcs, client: CallAutomationClient, receiver: Receiver) -> None:
    call_id, _ = await answer(client, receiver, start_media=False)
    await receiver.event("CallConnected")
    connection = client.get_call_connection(call_id)
    await connection.start_media_streaming(operation_context="ms-start")
    recorded = await acs.wait_for("start_media_streaming")
    assert (recorded.path, recorded.body, recorded.status) == (
        f"/calling/callConnections/{call_id}:startMediaStreaming", {"operationContext": "ms-start"}, 202)
    assert (await receiver.event("MediaStreamingStarted"))["data"]["operationContext"] == "ms-start"

    await connection.stop_media_streaming(operation_context="ms-stop")
    assert (await acs.wait_for("stop_media_streaming")).body == {"operationContext": "ms-stop"}
    stopped = (await receiver.event("MediaStreamingStopped"))["data"]
    assert stopped["mediaStreamingUpdate"]["mediaStreamingStatus"] == "mediaStreamingStopped"
    assert acs.calls[call_id].media_state == "inactive"


async def test_actions_wait_for_call_connected_and_manual_callbacks_drive_the_call(
        receiver: Receiver) -> None:
    async with LocalAcs(KEY) as acs, CallAutomationClient(acs.endpoint, AzureKeyCredential(KEY)) as client:
        call_id, _ = await answer(client, receiver, start_media=False)
        connection = client.get_call_connection(call_id)
        with pytest.raises(HttpResponseError) as info:
            await connection.play_media(TextSource(text="Hello", voice_name="en-US-NancyNeural"))
        assert info.value.status_code == 400
        assert info.value.error is not None
        assert info.value.error.code == "8501"

        assert await acs.post_callback(call_id, "CallConnected") == 200
        hello = TextSource(text="Hello", voice_name="en-US-NancyNeural")
        await connection.play_media(hello, operation_context="play-1")
        played = [r for r in acs.requests if r.operation == "play"]
        assert [r.status for r in played] == [400, 202]
        # play_media(play_to="all") leaves interruptCallMediaOperation out; play_media_to_all sends false
        assert played[1].body == {
            "playSources": [{"kind": "text", "text": {"text": "Hello", "voiceName": "en-US-NancyNeural"}}],
            "playTo": [], "playOptions": {"loop": False}, "operationContext": "play-1"}

        status = await acs.post_callback(call_id, "Microsoft.Communication.RecognizeCompleted", {
            "recognitionType": "dtmf", "dtmfResult": {"tones": ["one", "two"]}, "operationContext": None})
        assert status == 200
        recognized = (await receiver.event("RecognizeCompleted"))["data"]
        assert recognized["dtmfResult"] == {"tones": ["one", "two"]}
        assert "operationContext" not in recognized
        assert receiver.types() == ["CallConnected", "RecognizeCompleted"]  # no automatic callbacks


async def test_a_client_with_the_wrong_key_gets_401(acs: LocalAcs, receiver: Receiver) -> None:
    wrong = base64.b64encode(b"x" * 32).decode()
    async with CallAutomationClient(acs.endpoint, AzureKeyCredential(wrong)) as client:
        with pytest.raises(HttpResponseError) as info:
            await answer(client, receiver)
    assert info.value.status_code == 401
    assert info.value.error is not None
    assert (info.value.error.code, info.value.error.message) == ("Unauthorized", "signature does not match")
    assert acs.requests == []
    assert acs.rejected == [("/calling/callConnections:answer", "signature does not match")]


async def test_an_injected_500_surfaces_as_an_sdk_error(acs: LocalAcs, receiver: Receiver) -> None:
    acs.fail_next("answer", status=500)
    async with CallAutomationClient(acs.endpoint, AzureKeyCredential(KEY), retry_total=0) as client:
        with pytest.raises(HttpResponseError) as info:
            await answer(client, receiver)
        assert info.value.status_code == 500
        assert info.value.error is not None
        assert info.value.error.code == "InternalServerError"
        assert acs.calls == {}  # a faulted request has no effect

        call_id, _ = await answer(client, receiver)  # the fault was used up
    assert [r.status for r in acs.requests] == [500, 200]
    assert acs.requests[1].call_connection_id == call_id


# azure-core retries a POST on 500/502/503/504, and on any status with Retry-After, but not on a bare 429.
@pytest.mark.parametrize(("status", "retry_after"), [(500, None), (429, 0)])
async def test_the_sdk_retries_injected_faults_with_the_same_repeatability_id(
        acs: LocalAcs, client: CallAutomationClient, receiver: Receiver, status: int,
        retry_after: float | None) -> None:
    call_id, _ = await answer(client, receiver, start_media=False)
    await receiver.event("CallConnected")
    acs.fail_next("transfer", status=status, times=1, retry_after=retry_after)
    await client.get_call_connection(call_id).transfer_call_to_participant(PhoneNumberIdentifier(AGENT))
    attempts = [r for r in acs.requests if r.operation == "transfer"]
    assert [r.status for r in attempts] == [status, 202]
    first, second = (r.headers["repeatability-request-id"] for r in attempts)
    assert first == second  # what lets ACS de-duplicate a retried POST
    await receiver.event("CallDisconnected")
    assert receiver.types().count("CallTransferAccepted") == 1


async def test_a_429_without_retry_after_is_not_retried_for_a_post(
        acs: LocalAcs, client: CallAutomationClient, receiver: Receiver) -> None:
    call_id, _ = await answer(client, receiver, start_media=False)
    await receiver.event("CallConnected")
    acs.fail_next("play", status=429, times=2)
    with pytest.raises(HttpResponseError) as info:
        await client.get_call_connection(call_id).play_media(TextSource(text="Hi"))
    assert info.value.status_code == 429
    assert [r.status for r in acs.requests if r.operation == "play"] == [429]


async def test_unknown_calls_bad_contexts_and_malformed_json_get_acs_errors(
        acs: LocalAcs, client: CallAutomationClient, receiver: Receiver) -> None:
    with pytest.raises(ResourceNotFoundError) as missing:
        await client.get_call_connection("no-such-call").get_call_properties()
    assert missing.value.status_code == 404
    assert missing.value.error is not None
    assert "no-such-call" in (missing.value.error.message or "")

    with pytest.raises(HttpResponseError) as bad_context:
        await client.answer_call("eyJhbGciOi...", receiver.url)
    assert bad_context.value.status_code == 400

    status, body = await signed_post(acs, "/calling/callConnections:answer?api-version=2026-03-12", b"{not json")
    assert status == 400
    assert body["error"]["code"] == "BadRequest"
    assert acs.requests[-1].operation == "answer"
    assert acs.requests[-1].body is None


async def signed_post(acs: LocalAcs, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """A POST signed as the SDK signs, for bodies the SDK would never send."""
    host = acs.endpoint.removeprefix("http://")
    date = format_datetime(datetime.now(UTC), usegmt=True)
    digest = content_hash(body)
    signature = sign("POST", path, x_ms_date=date, host=host, body_hash=digest, access_key_b64=KEY)
    headers = {"x-ms-date": date, "x-ms-content-sha256": digest, "Content-Type": "application/json",
               "Authorization": f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature}"}
    async with aiohttp.ClientSession() as session, session.post(acs.endpoint + path, data=body,
                                                                headers=headers) as response:
        return response.status, await response.json()


@pytest.mark.parametrize(("schema", "keys", "type_key"), [
    ("eventgrid", {"id", "topic", "subject", "data", "eventType", "dataVersion", "metadataVersion", "eventTime"},
     "eventType"),
    ("cloudevents", {"id", "source", "specversion", "type", "subject", "time", "data"}, "type"),
])
def test_incoming_call_events_match_the_event_grid_schemas(schema: Any, keys: set[str], type_key: str) -> None:
    event = incoming_call_event(OUR_NUMBER, CALLER, correlation_id="corr-1", schema=schema,
                                sip_headers={"X-MS-Custom-CustomerId": "12345"})
    assert set(event) == keys
    assert event[type_key] == "Microsoft.Communication.IncomingCall"
    assert event["subject"] == f"/caller/4:{CALLER}/recipient/4:{OUR_NUMBER}"
    data = event["data"]
    assert set(data) == {"to", "from", "serverCallId", "callerDisplayName", "customContext", "incomingCallContext",
                         "correlationId"}
    assert data["to"] == {"kind": "phoneNumber", "rawId": f"4:{OUR_NUMBER}", "phoneNumber": {"value": OUR_NUMBER}}
    assert data["customContext"] == {"sipHeaders": {"X-MS-Custom-CustomerId": "12345"}, "voipHeaders": {}}
    assert data["incomingCallContext"].startswith("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.")  # as the real one
    context = parse_incoming_call_context(data["incomingCallContext"])
    assert context is not None
    assert context.correlation_id == "corr-1"
    json.dumps(event)  # plain JSON, ready to POST



ANSWER = {"incomingCallContext": "", "callbackUri": "https://app.example.test/api/callbacks",
          "mediaStreamingOptions": {"transportType": "websocket", "audioChannelType": "mixed",
                                    "transportUrl": TRANSPORT_URL, "audioFormat": "pcm24KMono",
                                    "enableDtmfTones": True}}


def answer_body(**changes: Any) -> dict[str, Any]:
    """An answer body for a fresh incoming call; `changes` maps a dotted path to a value (None: remove it)."""
    body: dict[str, Any] = json.loads(json.dumps(ANSWER))
    body["incomingCallContext"] = incoming_call_event(OUR_NUMBER, CALLER)["data"]["incomingCallContext"]
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = body
        for key in parents:
            node = node[key]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return body


# What the SDK's generated AnswerCallRequest / WebSocketMediaStreamingOptions (1.6.0) refuse, as the service does.
@pytest.mark.parametrize(("change", "where"), [
    ({"callbackUri": None}, "body.callbackUri: the field is required"),
    ({"mediaStreamingOptions.audioChannelType": None}, "body.mediaStreamingOptions.audioChannelType: the field"),
    ({"mediaStreamingOptions.audioFormat": "pcm8KMono"}, "body.mediaStreamingOptions.audioFormat: not a valid"),
    ({"mediaStreamingOptions.audioChannelType": "stereo"}, "audioChannelType: not a valid MediaStreamingAudio"),
    ({"mediaStreamingOptions.transportType": "grpc"}, "body.mediaStreamingOptions.transportType: must be one of"),
    ({"mediaStreamingOptions.enableDtmfTones": "true"}, "body.mediaStreamingOptions.enableDtmfTones: expected true"),
    ({"mediaStreamingOptions.contentType": "video"}, "body.mediaStreamingOptions.contentType: not a valid"),
    ({"operationContext": 42}, "body.operationContext: expected a string"),
    ({"mediaStreamingOptions": []}, "body.mediaStreamingOptions: expected a JSON object"),
])
async def test_answers_the_service_would_refuse_get_its_400_and_make_no_call(
        acs: LocalAcs, change: dict[str, Any], where: str) -> None:
    raw = json.dumps(answer_body(**change)).encode()
    status, body = await signed_post(acs, "/calling/callConnections:answer?api-version=2026-03-12", raw)
    assert status == 400
    assert body["error"]["code"] == "BadRequest"
    assert where in body["error"]["message"]
    assert acs.calls == {}
    assert acs.requests[-1].status == 400


async def test_enum_names_are_read_case_insensitively_and_unknown_fields_ignored(acs: LocalAcs) -> None:
    # The SDK's enums are CaseInsensitiveEnumMeta and System.Text.Json ignores unknown members, as ACS does.
    raw = json.dumps(answer_body(**{"mediaStreamingOptions.audioFormat": "PCM16KMONO",
                                    "mediaStreamingOptions.futureOption": 1})).encode()
    status, body = await signed_post(acs, "/calling/callConnections:answer?api-version=2026-03-12", raw)
    assert status == 200
    options = acs.calls[body["callConnectionId"]].media_streaming
    assert options is not None
    assert (options.sample_rate, options.dtmf_tones, options.start) == (16000, True, False)


@pytest.mark.parametrize(("path", "body", "where"), [
    (":transferToParticipant", {"operationContext": "t"}, "body.targetParticipant: the field is required"),
    (":transferToParticipant", {"targetParticipant": {"rawId": 4}}, "body.targetParticipant.rawId: expected a str"),
    (":play", {"playSources": [{"kind": "speech"}]}, "body.playSources[0].kind: not a valid PlaySourceType"),
    (":recognize", {"recognizeInputType": "dtmf", "recognizeOptions": {
        "targetParticipant": {"rawId": "4:+1"}, "dtmfOptions": {"stopTones": ["pound", "hash"]}}},
     "body.recognizeOptions.dtmfOptions.stopTones[1]: not a valid DtmfTone"),
    (":recognize", {"recognizeInputType": "dtmf", "recognizeOptions": {
        "targetParticipant": {"rawId": "4:+1"}, "initialSilenceTimeoutInSeconds": 301}},
     "body.recognizeOptions.initialSilenceTimeoutInSeconds: must be at most 300"),
])
async def test_actions_are_checked_against_the_sdk_request_models_before_the_call_is_looked_up(
        acs: LocalAcs, path: str, body: dict[str, Any], where: str) -> None:
    status, reply = await signed_post(acs, f"/calling/callConnections/no-such-call{path}?api-version=2026-03-12",
                                      json.dumps(body).encode())
    assert (status, reply["error"]["code"]) == (400, "BadRequest")
    assert where in reply["error"]["message"]
