"""The local ACS's media leg: the socket it opens when streaming starts, and closes when the call ends;
a socket that breaks while the call is up is reported to the app as MediaStreamingFailed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials import AzureKeyCredential

from local_stack.acs import INTERRUPTED, UNSUCCESSFUL, LocalAcs, MediaLost, MediaOffer
from tests.contract.test_local_acs import KEY, Receiver, answer, receiver  # noqa: F401 - receiver is a fixture


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
        broken = asyncio.create_task(self.broken.wait())
        await asyncio.wait({broken, asyncio.create_task(offer.ended.wait())}, return_when=asyncio.FIRST_COMPLETED)
        self.closed.append(offer.call.call_connection_id)
        if broken.done():
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
