"""A simulated caller's voice: speech queued line by line and streamed in 20 ms frames at real-time pace,
silence between the lines, as a phone line carries it. Each client wraps the frames in its own wire format.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

FRAME_S = 0.02


@dataclass
class Track:
    """Audio with the time (monotonic) each 20 ms frame was sent or received."""

    frames: list[tuple[float, bytes]] = field(default_factory=list)


class Pacer:
    """Frame k is due at start + k * frame_s: an absolute schedule, so a late frame never delays the rest."""

    def __init__(self, frame_s: float = FRAME_S) -> None:
        self.frame_s = frame_s
        self.start = time.monotonic()
        self.ticks = 0  # frames sent so far

    def lateness(self) -> float:
        """How late (s) the frame due now is; negative when early."""
        return time.monotonic() - (self.start + self.ticks * self.frame_s)

    async def next(self) -> None:
        """Count a frame as sent and sleep until the next one is due."""
        self.ticks += 1
        await asyncio.sleep(max(0.0, self.start + self.ticks * self.frame_s - time.monotonic()))


async def send_paced(pcm: bytes, size: int, send: Callable[[bytes], Awaitable[None]], frame_s: float = FRAME_S) -> None:
    """Send `pcm` in chunks of `size` bytes, one every `frame_s`: at real-time pace, as a microphone would."""
    pacer = Pacer(frame_s)
    for at in range(0, len(pcm), size):
        await send(pcm[at:at + size])
        await pacer.next()


class CallerSpeech:
    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.frame_bytes = rate // 50 * 2
        self.track = Track()  # every frame sent, speech and silence
        self._pending: deque[bytes] = deque()
        self._silence = bytes(self.frame_bytes)  # one frame, allocated once per call
        self._drained = asyncio.Event()  # set when everything queued has been sent
        self._drained.set()

    def seconds(self, pcm: bytes) -> float:
        return (len(pcm) + -len(pcm) % self.frame_bytes) / (self.rate * 2)

    def say(self, pcm: bytes) -> float:
        """Queue speech (PCM16 at `rate`); returns how long it lasts, in seconds."""
        pcm += bytes(-len(pcm) % self.frame_bytes)
        self._pending.extend(pcm[i:i + self.frame_bytes] for i in range(0, len(pcm), self.frame_bytes))
        if self._pending:
            self._drained.clear()
        return len(pcm) / (self.rate * 2)

    async def spoken(self) -> None:
        """Until everything queued with `say` has gone out."""
        await self._drained.wait()

    @property
    def speaking(self) -> bool:
        return bool(self._pending)

    def cut(self) -> None:
        """The line died: what the caller was still saying went nowhere."""
        self._pending.clear()
        self._drained.set()

    async def stream(self, send: Callable[[bytes, bool], Awaitable[None]]) -> None:
        """Send a frame every 20 ms, forever: `send(frame, silent)` puts it on the wire (and raises when it is gone)."""
        pacer = Pacer()
        while True:
            silent = not self._pending
            frame = self._silence if silent else self._pending.popleft()
            if not self._pending:
                self._drained.set()
            await send(frame, silent)
            self.track.frames.append((time.monotonic(), frame))
            await pacer.next()
