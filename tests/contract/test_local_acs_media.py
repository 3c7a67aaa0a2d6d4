"""The local ACS's media leg: the socket it opens when streaming starts, and closes when the call ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials import AzureKeyCredential

from local_stack.acs import LocalAcs, MediaOffer
from tests.contract.test_local_acs import KEY, Receiver, answer, receiver  # noqa: F401 - receiver is a fixture


class Legs:
    """A media connector that records offers and holds each leg until ACS ends it."""

    def __init__(self) -> None:
        self.offers: list[MediaOffer] = []
        self.closed: list[str] = []
        self.opened = asyncio.Event()

    async def __call__(self, offer: MediaOffer) -> None:
        self.offers.append(offer)
        self.opened.set()
        await offer.ended.wait()
        self.closed.append(offer.call.call_connection_id)


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
