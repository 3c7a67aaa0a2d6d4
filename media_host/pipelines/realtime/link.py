"""One call's Realtime connection: the socket, ordered sends, batched caller audio, and reconnects.

Sends never block the call: events go through a queue to a writer task, in order. Caller audio is
batched into `input_audio_buffer.append`s of ~100 ms (a partial batch goes out after 100 ms too), and
the arrival time of every 20 ms frame is kept, so the server's `audio_start_ms` / `audio_end_ms`
(positions in the audio appended on this socket) map back to when the caller actually spoke.

When the socket drops, the link reconnects with backoff (0.2, 0.5, 1, 2, 4 s...), sends the events
`restore` returns (the session configuration, the conversation so far) before anything else, and
carries on. Whatever was queued for the dead socket is dropped: the restored session supersedes it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from media_host.pipelines.realtime.client import Connector, RealtimeDisconnected, RealtimeSocket
from media_host.pipelines.realtime.protocol import Dialect

log = logging.getLogger(__name__)

BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 4.0)  # before each reconnect attempt; the last repeats
FRAME_MS = 20
BATCH_BYTES = 4800  # 100 ms of PCM16 at 24 kHz
FLUSH_AFTER_S = 0.1  # a partial batch waits no longer than this
ARRIVALS = 1024  # frames of arrival times kept (20 s)

Event = dict[str, Any]


class RealtimeLink:
    def __init__(self, connector: Connector, *, attempts: int, on_event: Callable[[Event], None],
                 restore: Callable[[bool], Awaitable[list[Event]]], on_lost: Callable[[], Awaitable[None]],
                 on_restored: Callable[[int], Awaitable[None]], on_failed: Callable[[], Awaitable[None]],
                 backoff: Sequence[float] = BACKOFF_S) -> None:
        self.connector = connector
        self.attempts = attempts
        self.backoff = tuple(backoff) or (1.0,)
        self.on_event, self.restore, self.on_lost = on_event, restore, on_lost
        self.on_restored, self.on_failed = on_restored, on_failed
        self.socket: RealtimeSocket | None = None
        self.connected = False
        self.closing = False
        self.generation = 0  # bumped per socket: work started for an older one must not send to this one
        self.frames_sent = 0  # caller frames appended on this socket
        self.frames_dropped = 0  # caller frames that arrived while no socket was up
        self._arrivals = [0.0] * ARRIVALS
        self._audio = bytearray()
        self._flush: asyncio.TimerHandle | None = None
        self._outbox: asyncio.Queue[Event] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> bool:
        """Connect (with retries). False if the service could not be reached at all."""
        attempt = await self._establish(reconnect=False)
        if attempt is None:
            return False
        self._writer = asyncio.create_task(self._write(), name="realtime-writer")
        self._reader = asyncio.create_task(self._read(), name="realtime-reader")
        return True

    async def close(self) -> None:
        self.closing = True
        self.connected = False
        if self._flush is not None:
            self._flush.cancel()
        for task in (self._reader, self._writer):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.socket is not None:
            await self.socket.close()

    async def _establish(self, *, reconnect: bool) -> int | None:
        """Open a socket and restore the conversation on it; the attempt that succeeded (1-based)."""
        delays = [self.backoff[min(i, len(self.backoff) - 1)] for i in range(self.attempts)]
        if not reconnect:
            delays.insert(0, 0.0)
        for attempt, delay in enumerate(delays, start=1):
            if delay:
                await asyncio.sleep(delay)
            if self.closing:
                return None
            try:
                socket = await self.connector()
            except RealtimeDisconnected as exc:
                log.warning("realtime: connect failed", extra={"attempt": attempt, "reason": str(exc)[:200]})
                continue
            try:
                for event in await self.restore(reconnect):
                    await socket.send(event)
            except RealtimeDisconnected:
                await socket.close()
                continue
            self._use(socket)
            return attempt
        return None

    def _use(self, socket: RealtimeSocket) -> None:
        while not self._outbox.empty():  # meant for the old socket: the restored session supersedes it
            self._outbox.get_nowait()
        self._audio.clear()
        self.frames_sent = 0
        self.socket = socket
        self.generation += 1
        self.connected = True

    async def _read(self) -> None:
        while not self.closing:
            socket = self.socket
            assert socket is not None
            try:
                event = await socket.recv()
            except RealtimeDisconnected:
                if self._closed():
                    return
                self.connected = False
                await socket.close()
                await self.on_lost()
                attempt = await self._establish(reconnect=True)
                if attempt is None:
                    if not self._closed():
                        await self.on_failed()
                    return
                await self.on_restored(attempt)
                continue
            try:
                self.on_event(event)
            except Exception:  # one bad event must not end the call
                log.exception("realtime: handling %s failed", str(event.get("type"))[:60])

    def _closed(self) -> bool:  # a method: the flag changes while a task awaits
        return self.closing

    async def _write(self) -> None:
        while True:
            event = await self._outbox.get()
            socket = self.socket
            if socket is None or not self.connected:
                continue
            with contextlib.suppress(RealtimeDisconnected):  # the reader sees the close and reconnects
                await socket.send(event)

    # --- sending -------------------------------------------------------------------------------
    def send(self, event: Event) -> None:
        """Queue a client event (dropped while no socket is up: a restore follows a reconnect)."""
        if self.connected and not self.closing:
            if event.get("type") != "input_audio_buffer.append":
                self.flush_audio()  # the audio before it goes first
            self._outbox.put_nowait(event)

    def append_audio(self, pcm: bytes, received_at: float) -> None:
        """One caller frame (20 ms, 24 kHz)."""
        if not self.connected:
            self.frames_dropped += 1
            return
        self._arrivals[self.frames_sent % ARRIVALS] = received_at
        self.frames_sent += 1
        self._audio += pcm
        if len(self._audio) >= BATCH_BYTES:
            self.flush_audio()
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(FLUSH_AFTER_S, self.flush_audio)

    def flush_audio(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._audio and self.connected:
            self._outbox.put_nowait(Dialect.append(base64.b64encode(self._audio).decode("ascii")))
        self._audio.clear()

    def arrival(self, at_ms: float | None) -> float | None:
        """When the caller frame at input position `at_ms` (on this socket) arrived; None if unknown."""
        if at_ms is None or self.frames_sent == 0:
            return None
        index = min(max(0, math.ceil(at_ms / FRAME_MS) - 1), self.frames_sent - 1)
        if self.frames_sent - index > ARRIVALS:
            index = self.frames_sent - 1
        return self._arrivals[index % ARRIVALS]
