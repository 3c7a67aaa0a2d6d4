"""A caller on a live line, whatever the transport: speech goes out in 20 ms frames at real-time pace
(CallerSpeech, silence between the lines), agent audio is kept with the time each frame arrived, and the
caller can wait for the agent to start or finish talking.

A caller given the call's `over` event outlives its socket: after a drop the next socket carries the same
caller on, both recordings continuing. Without it, the socket closing is the end of the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Self

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from local_stack.callers.socket import HostSocket
from local_stack.callers.speech import CallerSpeech, Track


class LiveCaller(HostSocket):
    """Subclasses put a frame on their wire (`_frame_message`), press keys (`send_dtmf`) and feed what arrives
    to `_heard` (agent audio) and `stops` (the app told the caller's side to stop playing)."""

    def __init__(self, rate: int, over: asyncio.Event | None = None) -> None:
        super().__init__()
        self.rate = rate
        self.frame_bytes = rate // 50 * 2
        self.speech = CallerSpeech(rate)
        self.caller = self.speech.track
        self.agent = Track()
        self.stops: list[float] = []  # when the app stopped the agent's audio (barge-ins)
        self.closed = asyncio.Event()  # the current socket closed (cleared by the next one)
        self.over = over or asyncio.Event()  # the call is over: no more agent audio will come
        self.reconnects = over is not None
        self.sockets = 0  # how many sockets this caller has talked over
        self.connected_at = 0.0  # when the current socket opened (monotonic)
        self._sender: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        raise NotImplementedError

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()
        self.over.set()

    # --- the line -----------------------------------------------------------------------------------
    async def _connect(self, url: str, headers: Mapping[str, str]) -> ClientConnection:
        """Open the next socket (the previous one closed first)."""
        await self.disconnect()
        ws = await self._open(url, headers)
        self.connected_at = time.monotonic()
        self.closed.clear()
        self.sockets += 1
        return ws

    def _start_speaking(self, ws: ClientConnection) -> None:
        async def send(frame: bytes, silent: bool) -> None:
            await ws.send(self._frame_message(frame, silent))

        async def stream() -> None:
            with contextlib.suppress(ConnectionClosed):
                await self.speech.stream(send)

        self._sender = asyncio.create_task(stream())

    def _frame_message(self, frame: bytes, silent: bool) -> str:
        raise NotImplementedError

    async def _stop_speaking(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
            self._sender = None

    async def disconnect(self) -> None:
        """Close the current socket, if any (the caller stays on the line when it `reconnects`)."""
        await self._stop_speaking()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    def _on_close(self) -> None:
        self.speech.cut()  # what the caller was still saying went down the dead line
        self.closed.set()
        if not self.reconnects:
            self.over.set()

    # --- caller -> app ------------------------------------------------------------------------------
    def say(self, pcm: bytes) -> float:
        """Queue the caller's speech (PCM16 at `rate`); returns how long it lasts, in seconds."""
        if self.closed.is_set():
            return self.speech.seconds(pcm)  # said into a dead line: nobody hears it
        return self.speech.say(pcm)

    async def spoken(self) -> None:
        """Until everything queued with `say` has gone out."""
        await self.speech.spoken()

    @property
    def speaking(self) -> bool:
        return self.speech.speaking

    async def send_dtmf(self, digits: str) -> None:
        raise NotImplementedError

    # --- app -> caller ------------------------------------------------------------------------------
    def _heard(self, pcm: bytes) -> None:
        self.agent.frames.append((time.monotonic(), pcm))

    def agent_quiet_for(self) -> float:
        """Seconds since the agent's last audio frame arrived (infinite if it never spoke)."""
        if not self.agent.frames:
            return float("inf")
        return time.monotonic() - self.agent.frames[-1][0]

    async def agent_finished(self, quiet_s: float = 0.8, timeout: float = 30.0, since: float = 0.0) -> None:
        """Until the agent has spoken (after `since`, a monotonic time) and then been quiet for `quiet_s`,
        or the call is over. After a drop the agent must be heard on the new socket first: someone whose
        line went silent waits for the other end to come back before talking again."""
        async with asyncio.timeout(timeout):
            while not self.over.is_set():
                heard = self.agent.frames[-1][0] if self.agent.frames else 0.0
                spoke = heard > since and heard > self.connected_at and not self.closed.is_set()
                if spoke and self.agent_quiet_for() >= quiet_s:
                    return
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), quiet_s / 4)

    async def agent_speaking(self, after: float, timeout: float = 30.0) -> None:
        """Until agent audio arrives that was received after `after` (a monotonic time). A caller that does not
        reconnect gives up (TimeoutError) once its socket closed; one that does leaves that to its owner."""
        async with asyncio.timeout(timeout):
            while not (self.agent.frames and self.agent.frames[-1][0] > after):
                if self.over.is_set() and not self.reconnects:
                    raise TimeoutError("the socket closed")  # no more audio will come
                self._changed.clear()
                await self._changed.wait()

    def agent_audio_since(self, since: float) -> bytes:
        return self.agent_audio_between(since, float("inf"))

    def agent_audio_between(self, since: float, until: float) -> bytes:
        """Agent audio received in [since, until) (monotonic times)."""
        return b"".join(pcm for t, pcm in self.agent.frames if since <= t < until)
