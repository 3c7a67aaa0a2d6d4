"""The control plane's notices reach the call they name on whichever media host carries it: a transfer the
orchestration could not make becomes the same `TransferStatusReceived` an AudioCodes gateway would send."""

from __future__ import annotations

import asyncio

from local_stack.callers.acs_client import AcsClient
from media_host.channel import CallChannel, CallInfo
from media_host.events import CallerHungUp, TransferStatusReceived
from media_host.pipelines.base import Pipeline
from media_host.transports.acs import AcsAdapter
from switchboard.session_models import CallEvent
from tests.support.media_harness import running_host, seed_call


class Recorder:
    """A pipeline that keeps the inbound events it sees."""

    inbound_rate: int | None = None
    outbound_rate: int | None = None

    def __init__(self) -> None:
        self.events: list[object] = []
        self.seen = asyncio.Event()

    async def run(self, call: CallChannel) -> None:
        while True:
            item = await call.receive()
            if isinstance(item, TransferStatusReceived):
                self.events.append(item)
                self.seen.set()
            if isinstance(item, CallerHungUp):
                return


async def test_a_failed_transfer_notice_reaches_the_call(redis_url: str) -> None:
    recorder = Recorder()

    def pipelines(_info: CallInfo) -> Pipeline:
        return recorder

    async with running_host(redis_url, pipelines=pipelines, adapters=[AcsAdapter]) as host:
        call_id, token = await seed_call(host)
        other_id, _ = await seed_call(host)
        assert host.port is not None
        async with AcsClient(host.port, token):
            await asyncio.wait_for(host.notices.ready.wait(), 5)
            while call_id not in host.notices.calls:
                await asyncio.sleep(0.01)
            await host.store.notify(other_id, CallEvent(kind="transfer_failed"))  # not this host's call
            await host.store.notify(call_id, CallEvent(kind="handoff_denied", data={"to_agent": "cards"}))
            await host.store.notify(call_id, CallEvent(kind="transfer_failed", data={"reason": "busy"}))
            await asyncio.wait_for(recorder.seen.wait(), 5)
        assert recorder.events == [TransferStatusReceived("failed", "busy")]
        assert [e.kind for e in await host.store.events(call_id)] == ["handoff_denied", "transfer_failed"]
