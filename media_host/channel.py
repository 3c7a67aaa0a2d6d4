"""One call as a pipeline sees it: inbound frames and events, outbound audio and control.

The transport adapter feeds wire-rate PCM in and sends wire-rate frames out; the channel converts to
and from the rates the pipeline asked for, with resamplers and framers allocated once per call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents import Catalog
from media_host.audio import Framer, StreamResampler, frame_bytes
from media_host.events import (
    AudioFrame,
    CallerHungUp,
    HangUp,
    Inbound,
    InboundEvent,
    Outbound,
    StopPlayback,
    Transfer,
)
from media_host.playout import PlayoutQueue
from media_host.session_writer import SessionWriter
from switchboard.session_models import CallState
from switchboard.session_store import SessionStore

log = logging.getLogger(__name__)


@dataclass
class CallInfo:
    """What is known about a call once its socket is bound to it."""

    call_id: str
    transport: str
    wire_rate: int
    correlation_id: str | None = None
    state: CallState | None = None  # the session as loaded from Redis at connect
    resumed: bool = False  # a socket that reconnects to a call already in progress
    parameters: dict[str, Any] = field(default_factory=dict)


class CallChannel:
    def __init__(self, info: CallInfo, *, store: SessionStore, catalog: Catalog, inbound_rate: int | None = None,
                 outbound_rate: int | None = None, inbound_limit_frames: int = 500, lead_ms: int = 60,
                 writer: SessionWriter | None = None) -> None:
        self.info = info
        self.store = store
        self.writer = writer or SessionWriter(store)  # the call's writes go through it (the host's, shared)
        self.catalog = catalog  # the agents version this call started with
        self.inbound_rate = inbound_rate or info.wire_rate
        self.outbound_rate = outbound_rate or info.wire_rate
        # "VR": one frame out per frame in, at a constant 10-30 ms. soxr's HQ engines release audio in
        # bursts (up to 115 ms held back), which would delay VAD inbound and starve the playout lead outbound.
        self._in_resampler = StreamResampler(info.wire_rate, self.inbound_rate, quality="VR")
        self._in_framer = Framer(frame_bytes(self.inbound_rate))
        self._out_resampler = StreamResampler(self.outbound_rate, info.wire_rate, quality="VR")
        self._out_framer = Framer(frame_bytes(info.wire_rate))
        self.playout = PlayoutQueue(lead_ms=lead_ms)
        self._inbound: deque[Inbound] = deque()
        self._inbound_audio = 0
        self._inbound_limit = inbound_limit_frames
        self._inbound_ready = asyncio.Event()
        self._control: deque[Outbound] = deque()
        self._control_ready = asyncio.Event()
        self._control_closed = False  # the call is ending: nothing more is queued
        self.last_inbound_at = time.monotonic()
        self.frames_in = 0
        self.dropped_frames = 0
        self.barge_ins = 0
        self.caller_hung_up = False
        self.agent_hung_up = False
        self.transfer_requested = False
        self.monitor: Callable[[str, Outbound], None] | None = None  # see media_host/monitor.py

    @property
    def call_id(self) -> str:
        return self.info.call_id

    # --- transport side ------------------------------------------------------------------------
    def feed_audio(self, pcm: bytes, received_at: float) -> None:
        """Wire-rate PCM16 from the caller (any length)."""
        self.last_inbound_at = received_at
        for frame in self._in_framer.push(self._in_resampler.process(pcm)):
            self._put(AudioFrame(frame, received_at))

    def feed_event(self, event: InboundEvent) -> None:
        if isinstance(event, CallerHungUp):
            self.caller_hung_up = True
        self.last_inbound_at = time.monotonic()
        self._inbound.append(event)
        self._inbound_ready.set()

    def touch(self) -> None:
        """Any message from the far end counts as life (for the idle timeout)."""
        self.last_inbound_at = time.monotonic()

    def _put(self, frame: AudioFrame) -> None:
        self.frames_in += 1
        if self._inbound_audio >= self._inbound_limit:
            # The pipeline has fallen 10 s behind: drop the oldest audio, never a control event.
            for i, item in enumerate(self._inbound):
                if isinstance(item, AudioFrame):
                    del self._inbound[i]
                    self._inbound_audio -= 1
                    self.dropped_frames += 1
                    break
        self._inbound.append(frame)
        self._inbound_audio += 1
        self._inbound_ready.set()

    async def next_control(self) -> Outbound | None:
        """The next event for the transport, in order; None once the queue is closed and empty."""
        while not self._control:
            if self._control_closed:
                return None
            self._control_ready.clear()
            await self._control_ready.wait()
        return self._control.popleft()

    def close_control(self) -> None:
        """The call is ending: nothing more is queued; the sender finishes what is (see runner.py)."""
        self._control_closed = True
        self._control_ready.set()

    @property
    def queued_control(self) -> tuple[Outbound, ...]:
        """Queued for the transport and not taken yet."""
        return tuple(self._control)

    # --- pipeline side -------------------------------------------------------------------------
    async def receive(self) -> Inbound:
        while not self._inbound:
            self._inbound_ready.clear()
            await self._inbound_ready.wait()
        item = self._inbound.popleft()
        if isinstance(item, AudioFrame):
            self._inbound_audio -= 1
        return item

    def start_utterance(self) -> int:
        return self.playout.start_utterance()

    def play(self, pcm: bytes) -> None:
        """Queue agent audio (PCM16 at the pipeline's outbound rate, any length) for the caller."""
        self.playout.push_frames(self._out_framer.push(self._out_resampler.process(pcm)))

    def end_utterance(self) -> None:
        """The current utterance is complete: play its tail and mark its end."""
        tail = self._out_framer.push(self._out_resampler.flush())
        last = self._out_framer.flush(pad=True)
        self.playout.push_frames([*tail, last] if last else tail)
        self._out_resampler.reset()
        self.playout.end_utterance()

    def stop_playback(self) -> float:
        """Barge-in: drop queued audio, tell the transport to stop at once. Returns ms of it heard."""
        heard = self.playout.flush()
        self._out_framer.clear()
        self._out_resampler.reset()
        self.barge_ins += 1
        self.send(StopPlayback())
        return heard

    def send(self, event: Outbound) -> None:
        if self._control_closed:  # the call's tasks are ending: nobody would send it
            log.warning("%s after the end of the call: not sent", type(event).__name__)
            return
        if isinstance(event, HangUp):
            self.agent_hung_up = True
        elif isinstance(event, Transfer):
            self.transfer_requested = True
        if self.monitor is not None:
            self.monitor(self.info.call_id, event)
        self._control.append(event)
        self._control_ready.set()

    def outcome(self, default: str) -> str:
        """How the call ended, for metrics: what the parties did, else what the runner saw."""
        if self.transfer_requested:
            return "transfer_requested"
        if self.agent_hung_up:
            return "agent_hung_up"
        if self.caller_hung_up:
            return "caller_hung_up"
        return default

    @property
    def playing(self) -> bool:
        return self.playout.playing
