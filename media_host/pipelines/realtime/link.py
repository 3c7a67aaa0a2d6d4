"""One call's Realtime connection: the socket, ordered sends, batched caller audio, liveness, and reconnects.

Sends never block the call: events go through a queue to a writer task, in order. Caller audio is
batched into `input_audio_buffer.append`s of ~100 ms (a partial batch goes out after 100 ms too), and
the arrival time of every 20 ms frame is kept, so the server's `audio_start_ms` / `audio_end_ms`
(positions in the audio appended on this socket) map back to when the caller actually spoke.

Liveness: a WebSocket ping goes out every `ping_every_s`. A pong overdue by `stall_after_s` means the
path went silent (`on_stalled`: the caller may hear a holding phrase); overdue by `dead_after_s`, the
socket is aborted and the link reconnects, rather than waiting for TCP to notice, minutes later.

When the socket drops, the link reconnects with backoff (0.2, 0.5, 1, 2, 4 s...; within `deadline_s`, if
given: a connect that hangs must not keep the caller waiting for minutes), sends the events
`restore` returns (the session configuration, the conversation so far) before anything else, and
carries on. Whatever was queued for the dead socket is dropped: the restored session supersedes it.
But no caller turn is lost with it: the caller's audio the server may not have turned into a transcript
yet (from the start of speech it has not transcribed, `hold()`, and whatever it has not confirmed
having processed, by a pong or an event's audio position) is kept, with the audio that arrives while
no socket is up, and appended again on the new socket first. Its server VAD hears those words again,
transcribes and answers them (`replayed()` tells a replayed turn from speech happening now). At most
`RETAIN_S` of audio is kept.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from media_host.pipelines.realtime.client import Connector, RealtimeDisconnected, RealtimeSocket
from media_host.pipelines.realtime.protocol import Dialect

log = logging.getLogger(__name__)

BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 4.0)  # before each reconnect attempt; the last repeats
FRAME_MS = 20
FRAME_BYTES = 960  # 20 ms of PCM16 at 24 kHz
BATCH_BYTES = 4800  # 100 ms of PCM16 at 24 kHz
FLUSH_AFTER_S = 0.1  # a partial batch waits no longer than this
ARRIVALS = 1024  # frames of arrival times kept (20 s)
PING_EVERY_S = 1.0
STALL_AFTER_S = 1.0  # a pong this late: the path is silent (a holding phrase may be played)
DEAD_AFTER_S = 5.0  # a pong this late: the socket is given up and the link reconnects
RETAIN_S = 15.0  # caller audio kept for a replay after a drop, at most
PREROLL_FRAMES = 15  # 300 ms kept before the speech a replay starts from (the server VAD's padding)

Event = dict[str, Any]


class RealtimeLink:
    def __init__(self, connector: Connector, *, attempts: int, on_event: Callable[[Event], None],
                 restore: Callable[[bool], Awaitable[list[Event]]], on_lost: Callable[[], Awaitable[None]],
                 on_restored: Callable[[int], Awaitable[None]], on_failed: Callable[[], Awaitable[None]],
                 backoff: Sequence[float] = BACKOFF_S, on_stalled: Callable[[bool], None] | None = None,
                 ping_every_s: float = PING_EVERY_S, stall_after_s: float = STALL_AFTER_S,
                 dead_after_s: float = DEAD_AFTER_S, deadline_s: float | None = None) -> None:
        self.connector = connector
        self.attempts = attempts
        self.deadline_s = deadline_s or None  # give up (re)connecting this long after starting to (None: never)
        self.backoff = tuple(backoff) or (1.0,)
        self.on_event, self.restore, self.on_lost = on_event, restore, on_lost
        self.on_restored, self.on_failed = on_restored, on_failed
        self.on_stalled = on_stalled  # (True) the path went silent, (False) it answers again
        self.ping_every_s, self.stall_after_s, self.dead_after_s = ping_every_s, stall_after_s, dead_after_s
        self.socket: RealtimeSocket | None = None
        self.connected = False
        self.stalled = False
        self.closing = False
        self.generation = 0  # bumped per socket: work started for an older one must not send to this one
        self.frames_sent = 0  # caller frames appended on this socket
        self.frames_replayed = 0  # of them, the first ones: kept audio appended again after a reconnect
        self.frames_dropped = 0  # caller frames lost: kept audio beyond RETAIN_S
        self._arrivals = [0.0] * ARRIVALS
        self._audio = bytearray()
        self._flush: asyncio.TimerHandle | None = None
        self._outbox: asyncio.Queue[tuple[Event, int]] = asyncio.Queue()  # events, and the caller frames in each
        self._frames_written = 0  # caller frames written to this socket
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        # Caller audio that a new socket would need: frames [_kept_at, frames_sent) of this socket (and after
        # a drop, what arrived while no socket was up). References to the frames the call already has: no
        # copy, nothing allocated per frame. Trimmed to what is still needed as it grows.
        self._kept: deque[bytes] = deque()
        self._kept_at = 0
        self._kept_times: list[float] = []  # arrival times of the kept frames not in _arrivals (while down)
        self._hold_from: int | None = None  # frame where untranscribed caller speech starts
        self._confirmed = 0  # frames the server is known to have received (sent before an answered ping)
        self._max_kept = int(RETAIN_S * 1000 / FRAME_MS)  # frames

    # --- lifecycle -----------------------------------------------------------------------------
    async def open(self, retries: int | None = None, deadline_s: float | None = None) -> bool:
        """Connect (with `retries`, else the link's attempts, within `deadline_s`, else the link's deadline).
        False if the service could not be reached at all."""
        attempt = await self._establish(reconnect=False, attempts=retries, deadline_s=deadline_s)
        if attempt is None:
            return False
        self._writer = asyncio.create_task(self._write(), name="realtime-writer")
        self._reader = asyncio.create_task(self._read(), name="realtime-reader")
        self._watcher = asyncio.create_task(self._watch(), name="realtime-liveness")
        return True

    async def close(self) -> None:
        self.closing = True
        self.connected = False
        if self._flush is not None:
            self._flush.cancel()
        for task in (self._reader, self._writer, self._watcher):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.socket is not None:
            if self.stalled:
                self.socket.abort()  # a closing handshake on a silent path would wait for its timeout
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self.socket.close()

    async def _establish(self, *, reconnect: bool, attempts: int | None = None,
                         deadline_s: float | None = None) -> int | None:
        """Open a socket and restore the conversation on it; the attempt that succeeded (1-based)."""
        retries = self.attempts if attempts is None else attempts
        delays = [self.backoff[min(i, len(self.backoff) - 1)] for i in range(retries)]
        if not reconnect:
            delays.insert(0, 0.0)
        loop = asyncio.get_running_loop()
        limits = [limit for limit in (deadline_s, self.deadline_s) if limit]
        deadline_s = min(limits) if limits else None
        deadline = None if deadline_s is None else loop.time() + deadline_s
        for attempt, delay in enumerate(delays, start=1):
            if deadline is not None and loop.time() + delay >= deadline:
                log.warning("realtime: no attempt left before the deadline", extra={"after_s": deadline_s})
                return None
            if delay:
                await asyncio.sleep(delay)
            if self.closing:
                return None
            try:
                async with asyncio.timeout_at(deadline):  # a connect that hangs (a black hole) ends there
                    socket = await self.connector()
            except RealtimeDisconnected as exc:
                log.warning("realtime: connect failed", extra={"attempt": attempt, "reason": str(exc)[:200]})
                continue
            except TimeoutError:
                log.warning("realtime: connect still pending at the deadline", extra={"attempt": attempt,
                                                                                      "after_s": deadline_s})
                return None
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
        replay = self._replay_audio()
        self.frames_sent = self.frames_replayed = self._kept_at = self._confirmed = self._frames_written = 0
        self._hold_from = None
        self.socket = socket
        self.generation += 1
        self.connected = True
        self._set_stalled(False)
        if replay:  # first on the new socket (after the restore): the caller's words the server never had
            audio, times = replay
            for pcm, received_at in zip(audio, times, strict=True):
                self.append_audio(pcm, received_at)
            self.frames_replayed = len(times)
            self.flush_audio()
            log.info("realtime: caller audio replayed", extra={"ms": len(times) * FRAME_MS})

    async def _read(self) -> None:
        while not self.closing:
            socket = self.socket
            assert socket is not None
            try:
                event = await socket.recv()
            except RealtimeDisconnected:
                if self._closed():
                    return
                self._trim()  # as the old socket left it
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
            event, frames = await self._outbox.get()
            socket, generation = self.socket, self.generation
            if socket is None or not self.connected:
                continue
            with contextlib.suppress(RealtimeDisconnected):  # the reader sees the close and reconnects
                await socket.send(event)
                if generation == self.generation:
                    self._frames_written += frames

    # --- liveness ------------------------------------------------------------------------------
    async def _watch(self) -> None:
        while not self.closing:
            await asyncio.sleep(self.ping_every_s)
            socket, generation, sent = self.socket, self.generation, self._frames_written
            if socket is None or not self.connected:
                continue
            pong = asyncio.ensure_future(_pong(socket))
            try:
                done, _ = await asyncio.wait({pong}, timeout=self.stall_after_s)
                if not done and generation == self.generation:
                    log.warning("realtime: the socket went silent", extra={"after_s": self.stall_after_s})
                    self._set_stalled(True)
                    done, _ = await asyncio.wait({pong}, timeout=self.dead_after_s - self.stall_after_s)
                    if not done and generation == self.generation and self.connected and not self.closing:
                        log.warning("realtime: no pong; dropping the socket", extra={"after_s": self.dead_after_s})
                        socket.abort()
                        continue
                if done and pong.result() and generation == self.generation:
                    self._confirmed = max(self._confirmed, sent)
                    self._trim()
                    self._set_stalled(False)
            finally:
                pong.cancel()

    def _set_stalled(self, stalled: bool) -> None:
        if stalled != self.stalled:
            self.stalled = stalled
            if self.on_stalled is not None:
                self.on_stalled(stalled)

    @property
    def healthy(self) -> bool:
        return self.connected and not self.stalled

    # --- sending -------------------------------------------------------------------------------
    def send(self, event: Event) -> None:
        """Queue a client event (dropped while no socket is up: a restore follows a reconnect)."""
        if self.connected and not self.closing:
            if event.get("type") != "input_audio_buffer.append":
                self.flush_audio()  # the audio before it goes first
            self._outbox.put_nowait((event, 0))

    def append_audio(self, pcm: bytes, received_at: float) -> None:
        """One caller frame (20 ms, 24 kHz)."""
        self._keep(pcm)
        if not self.connected:
            self._kept_times.append(received_at)
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
            self._outbox.put_nowait((Dialect.append(base64.b64encode(self._audio).decode("ascii")),
                                     len(self._audio) // FRAME_BYTES))
        self._audio.clear()

    def arrival(self, at_ms: float | None) -> float | None:
        """When the caller frame at input position `at_ms` (on this socket) arrived; None if unknown."""
        if at_ms is None or self.frames_sent == 0:
            return None
        index = min(max(0, math.ceil(at_ms / FRAME_MS) - 1), self.frames_sent - 1)
        if self.frames_sent - index > ARRIVALS:
            index = self.frames_sent - 1
        return self._arrivals[index % ARRIVALS]

    # --- the caller's audio a new socket would need ---------------------------------------------
    def hold(self, at_ms: float | None) -> None:
        """The server heard speech start at `at_ms`: keep it until `release()` (its transcript is in)."""
        if self._hold_from is None and self.connected:
            self._hold_from = max(0, int((at_ms or 0) // FRAME_MS) - PREROLL_FRAMES)

    def heard_until(self, at_ms: float | None) -> None:
        """The server has processed the audio up to `at_ms` (it reported a position there)."""
        if at_ms is not None and self.connected:
            self._confirmed = max(self._confirmed, min(int(at_ms // FRAME_MS), self.frames_sent))
            self._trim()

    def release(self) -> None:
        """Every caller turn heard so far has its transcript: no need to keep it for a new socket."""
        self._hold_from = None
        self._trim()

    def replayed(self, at_ms: float | None) -> bool:
        """Whether input position `at_ms` on this socket is in the audio replayed after a reconnect."""
        return at_ms is not None and at_ms < self.frames_replayed * FRAME_MS

    def unconfirmed_audio(self) -> bytes:
        """The caller audio sent that the server has not confirmed hearing (what an outage may have swallowed)."""
        start = max(0, self._confirmed - self._kept_at) if self.connected else 0
        return b"".join(itertools.islice(self._kept, start, None))

    def unheard_audio(self) -> bytes:
        """Once the link has given up: every caller frame kept (what no socket turned into a transcript, and
        all that arrived since the drop), for whoever takes the call over."""
        return b"".join(self._kept)

    @property
    def holding_speech(self) -> bool:
        """Caller speech the server has not transcribed is kept (a reconnect would replay it)."""
        return self._hold_from is not None

    def _keep(self, pcm: bytes) -> None:
        # Per frame: one append. Trimming happens when the server confirms audio (a pong, an event).
        self._kept.append(pcm)
        if len(self._kept) > self._max_kept:  # a long outage: the oldest goes
            self._kept.popleft()
            self._kept_at += 1
            self.frames_dropped += 1

    def _trim(self) -> None:
        """Drop the kept audio no new socket would need."""
        needed = min(self._hold_from if self._hold_from is not None else self.frames_sent, self._confirmed)
        while self._kept_at < needed and self._kept:
            self._kept.popleft()
            self._kept_at += 1

    def _replay_audio(self) -> tuple[list[bytes], list[float]] | None:
        """The kept frames and each one's arrival time; the buffer is emptied."""
        frames = len(self._kept)
        if frames == 0:
            self._kept_times.clear()
            return None
        on_socket = frames - min(len(self._kept_times), frames)
        times = [self._arrivals[(self._kept_at + i) % ARRIVALS] for i in range(on_socket)]
        times += self._kept_times[-(frames - on_socket):] if frames > on_socket else []
        audio = list(self._kept)
        self._kept.clear()
        self._kept_times.clear()
        return audio, times


async def _pong(socket: RealtimeSocket) -> bool:
    """True once the pong arrived; False if this socket cannot be pinged (or is closed)."""
    try:
        waiter = await socket.ping()
        if waiter is None:
            return False
        await waiter
    except (RealtimeDisconnected, Exception):  # closed meanwhile: the reader reconnects
        return False
    return True
