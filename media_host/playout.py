"""The outbound audio of one call: paced at real time, flushable at once, and aware of what was heard.

The far end (ACS, a gateway, a browser) plays what it receives from its own buffer. We keep that buffer
shallow but never empty: a frame is released when the far end holds less than `lead` of audio. That
absorbs network jitter, bounds how much audio a barge-in can leave playing there, and lets us compute
what the caller has actually heard: everything sent minus what the far end still holds.

`_ear` is the time at which the caller will have heard everything sent so far.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UtteranceEnd:
    """A marker in the queue: the audio of one agent utterance ends here (AudioCodes stops its stream)."""

    utterance: int


@dataclass(frozen=True, slots=True)
class _UtteranceStart:
    """A marker in the queue: the next frames are this utterance's (consumed here, never returned).

    A marker, not a counter reset, because an utterance is often queued behind the one still playing.
    """

    utterance: int


PlayoutItem = bytes | UtteranceEnd


class PlayoutQueue:
    def __init__(self, frame_ms: int = 20, lead_ms: int = 60, late_tolerance_ms: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._frame_s = frame_ms / 1000
        self._lead_s = lead_ms / 1000
        self._late_s = late_tolerance_ms / 1000
        self._clock = clock
        self._sleep = sleep
        # Frames (with the time they were queued) and utterance markers, in play order.
        self._items: deque[tuple[bytes, float] | UtteranceEnd | _UtteranceStart] = deque()
        self._frames_queued = 0
        self._wake = asyncio.Event()
        self._ear = 0.0
        self._utterance = 0  # the last utterance queued
        self._playing = 0  # the utterance whose frames are going out now
        self._utterance_sent_frames = 0
        self._generation = 0  # bumped by flush(), so a sender sleeping on the old schedule starts over
        self.frames_sent = 0
        self.frames_pushed = 0  # stream position of the next frame queued (flush drops the unsent ones)
        self.late_frames = 0
        self.first_sent_at: float | None = None  # when the current utterance's first frame went out
        self.first_sent: dict[int, float] = {}  # the same, by utterance number (the last few)

    # --- producer side (the pipeline, through the channel) ---------------------------------------
    def push_frames(self, frames: list[bytes]) -> None:
        if frames:
            now = self._clock()
            self._items.extend((frame, now) for frame in frames)
            self._frames_queued += len(frames)
            self.frames_pushed += len(frames)
            self._wake.set()

    def start_utterance(self) -> int:
        """Begin a new agent utterance (its frames follow); returns its number."""
        self._utterance += 1
        self._items.append(_UtteranceStart(self._utterance))
        self._wake.set()
        return self._utterance

    def end_utterance(self) -> None:
        self._items.append(UtteranceEnd(self._utterance))
        self._wake.set()

    def flush(self) -> float:
        """Drop everything not yet sent (barge-in). Returns the ms of the current utterance heard.

        The transport is expected to flush its own buffer as well (StopAudio), so the far end now
        holds nothing.
        """
        heard = self.heard_ms()
        self._items.clear()
        self._frames_queued = 0
        self.frames_pushed = self.frames_sent  # positions continue from what was really sent
        self._generation += 1
        self._ear = min(self._ear, self._clock())
        return heard

    # --- state ---------------------------------------------------------------------------------
    @property
    def queued_frames(self) -> int:
        return self._frames_queued

    @property
    def queued_ms(self) -> float:
        return self._frames_queued * self._frame_s * 1000

    @property
    def playing(self) -> bool:
        """Audio is queued here or still playing at the far end."""
        return self._frames_queued > 0 or self._ear > self._clock()

    def heard_position(self) -> float:
        """The stream position (in frames, comparable to `frames_pushed`) the caller has heard up to."""
        buffered = max(0.0, self._ear - self._clock()) / self._frame_s
        return max(0.0, self.frames_sent - buffered)

    async def wait_played(self) -> None:
        """Until everything queued has been sent and played out at the far end."""
        while self.playing:
            await self._sleep(max(self._ear - self._clock(), self._frame_s) if not self._frames_queued
                              else self._frame_s * max(1, self._frames_queued))

    def heard_ms(self) -> float:
        """How much of the current utterance the caller has heard by now."""
        buffered = max(0.0, self._ear - self._clock())
        return max(0.0, self._utterance_sent_frames * self._frame_s - buffered) * 1000

    # --- consumer side (the transport's sender task) ---------------------------------------------
    async def next_item(self) -> PlayoutItem:
        """The next frame (or marker), released when it is due.

        A frame is late when it is released more than the tolerance after the later of its due time
        and the time it was queued: a frame that arrives after the far end ran dry is not late (the
        source was slow), and neither is one queued together with the frame before it.
        """
        while True:
            if not self._items:
                self._wake.clear()
                await self._wake.wait()
                continue
            head = self._items[0]
            if isinstance(head, _UtteranceStart):
                self._items.popleft()
                self._playing = head.utterance
                self._utterance_sent_frames = 0
                self.first_sent_at = None
                continue
            if isinstance(head, UtteranceEnd):
                self._items.popleft()
                return head
            due = self._ear - self._lead_s
            now = self._clock()
            if due > now:
                generation = self._generation
                await self._sleep(due - now)
                if generation != self._generation or not self._items:
                    continue  # flushed while waiting: the schedule starts over
                now = self._clock()
            frame, queued_at = head
            self._items.popleft()
            if now - max(due, queued_at) > self._late_s:
                self.late_frames += 1
            self._frames_queued -= 1
            self._ear = max(self._ear, now) + self._frame_s
            if self._utterance_sent_frames == 0:
                self.first_sent_at = now
                self.first_sent[self._playing] = now
                if len(self.first_sent) > 16:
                    del self.first_sent[min(self.first_sent)]
            self._utterance_sent_frames += 1
            self.frames_sent += 1
            return frame
