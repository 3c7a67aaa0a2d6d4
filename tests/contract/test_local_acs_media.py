"""The local ACS's media leg: the socket it opens when streaming starts, and closes when the call ends;
a socket that breaks while the call is up is reported to the app as MediaStreamingFailed."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from azure.communication.callautomation import (
    MediaStreamingAudioChannelType,
    MediaStreamingContentType,
    MediaStreamingOptions,
    StreamingTransportType,
)
from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials import AzureKeyCredential
from websockets.asyncio.server import ServerConnection, serve

from local_stack.acs import INTERRUPTED, UNSUCCESSFUL, LocalAcs, MediaLost, MediaOffer, incoming_call_event
from local_stack.callers.acs_caller import AcsMediaClient, DtmfNotStreamed
from media_host.transports.acs_models import audio_message
from tests.contract.test_local_acs import (  # noqa: F401 - receiver is a fixture
    CALLER,
    KEY,
    OUR_NUMBER,
    Receiver,
    answer,
    receiver,
)
from tests.support.waits import first_done


class Legs:
    """A media connector that records offers and holds each leg until ACS ends it, or until a test
    breaks it (`lose`): then it reports the loss as a connector does."""

    def __init__(self) -> None:
        self.offers: list[MediaOffer] = []
        self.closed: list[str] = []
        self.opened = asyncio.Event()
        self.refuse: list[MediaLost] = []  # the next sockets fail to open with these
        self.broken = asyncio.Event()
        self.after_end: MediaLost | None = None  # raised even once ACS ended the leg

    def lose(self) -> None:
        self.broken.set()

    async def __call__(self, offer: MediaOffer) -> None:
        self.offers.append(offer)
        if self.refuse:
            raise self.refuse.pop(0)
        self.opened.set()
        await first_done(self.broken.wait(), offer.ended.wait())
        self.closed.append(offer.call.call_connection_id)
        if self.broken.is_set():
            self.broken.clear()
            raise MediaLost(INTERRUPTED, "1006")
        if self.after_end is not None:
            raise self.after_end


@pytest.fixture
async def legs_acs() -> AsyncIterator[tuple[LocalAcs, Legs]]:
    legs = Legs()
    async with LocalAcs(KEY, auto_callbacks=True, media=legs, callback_token=lambda: "acs-jwt") as acs:
        yield acs, legs


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_streaming_opens_the_socket_with_acs_headers_and_hang_up_closes_it(
        legs_acs: tuple[LocalAcs, Legs], receiver: Receiver) -> None:  # noqa: F811
    acs, legs = legs_acs
    async with CallAutomationClient(acs.endpoint, AzureKeyCredential(KEY)) as client:
        call_id, _ = await answer(client, receiver, correlation_id="corr-media")
        await asyncio.wait_for(legs.opened.wait(), 5)
        [offer] = legs.offers
        assert offer.url == "wss://media.example.test/ws/acs?token=abc"
        assert offer.headers == {"x-ms-call-connection-id": call_id, "x-ms-call-correlation-id": "corr-media",
                                 "Authorization": "Bearer acs-jwt"}
        assert not offer.ended.is_set()
        await client.get_call_connection(call_id).hang_up(is_for_everyone=True)
        await until(lambda: legs.closed == [call_id])
    assert acs.media.offers == [offer]


async def test_the_caller_hanging_up_ends_the_leg_and_posts_call_disconnected(
        legs_acs: tuple[LocalAcs, Legs], receiver: Receiver) -> None:  # noqa: F811
    acs, legs = legs_acs
    async with CallAutomationClient(acs.endpoint, AzureKeyCredential(KEY)) as client:
        call_id, _ = await answer(client, receiver)
        await asyncio.wait_for(legs.opened.wait(), 5)
        acs.caller_hangs_up(call_id)
        await until(lambda: legs.closed == [call_id])
        await receiver.event("CallDisconnected")
    assert acs.calls[call_id].state == "disconnected"


async def test_a_call_without_streaming_opens_no_socket(legs_acs: tuple[LocalAcs, Legs],
                                                         receiver: Receiver) -> None:  # noqa: F811
    acs, legs = legs_acs
    async with CallAutomationClient(acs.endpoint, AzureKeyCredential(KEY)) as client:
        await answer(client, receiver, start_media=False)
        await receiver.event("CallConnected")
    await acs.idle()
    assert legs.offers == []


async def test_a_socket_that_breaks_mid_call_is_reported_and_a_restart_opens_another(
        legs_acs: tuple[LocalAcs, Legs], receiver: Receiver) -> None:  # noqa: F811
    acs, legs = legs_acs
    async with CallAutomationClient(acs.endpoint, AzureKeyCredential(KEY)) as client:
        call_id, _ = await answer(client, receiver)
        await asyncio.wait_for(legs.opened.wait(), 5)
        legs.lose()  # the media host died: the socket closed without ACS ending it
        failed = await receiver.event("MediaStreamingFailed")
        assert failed["data"]["mediaStreamingUpdate"] == {
            "contentType": "Audio", "mediaStreamingStatus": "mediaStreamingFailed",
            "mediaStreamingStatusDetails": INTERRUPTED}
        assert failed["data"]["resultInformation"]["code"] == 500
        assert acs.calls[call_id].media_state == "inactive"
        assert acs.media.offers[0].lost is not None
        assert acs.media.offers[0].lost.details == INTERRUPTED

        # The app restarts streaming; this time the host is not back yet, then it is.
        legs.refuse.append(MediaLost(UNSUCCESSFUL, "connection refused"))
        await client.get_call_connection(call_id).start_media_streaming()
        await until(lambda: receiver.types().count("MediaStreamingFailed") == 2)
        assert receiver.events[-1]["data"]["mediaStreamingUpdate"]["mediaStreamingStatusDetails"] == UNSUCCESSFUL
        legs.opened.clear()
        await client.get_call_connection(call_id).start_media_streaming()
        await asyncio.wait_for(legs.opened.wait(), 5)
        assert len(acs.media.offers) == 3
        assert acs.calls[call_id].media_state == "active"
        await client.get_call_connection(call_id).hang_up(is_for_everyone=True)
        await receiver.event("CallDisconnected")
    await acs.idle()
    assert receiver.types().count("MediaStreamingFailed") == 2  # hanging up is no failure
    assert acs.calls[call_id].over.is_set()


async def test_a_connector_failing_after_acs_ended_the_leg_is_not_a_failure(
        legs_acs: tuple[LocalAcs, Legs], receiver: Receiver) -> None:  # noqa: F811
    acs, legs = legs_acs
    legs.after_end = MediaLost(INTERRUPTED, "1006")
    async with CallAutomationClient(acs.endpoint, AzureKeyCredential(KEY)) as client:
        call_id, _ = await answer(client, receiver)
        await asyncio.wait_for(legs.opened.wait(), 5)
        acs.caller_hangs_up(call_id)
        await receiver.event("CallDisconnected")
        await until(lambda: legs.closed == [call_id])
    await acs.idle()
    assert "MediaStreamingFailed" not in receiver.types()
    assert acs.media.offers[0].lost is None


class MediaHostStandIn:
    """The app's end of the media socket at the transportUrl: records what ACS streams (parsed JSON)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.sockets: list[ServerConnection] = []
        self.url = ""
        self._changed = asyncio.Condition()

    async def handle(self, ws: ServerConnection) -> None:
        self.sockets.append(ws)
        async for message in ws:
            async with self._changed:
                self.messages.append(json.loads(message))
                self._changed.notify_all()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["kind"] == kind]

    async def until(self, check: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(check)


class Caller:
    """A media connector with the local ACS's caller on each leg, streaming as the call asked."""

    def __init__(self) -> None:
        self.clients: list[AcsMediaClient] = []
        self.connected = asyncio.Event()

    async def __call__(self, offer: MediaOffer) -> None:
        media = AcsMediaClient.for_offer(offer)
        self.clients.append(media)
        await media.connect()
        self.connected.set()
        await offer.ended.wait()
        await media.disconnect()


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[LocalAcs, Caller, MediaHostStandIn]]:
    host, caller = MediaHostStandIn(), Caller()
    async with serve(host.handle, "127.0.0.1", 0) as server, \
            LocalAcs(KEY, auto_callbacks=True, media=caller) as acs:
        host.url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/api/v1/media/stream"
        yield acs, caller, host


