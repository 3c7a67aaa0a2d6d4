"""One call as a pipeline sees it: inbound frames and events, outbound audio and control.

The transport adapter feeds wire-rate PCM in and sends wire-rate frames out; the channel converts to
and from the rates the pipeline asked for, with resamplers and framers allocated once per call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
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
from media_host.playout import PlayoutItem, PlayoutQueue
from media_host.session_writer import SessionWriter
from switchboard.session_models import CallEvent, CallSession, CallState, HandoffRecord, Turn
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
    """One call between a transport adapter and a pipeline: the only object either side touches.

    Both sides: `info` (CallInfo), `call_id`.

    Transport side (media_host/transports/, runner.py, server.py), at the wire rate:
      feed_audio(pcm, received_at)  the caller's audio, any length
      feed_event(event)             DTMF, hang-up, transfer status, call start (media_host/events.py)
      touch()                       any message from the far end counts as life (idle timeout)
      next_audio()                  awaits the next outbound frame, or an UtteranceEnd marker, when due
      next_control(), close_control(), queued_control   outbound events, in order, until closed
      last_inbound_at, frames_in, frames_out, late_frames, dropped_frames, barge_ins,
      queued_frames, caller_hung_up, agent_hung_up, transfer_requested, outcome(default)
                                    read-only state for the watchdog, metrics and logs

    Pipeline side (media_host/pipelines/), at the pipeline's `inbound_rate` / `outbound_rate`:
      receive()                     the next AudioFrame or InboundEvent
      send(event)                   an Outbound event: hang up, transfer, transcript line...
      start_utterance(), play(pcm), end_utterance()   the agent's audio, one utterance at a time
      stop_playback()               barge-in: drop what is queued; returns ms of the utterance heard
      playing, queued_ms            audio is queued here or still playing at the far end; how much is queued
      stream_position               outbound stream position (frames) of the next frame queued
      heard_position()              the position the caller has heard up to (same scale)
      first_sent_at(utterance)      when an utterance's first frame went out (the last 16 utterances)
      wait_for_playout()            until everything queued has been heard (LiveKit's AudioOutput has
                                    the same name, livekit-agents voice/io.py)
      append_turn, append_event, record_handoff, update_session   the call's session writes, behind
                                    (never raise, never wait on a Redis that is down: session_writer.py)
      catalog                       the agents version the call started with
    """

    def __init__(self, info: CallInfo, *, store: SessionStore, catalog: Catalog, inbound_rate: int | None = None,
                 outbound_rate: int | None = None, inbound_limit_frames: int = 500, lead_ms: int = 60,
                 writer: SessionWriter | None = None) -> None:
        self.info = info
        self._writer = writer or SessionWriter(store)  # the call's writes go through it (the host's, shared)
        self.catalog = catalog  # the agents version this call started with
        self.inbound_rate = inbound_rate or info.wire_rate
        self.outbound_rate = outbound_rate or info.wire_rate
        # "VR": one frame out per frame in, at a constant 10-30 ms. soxr's HQ engines release audio in
        # bursts (up to 115 ms held back), which would delay VAD inbound and starve the playout lead outbound.
        self._in_resampler = StreamResampler(info.wire_rate, self.inbound_rate, quality="VR")
        self._in_framer = Framer(frame_bytes(self.inbound_rate))
        self._out_resampler = StreamResampler(self.outbound_rate, info.wire_rate, quality="VR")
        self._out_framer = Framer(frame_bytes(info.wire_rate))
        self._playout = PlayoutQueue(lead_ms=lead_ms)
        # The audio sender's per-frame call: the queue's own method, bound once (no wrapper per frame).
        self.next_audio: Callable[[], Coroutine[Any, Any, PlayoutItem]] = self._playout.next_item
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

    @property
    def frames_out(self) -> int:
        """Frames sent to the far end so far."""
        return self._playout.frames_sent

    @property
    def late_frames(self) -> int:
        """Frames released later than due (see PlayoutQueue.next_item)."""
        return self._playout.late_frames

    @property
    def queued_frames(self) -> int:
        """Frames queued and not yet sent."""
        return self._playout.queued_frames

    def outcome(self, default: str) -> str:
        """How the call ended, for metrics: what the parties did, else what the runner saw."""
        if self.transfer_requested:
            return "transfer_requested"
        if self.agent_hung_up:
            return "agent_hung_up"
        if self.caller_hung_up:
            return "caller_hung_up"
        return default

    def retune(self, inbound_rate: int | None, outbound_rate: int | None) -> list[bytes]:
        """Another pipeline, with its own rates, takes the call over (the Realtime pipeline's fallback to the
        cascade). Returns the caller audio queued and not received yet, at the old inbound rate, for it to be
        resampled (the frames are taken out of the queue; events stay). The agent audio queued plays on."""
        queued = [item.pcm for item in self._inbound if isinstance(item, AudioFrame)]
        self._inbound = deque(item for item in self._inbound if not isinstance(item, AudioFrame))
        self._inbound_audio = 0
        self.inbound_rate = inbound_rate or self.info.wire_rate
        self.outbound_rate = outbound_rate or self.info.wire_rate
        self._in_resampler = StreamResampler(self.info.wire_rate, self.inbound_rate, quality="VR")
        self._in_framer = Framer(frame_bytes(self.inbound_rate))
        self._out_resampler = StreamResampler(self.outbound_rate, self.info.wire_rate, quality="VR")
        return queued

    # --- pipeline side: the caller -------------------------------------------------------------
    async def receive(self) -> Inbound:
        while not self._inbound:
            self._inbound_ready.clear()
            await self._inbound_ready.wait()
        item = self._inbound.popleft()
        if isinstance(item, AudioFrame):
            self._inbound_audio -= 1
        return item

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

    # --- pipeline side: the agent's audio ------------------------------------------------------
    def start_utterance(self) -> int:
        """Begin an agent utterance (its audio follows); returns its number."""
        return self._playout.start_utterance()

    def play(self, pcm: bytes) -> None:
        """Queue agent audio (PCM16 at the pipeline's outbound rate, any length) for the caller."""
        self._playout.push_frames(self._out_framer.push(self._out_resampler.process(pcm)))

    def end_utterance(self) -> None:
        """The current utterance is complete: play its tail and mark its end."""
        tail = self._out_framer.push(self._out_resampler.flush())
        last = self._out_framer.flush(pad=True)
        self._playout.push_frames([*tail, last] if last else tail)
        self._out_resampler.reset()
        self._playout.end_utterance()

    def stop_playback(self) -> float:
        """Barge-in: drop queued audio, tell the transport to stop at once. Returns ms of it heard."""
        heard = self._playout.flush()
        self._out_framer.clear()
        self._out_resampler.reset()
        self.barge_ins += 1
        self.send(StopPlayback())
        return heard

    @property
    def playing(self) -> bool:
        """Agent audio is queued here or still playing at the far end."""
        return self._playout.playing

    @property
    def queued_ms(self) -> float:
        """Agent audio queued here and not yet sent."""
        return self._playout.queued_ms

    @property
    def stream_position(self) -> int:
        """The outbound stream position (frames) of the next frame queued; a flush continues it from
        what was really sent."""
        return self._playout.frames_pushed

    def heard_position(self) -> float:
        """The stream position (frames, as `stream_position`) the caller has heard up to."""
        return self._playout.heard_position()

    def first_sent_at(self, utterance: int) -> float | None:
        """When the utterance's first frame went out (monotonic), None if not yet (or long ago)."""
        return self._playout.first_sent.get(utterance)

    async def wait_for_playout(self) -> None:
        """Until everything queued has been sent and played out at the far end."""
        await self._playout.wait_played()

    # --- pipeline side: the call's session, written behind -------------------------------------
    async def append_turn(self, turn: Turn) -> None:
        await self._writer.append_turn(self.info.call_id, turn)

    async def append_event(self, event: CallEvent) -> None:
        await self._writer.append_event(self.info.call_id, event)

    async def record_handoff(self, handoff: HandoffRecord) -> None:
        await self._writer.record_handoff(self.info.call_id, handoff)

    async def update_session(self, mutate: Callable[[CallSession], None]) -> None:
        """Apply `mutate` to the stored session (it may run twice on a retry: make it idempotent)."""
        await self._writer.update(self.info.call_id, mutate)
