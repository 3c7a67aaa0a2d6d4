"""The Realtime pipeline: the caller's audio goes to the Realtime API and its audio comes back.

The model hears and speaks; the media host keeps the conversation's rules, as the SpeechCascade
does: the agent's prompt, tools and voice configure the session (session.py); tool calls run through
the agent registry (responses.py, effects.py: handoffs switch the session to the new agent, transfers
and hang-ups happen once the caller has heard the reply); speech over the agent stops playout at once,
cancels the response in flight and truncates the assistant item at what the caller heard
(playback.py); every turn is written to the session as it happens (turns.py: agent turns once played,
or with the heard part when interrupted).

The server detects the turns (server or semantic VAD, `create_response` and `interrupt_response`
on). This module holds one call together: the caller's side (audio, speech, transcripts, digits),
the events of the socket, and the socket's coming and going (link.py); when the service stays away,
the cascade takes the rest of the call (fallback.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from media_host.channel import CallChannel
from media_host.control_plane import ControlPlane
from media_host.events import (
    AudioFrame,
    CallerHungUp,
    CallStarted,
    DtmfReceived,
    Recognition,
    SpeechStarted,
    SpeechStopped,
    TranscriptLine,
    TransferStatusReceived,
    TurnCommitted,
)
from media_host.metrics import Counter, MediaMetrics
from media_host.pipelines.cascade import CascadePipeline
from media_host.pipelines.cascade.conversation import Conversation
from media_host.pipelines.cascade.latency import TurnClock
from media_host.pipelines.keypad import Keypad
from media_host.pipelines.realtime import fallback as handover
from media_host.pipelines.realtime.client import Connector, realtime_connector
from media_host.pipelines.realtime.holding import HoldingClips, HoldingLine, Liveness
from media_host.pipelines.realtime.link import BACKOFF_S, Event, RealtimeLink
from media_host.pipelines.realtime.notices import ServiceNotices
from media_host.pipelines.realtime.playback import Playback
from media_host.pipelines.realtime.protocol import BY_MODEL_NAME, SAMPLE_RATE, Dialect, Transcription
from media_host.pipelines.realtime.responses import Responses
from media_host.pipelines.realtime.session import SessionControl
from media_host.pipelines.realtime.turns import AgentItem, Entry, Journal, Said
from switchboard.session_models import Speaker
from switchboard.settings import RealtimeFlavor, Settings

log = logging.getLogger(__name__)

TRANSFER_FAILED = "I'm sorry, I couldn't connect you just now. I'll keep helping you myself."
HANDOVER_PLAYOUT_S = 5.0  # at most, for the audio already queued to play before the cascade takes over
START_RETRIES, START_DEADLINE_S = 1, 3.0  # connecting at a call's start, when the cascade can take it instead


class RealtimePipeline:
    inbound_rate: int | None = SAMPLE_RATE
    outbound_rate: int | None = SAMPLE_RATE

    def __init__(self, connector: Connector, control_plane: ControlPlane, *,
                 flavor: RealtimeFlavor = RealtimeFlavor.GA, reconnect_attempts: int = 5,
                 backoff: Sequence[float] = BACKOFF_S, on_latency: Callable[[dict[str, float]], None] | None = None,
                 metrics: MediaMetrics | None = None, events: Counter | None = None,
                 liveness: Liveness | None = None, transcription: Transcription = BY_MODEL_NAME,
                 fallback: CascadePipeline | None = None, reconnect_deadline_s: float | None = None) -> None:
        self.connector = connector
        self.control_plane = control_plane
        self.flavor = flavor
        self.reconnect_attempts = reconnect_attempts
        self.backoff = tuple(backoff)
        self.liveness = liveness or Liveness()
        self.transcription = transcription  # what a session names to transcribe the caller (OpenAI, Azure)
        self.holding_clips = HoldingClips()  # the holding phrase, rendered once per voice for every call
        self.on_latency = on_latency
        self.metrics = metrics
        # Realtime API events by kind (error, rate_limits_updated, disconnect, reconnect, voice_kept...).
        self.events = events or Counter("switchboard_realtime_events_total", "Realtime API events, by kind")
        self.fallback = fallback  # the cascade that takes a call the Realtime service cannot serve (fallback.py)
        self.fallbacks = handover.fallbacks_counter()
        self.reconnect_deadline_s = reconnect_deadline_s

    async def run(self, call: CallChannel) -> None:
        assert call.info.state is not None, "the realtime pipeline needs the call's session"
        realtime = RealtimeCall(self, call)
        reason = await realtime.run()
        if reason is not None and self.fallback is not None:
            await handover.continue_on_cascade(self.fallback, call, realtime.conv, reason=reason,
                                               unheard=realtime.link.unheard_audio(), fallbacks=self.fallbacks)


def realtime_pipeline_from_settings(settings: Settings, control_plane: ControlPlane,
                                    on_latency: Callable[[dict[str, float]], None] | None = None, *,
                                    metrics: MediaMetrics | None = None, events: Counter | None = None,
                                    fallback: CascadePipeline | None = None) -> RealtimePipeline:
    return RealtimePipeline(realtime_connector(settings), control_plane, flavor=settings.realtime_flavor,
                            reconnect_attempts=settings.realtime_reconnect_attempts, on_latency=on_latency,
                            metrics=metrics, events=events, transcription=Transcription.from_settings(settings),
                            fallback=fallback, reconnect_deadline_s=settings.realtime_reconnect_deadline_seconds)


class RealtimeCall:
    """One call's conversation (the pipeline object is shared; this holds the call's state)."""

    def __init__(self, pipeline: RealtimePipeline, call: CallChannel) -> None:
        assert call.info.state is not None
        self.p, self.call, self.control_plane = pipeline, call, pipeline.control_plane
        self.conv = Conversation(call, call.info.state)
        self.dialect = Dialect(pipeline.flavor)
        self.journal = Journal(call, self.conv, pipeline.on_latency)
        live = pipeline.liveness
        self.link = RealtimeLink(pipeline.connector, attempts=pipeline.reconnect_attempts, backoff=pipeline.backoff,
                                 on_event=self._on_event, restore=self._restore, on_lost=self._on_lost,
                                 on_restored=self._on_restored, on_failed=self._on_failed,
                                 on_stalled=self._on_stalled, ping_every_s=live.ping_every_s,
                                 stall_after_s=live.stall_after_s, dead_after_s=live.dead_after_s,
                                 deadline_s=pipeline.reconnect_deadline_s)
        self.session = SessionControl(self.conv, self.dialect, self.link, self.journal, pipeline.transcription)
        self.playback = Playback(call, self.journal, self.link, self.dialect, self._on_item_started)
        self.holding = HoldingLine(pipeline.holding_clips, self.conv, self.link, self.dialect, self.playback,
                                   count=self.count, hold_after_s=live.hold_after_s)
        self.speaking = False  # the server heard the caller start and not yet stop
        self.responses = Responses(self)
        self.notices = ServiceNotices(self)
        self.keypad = Keypad(self._on_digits)
        self.callers: dict[str, Entry] = {}  # caller items waiting for their transcript
        self.clock: TurnClock | None = None  # the caller's last turn, until its answer's first audio
        self.last_clock: TurnClock | None = None
        self.done = False
        self.degraded: str | None = None  # why the cascade takes the rest of the call (fallback.py)
        self.listener: asyncio.Task[None] | None = None  # the loop over the caller's side
        self.tasks: set[asyncio.Task[None]] = set()
        self.tool_tasks: set[asyncio.Task[None]] = set()
        responses, playback = self.responses, self.playback
        self.handlers: dict[str, Callable[[Event], None]] = {
            "input_audio_buffer.speech_started": self._on_speech_started,
            "input_audio_buffer.speech_stopped": self._on_speech_stopped,
            "input_audio_buffer.committed": self._on_committed,
            "conversation.item.input_audio_transcription.completed": self._on_transcript,
            "conversation.item.input_audio_transcription.failed": self._on_transcript,
            "response.created": self._on_response_created,
            "response.output_item.added": responses.on_output_item,
            "response.output_audio.delta": playback.on_audio,
            "response.output_audio.done": playback.on_audio_done,
            "response.output_audio_transcript.delta": playback.on_transcript,
            "response.output_audio_transcript.done": playback.on_transcript,
            "response.function_call_arguments.done": responses.on_function_call,
            "response.done": responses.on_done,
            "session.updated": self._on_session_updated,
            "error": self.notices.on_error,
            "rate_limits.updated": self.notices.on_rate_limits,
        }

    # --- main loop ------------------------------------------------------------------------------
    async def run(self) -> str | None:
        """Hold the call. Returns why the cascade takes the rest of it (the service is gone), or None."""
        try:
            # With the cascade to take over, a caller just answered is not kept in silence for the whole backoff.
            start = (START_RETRIES, START_DEADLINE_S) if self.p.fallback is not None else (None, None)
            if not await self.link.open(*start):
                await self._on_failed(at_start=True)
            if self.degraded is None:
                self.listener = asyncio.create_task(self._listen(), name="realtime-listen")
                try:
                    await self.listener
                except asyncio.CancelledError:  # the listener, stopped for the cascade; else this call, ending
                    task = asyncio.current_task()
                    if not self._handing_over() or (task is not None and task.cancelling()):
                        raise
            if self.degraded is not None:  # what already plays (the holding phrase) is heard, and written, whole
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(HANDOVER_PLAYOUT_S):
                        await self.call.wait_for_playout()
        finally:
            if self.listener is not None:
                self.listener.cancel()
            await self._close()
        return self.degraded

    def _handing_over(self) -> bool:  # a method: the flag changes while a task awaits
        return self.degraded is not None

    async def _listen(self) -> None:
        while not self.done:
            item = await self.call.receive()
            if isinstance(item, AudioFrame):
                self.link.append_audio(item.pcm, item.received_at)
                if not self.link.healthy:  # the server cannot hear the caller now: we listen
                    self.holding.frame(item.pcm)
            elif isinstance(item, CallStarted):
                self._greet()
            elif isinstance(item, DtmfReceived):
                self.keypad.press(item.digits)
            elif isinstance(item, TransferStatusReceived) and item.status == "failed":
                self.session.say(self.session.template("transfer_failed", TRANSFER_FAILED))
                self.spawn(self.conv.record_event("transfer_failed"))
            elif isinstance(item, CallerHungUp):
                break

    def spawn(self, work: Coroutine[Any, Any, None], tool: bool = False) -> None:
        task = asyncio.create_task(work)
        (self.tool_tasks if tool else self.tasks).add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.tool_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("realtime: %s failed", task.get_name(), exc_info=task.exception())

    def count(self, kind: str, metric_kind: str | None = None, **labels: str) -> None:
        self.p.events.inc(1.0, kind=kind, **labels)
        if metric_kind is not None and self.p.metrics is not None:
            self.p.metrics.errors.inc(transport=self.call.info.transport, kind=metric_kind)

    def stop(self, reason: str) -> None:
        self.done = True
        self.call.feed_event(CallerHungUp(reason))  # wakes the main loop to finish

    def _greet(self) -> None:
        if not self.link.connected:
            return
        if self.conv.greeted:  # a call already under way, on a new socket: no second greeting
            if self.conv.resumed():
                self.session.resume()
                self.spawn(self.conv.record_event("resumed", turns=len(self.conv.history)))
            return
        greeting = self.conv.agent.render_greeting(self.conv.variables())
        if not greeting:
            self.conv.greeted = True
            return
        self.responses.greeting_pending = True
        self.session.say(greeting, "The call has just been answered. ")

    # --- events from the server -------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        if self.holding.claims(event):  # the holding phrase being rendered: not the conversation's
            return
        self.holding.observe(event["type"])
        handler = self.handlers.get(event["type"])
        if handler is not None and not self.done:
            handler(event)

    def _on_session_updated(self, event: Event) -> None:
        self.session.on_updated(event)
        self.holding.prepare(self.session.voice)

    # --- the caller's side ------------------------------------------------------------------------
    def _on_speech_started(self, event: Event) -> None:
        self.speaking = True
        self.link.hold(event.get("audio_start_ms"))  # kept until transcribed: a reconnect replays it
        if self.link.replayed(event.get("audio_start_ms")):
            return  # words said before a reconnect, heard again: the caller is not talking over anyone now
        self.call.send(SpeechStarted())
        self.clock = None
        onset = self.link.arrival(event.get("audio_start_ms"))
        if self.playback.audible and not self.holding.started_after(onset):
            self._barge_in(onset)
        self.responses.cancel()

    def _barge_in(self, onset: float | None) -> None:
        """Stop the agent now; truncate what the caller did not hear; record what they did."""
        heard, stopped_at = self.playback.barge_in()
        reaction_ms = round((stopped_at - onset) * 1000, 1) if onset is not None else None
        self.spawn(self.conv.record_event("barge_in", heard=heard, reaction_ms=reaction_ms))
        if reaction_ms is not None and self.p.on_latency is not None:
            self.p.on_latency({"barge_in": reaction_ms})

    def _on_speech_stopped(self, event: Event) -> None:
        self.speaking = False
        self.link.heard_until(event.get("audio_end_ms"))
        if not self.link.replayed(event.get("audio_end_ms")):
            self.call.send(SpeechStopped())
        self.clock = self.last_clock = TurnClock(speech_end=self.link.arrival(event.get("audio_end_ms"))
                                                 or time.monotonic())
        self.clock.mark("eos_detected")

    def _on_committed(self, event: Event) -> None:
        self.call.send(TurnCommitted())
        if not self.session.transcribes:
            self._release_audio()
            return  # no transcript will come: the turn cannot be written (and must not hold the others up)
        item_id = str(event.get("item_id") or "")
        self.callers[item_id] = self.journal.add(Speaker.CALLER, item_id)

    def _on_transcript(self, event: Event) -> None:
        entry = self.callers.pop(str(event.get("item_id") or ""), None)
        self._release_audio()
        text = " ".join(str(event.get("transcript") or "").split())
        if event["type"].endswith(".failed") or not text:
            log.info("realtime: caller turn without a transcript")
            if entry is not None:
                entry.resolve(None)
            return
        if self.last_clock is not None:
            self.last_clock.mark("stt_done")
        self.call.send(Recognition(text))
        self.call.send(TranscriptLine("caller", text))
        if entry is not None:
            entry.resolve(Said(text))

    def _release_audio(self) -> None:
        """Every caller turn the server heard is transcribed: their audio need not be kept for a replay."""
        if not self.callers and not self.speaking:
            self.link.release()

    def _on_digits(self, digits: str) -> None:
        """Typed digits are a caller turn: they stop the agent and are answered."""
        if not self.link.connected:
            return
        if self.playback.audible:
            self._barge_in(None)
        self.responses.cancel()
        self.clock = self.last_clock = TurnClock(speech_end=time.monotonic())
        self.clock.mark("eos_detected")
        self.journal.add(Speaker.CALLER, "dtmf").resolve(Said(digits))
        self.call.send(Recognition(digits))
        self.call.send(TranscriptLine("caller", digits))
        self.link.send(self.dialect.message("user", digits))
        self.link.send(self.dialect.response_create())

    # --- the agent's side: latency marks (playback.py plays and writes, responses.py runs tools) ---
    def _on_response_created(self, event: Event) -> None:
        self.responses.on_created(event)
        if self.clock is not None:
            self.clock.mark("response_created")

    def _on_item_started(self, item: AgentItem) -> None:
        """The first audio of an answer: the caller's turn clock goes with it."""
        if self.clock is not None and not self.responses.greeting:
            item.clock, self.clock = self.clock, None
            item.clock.mark("first_tts_chunk")
            eos = item.clock.marks.get("eos_detected", 0.0)
            item.clock.engine("realtime", item.clock.marks["first_tts_chunk"] - eos)

    # --- the Realtime socket comes and goes -------------------------------------------------------
    async def _restore(self, reconnect: bool) -> list[Event]:
        # The caller's words replayed on the new socket get answered: no apology in front of that answer.
        return await self.session.restore(reconnect, apologise=not (self.link.holding_speech or self.holding.spoke))

    def _on_stalled(self, stalled: bool) -> None:
        self.count("stalled" if stalled else "unstalled")
        self.holding.stalled(stalled)

    async def _on_lost(self) -> None:
        log.warning("realtime socket lost; reconnecting")
        self.count("disconnect", "realtime_disconnect")
        self.holding.lost()  # before the cut: whether an answer was still coming decides
        self.playback.cut_off()
        for entry in self.callers.values():  # their audio is kept and replayed: the new socket transcribes it
            entry.resolve(None)
        self.callers.clear()
        self.speaking = False
        self.responses.response, self.clock = None, None
        await self.conv.record_event("realtime_disconnected")

    async def _on_restored(self, attempts: int) -> None:
        log.info("realtime socket restored", extra={"attempts": attempts})
        self.count("reconnect")
        self.holding.restored()
        await self.conv.record_event("realtime_reconnected", attempts=attempts)

    async def _on_failed(self, at_start: bool = False) -> None:
        """No Realtime service: the caller must not be left in silence. The cascade takes over if the host has
        its engines (fallback.py: the listener stops, the call is handed over once this one is closed), else a
        person does."""
        self.count("unavailable", "realtime_unavailable")
        if self.p.fallback is not None:
            self.degraded = handover.AT_START if at_start else handover.RECONNECT_FAILED
            if self.listener is not None:
                self.listener.cancel()
            return
        if not await handover.hand_to_a_person(self.call, self.conv):
            self.stop(handover.UNAVAILABLE)

    async def _close(self) -> None:
        self.done = True
        self.holding.close()
        self.playback.close()
        self.keypad.close()
        await self.link.close()
        pending = self.tasks | self.tool_tasks
        if pending:  # records being written, and a tool changing something (blocking a card), may finish
            await asyncio.wait(pending, timeout=1.0)
            for task in pending:
                task.cancel()
        await self.journal.close()
        try:
            await self.conv.save()
        except Exception:
            log.warning("realtime: saving the session at the end failed", exc_info=True)