async def answer_with(acs: LocalAcs, receiver: Receiver, **options: Any) -> str:  # noqa: F811
    """Answer a fresh call with these MediaStreamingOptions keywords (on top of a started mixed-audio stream)."""
    event = incoming_call_event(OUR_NUMBER, CALLER)
    streaming = MediaStreamingOptions(**{
        "transport_type": StreamingTransportType.WEBSOCKET, "content_type": MediaStreamingContentType.AUDIO,
        "audio_channel_type": MediaStreamingAudioChannelType.MIXED, "start_media_streaming": True, **options})
    async with CallAutomationClient(acs.endpoint, AzureKeyCredential(KEY)) as client:
        props = await client.answer_call(event["data"]["incomingCallContext"], receiver.url,
                                         media_streaming=streaming)
    assert props.call_connection_id is not None
    return props.call_connection_id


@pytest.mark.parametrize("asked", [True, None])
async def test_dtmf_data_is_streamed_only_when_the_call_asked_for_it(
        stand_in: tuple[LocalAcs, Caller, MediaHostStandIn], receiver: Receiver, asked: bool | None) -> None:  # noqa: F811
    acs, caller, host = stand_in
    await answer_with(acs, receiver, transport_url=host.url, enable_dtmf_tones=asked)
    await asyncio.wait_for(caller.connected.wait(), 5)
    [media] = caller.clients
    if asked:
        await media.send_dtmf("12#")
        await host.until(lambda: len(host.of("DtmfData")) == 3)
        assert [m["dtmfData"] for m in host.of("DtmfData")] == [{"data": "1"}, {"data": "2"}, {"data": "#"}]
    else:  # ACS streams no DtmfData unless enableDtmfTones: the test caller is told, not left waiting
        with pytest.raises(DtmfNotStreamed, match="enableDtmfTones"):
            await media.send_dtmf("#")
        await host.until(lambda: len(host.of("AudioData")) >= 3)  # the socket is live, and carries no key
        assert host.of("DtmfData") == []


