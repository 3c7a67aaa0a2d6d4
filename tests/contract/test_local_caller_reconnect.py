"""The local stack's caller outlives its media socket: after a drop it waits on the silent line, says
nothing into it, and carries on over the next socket with both recordings continuing."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from local_stack.callers.acs_caller import AcsMediaClient
from tests.support.waits import first_done

FRAME = bytes(960)  # 20 ms at 24 kHz


class Host:
    """A media host stand-in: greets each socket with agent frames; `crash` drops the socket abnormally."""

    def __init__(self) -> None:
        self.sockets: list[list[dict[str, Any]]] = []  # what each socket received
        self.crash = asyncio.Event()
        self.url = ""

    async def handle(self, ws: ServerConnection) -> None:
        received: list[dict[str, Any]] = []
        self.sockets.append(received)
        for _ in range(5):
            await ws.send(json.dumps({"Kind": "AudioData", "AudioData": {"Data": base64.b64encode(FRAME).decode()}}))
        reader = asyncio.create_task(self._read(ws, received))
        await first_done(reader, self.crash.wait())
        if self.crash.is_set():
            self.crash.clear()
            ws.transport.abort()  # no close frame, as when the process is killed
        reader.cancel()

    @staticmethod
    async def _read(ws: ServerConnection, received: list[dict[str, Any]]) -> None:
        async for message in ws:
            received.append(json.loads(message))


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    stand_in = Host()
    async with serve(stand_in.handle, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        stand_in.url = f"ws://127.0.0.1:{port}/api/v1/media/stream"
        yield stand_in


async def test_the_caller_waits_through_a_drop_and_carries_on_over_the_next_socket(host: Host) -> None:
    over = asyncio.Event()
    media = AcsMediaClient(host.url, over=over)
    await media.connect()
    await media.agent_finished(quiet_s=0.1, timeout=5)  # the first socket's greeting
    host.crash.set()
    await asyncio.wait_for(media.closed.wait(), 5)
    assert media.close_code == 1006
    assert not over.is_set()  # the call goes on without a socket

    waiting = asyncio.create_task(media.agent_finished(quiet_s=0.1, timeout=10))
    media.say(bytes(FRAME * 10))  # said into the dead line: nobody will ever hear it
    await asyncio.sleep(0.3)
    assert not waiting.done()  # the agent has not been heard since the drop

    await media.connect()  # ACS restarted streaming: the same caller, a new socket
    await asyncio.wait_for(waiting, 5)  # the agent spoke on the new socket, then went quiet
    assert media.sockets == 2
    assert len(media.agent.frames) == 10  # one recording across both sockets
    await asyncio.sleep(0.1)
    second = host.sockets[1]
    assert second[0]["kind"] == "AudioMetadata"  # the new socket opens as ACS's does
    assert all(m["audioData"]["silent"] for m in second[1:] if m["kind"] == "AudioData")
    await media.disconnect()
    over.set()
    await media.agent_finished(timeout=1)  # the call is over: nothing left to wait for