@pytest.mark.parametrize(("audio_format", "rate"), [("pcm24KMono", 24000), ("pcm16KMono", 16000), (None, 16000)])
async def test_audio_metadata_and_frames_follow_the_audio_format(
        stand_in: tuple[LocalAcs, Caller, MediaHostStandIn], receiver: Receiver,  # noqa: F811
        audio_format: str | None, rate: int) -> None:
    acs, _, host = stand_in
    call_id = await answer_with(acs, receiver, transport_url=host.url, audio_format=audio_format)
    await host.until(lambda: len(host.of("AudioData")) >= 2)
    metadata = host.messages[0]
    assert metadata == {"kind": "AudioMetadata", "audioMetadata": {
        "subscriptionId": acs.calls[call_id].subscription_id, "encoding": "PCM", "sampleRate": rate,
        "channels": 1, "length": rate // 50 * 2}}  # 20 ms of 16-bit mono: 640 bytes at 16 kHz, as documented
    frame = host.of("AudioData")[0]["audioData"]
    assert len(base64.b64decode(frame["data"])) == rate // 50 * 2
    assert frame["participantRawID"] == f"4:{CALLER}"


@pytest.mark.parametrize("bidirectional", [True, None])
async def test_the_apps_audio_is_played_only_when_the_stream_is_bidirectional(
        stand_in: tuple[LocalAcs, Caller, MediaHostStandIn], receiver: Receiver,  # noqa: F811
        bidirectional: bool | None) -> None:
    acs, caller, host = stand_in
    await answer_with(acs, receiver, transport_url=host.url, enable_bidirectional=bidirectional,
                      audio_format="pcm24KMono")
    await asyncio.wait_for(caller.connected.wait(), 5)
    await host.until(lambda: bool(host.sockets))
    [media] = caller.clients
    await host.sockets[0].send(audio_message(base64.b64encode(bytes(960)).decode()))
    if bidirectional:
        await media.agent_speaking(after=0.0, timeout=5)
        assert media.unplayed == 0
    else:
        await until(lambda: media.unplayed == 1)
        assert media.agent.frames == []


async def test_streaming_without_a_transport_url_fails_with_stream_url_missing(
        stand_in: tuple[LocalAcs, Caller, MediaHostStandIn], receiver: Receiver) -> None:  # noqa: F811
    acs, caller, _ = stand_in
    call_id = await answer_with(acs, receiver, transport_url=None)
    failed = (await receiver.event("MediaStreamingFailed"))["data"]
    assert failed["mediaStreamingUpdate"]["mediaStreamingStatusDetails"] == "streamUrlMissing"
    await acs.idle()
    assert receiver.types() == ["CallConnected", "MediaStreamingFailed"]
    assert (acs.media.offers, caller.clients, acs.calls[call_id].media_state) == ([], [], "inactive")
