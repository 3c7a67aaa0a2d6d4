"""The SpeechCascade: VAD turn-taking, speech-to-text, the chat model with tools, streamed TTS.

Caller audio is always read (even while the agent talks), so speech over the agent stops it at once:
playout is flushed, the reply in progress is cancelled, and the transcript keeps only the words the
caller heard. Speech that resumes before the agent has started answering is the same turn, continued.
Agent turns are written to the session once played (or, when interrupted, with what was heard).
When no engine can answer (EnginesExhausted: speech-to-text, the models or text-to-speech), the caller
hears the apology synthesized at start-up and goes to the scenario's human number, or is told goodbye.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from media_host.channel import CallChannel
from media_host.control_plane import ControlPlane
from media_host.engines.base import ChatMessage, Engines, EnginesExhausted, Transcript, VoiceActivityDetector
from media_host.engines.last_resort import LastResort
from media_host.events import (
    AudioFrame,
    CallerHungUp,
    CallStarted,
    DtmfReceived,
    HangUp,
    Recognition,
    SpeechStarted,
    SpeechStopped,
    TranscriptLine,
    Transfer,
    TransferStatusReceived,
    TurnCommitted,
    TurnLatency,
)
from media_host.pipelines.cascade.conversation import Conversation
from media_host.pipelines.cascade.handover import Handover
from media_host.pipelines.cascade.latency import TurnClock
from media_host.pipelines.cascade.responder import Responder
from media_host.pipelines.cascade.speaker import Utterance
from media_host.pipelines.keypad import Keypad
from media_host.telemetry import turn_span
from switchboard.session_models import Speaker

log = logging.getLogger(__name__)

FRAME_MS = 20
PREROLL_FRAMES = 15  # 300 ms before the detected start, so the first syllable is not clipped
ARRIVALS = 512  # frames of arrival times kept (10 s), to time speech boundaries
TRANSFER_FAILED = "I'm sorry, I couldn't connect you just now. I'll keep helping you myself."


class CascadePipeline:
    def __init__(self, engines: Engines, control_plane: ControlPlane,
                 on_latency: Callable[[dict[str, float]], None] | None = None) -> None:
        self.engines = engines
        self.control_plane = control_plane
        self.on_latency = on_latency
        self.inbound_rate: int | None = engines.stt.sample_rate
        self.outbound_rate: int | None = engines.tts.sample_rate
        # Never silence: without clips synthesized at start-up, the last resort is the special information tone.
        self.last_resort = engines.last_resort or LastResort.tone(engines.tts.sample_rate)

    async def run(self, call: CallChannel) -> None:
        assert call.info.state is not None, "the cascade needs the call's session"
        await CascadeCall(self, call).run()

    async def take_over(self, call: CallChannel, conv: Conversation, apology: str | None = None,
                        unheard: list[bytes] | None = None) -> None:
        """Carry on, on the same channel, a call another pipeline held until now (the Realtime pipeline's
        fallback, media_host/pipelines/realtime/fallback.py), with its conversation as it stands. With an
        `apology` the call is under way: caller speech that pipeline never answered (`unheard`, frames at this
        pipeline's inbound rate) is transcribed, the apology said, and the caller's unanswered words answered.
        Without one, the call goes on as it would here from the start (its CallStarted is still queued)."""
        cascade = CascadeCall(self, call, conv)
        if apology is not None:
            cascade.turn_audio = list(unheard or [])
            cascade._start(cascade._take_over(apology))
        await cascade.run()


class CascadeCall:
    """One call's conversation (the pipeline object is shared; this holds the call's state)."""

    def __init__(self, pipeline: CascadePipeline, call: CallChannel, conv: Conversation | None = None) -> None:
        assert call.info.state is not None
        self.p, self.call = pipeline, call
        self.conv = conv or Conversation(call, call.info.state)
        self.responder = Responder(call, self.conv, pipeline.engines, pipeline.control_plane, self._track)
        self.vad: VoiceActivityDetector = pipeline.engines.vad(self.conv.agent.spec.turn.end_of_speech_ms)
        self.frames = 0  # caller frames seen
        self.arrivals = [0.0] * ARRIVALS
        self.preroll: deque[bytes] = deque(maxlen=PREROLL_FRAMES)
        self.speech: list[bytes] | None = None  # the caller's current utterance, while they speak
        self.turn_audio: list[bytes] = []  # kept until the agent answers, so a resumed turn is one turn
        self.reply: asyncio.Task[None] | None = None
        self.handover = Handover(call, self.conv, pipeline.last_resort, self._finish_call)  # when no engine can answer
        self.unplayed: list[tuple[Utterance, TurnClock | None]] = []  # queued agent audio, oldest first
        self.recorder: asyncio.Task[None] | None = None  # writes each utterance's turn once it is heard
        self.keypad = Keypad(self._on_digits)
        self.ending = False
        self.turns = 0
        self.unheard = ""  # what a barge-in cut off, said again if the interruption was only a noise
        # A transcript started when the caller paused: used if nothing more was said before the end.
        self.speculative: tuple[float, asyncio.Task[tuple[Transcript, float]]] | None = None

    # --- main loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            while not self.ending:
                item = await self.call.receive()
                if isinstance(item, AudioFrame):
                    self._on_frame(item)
                elif isinstance(item, CallStarted):
                    # A session already greeted is a call resumed on a new socket: no second greeting.
                    self._start(self._resume() if self.conv.greeted else self._greet())
                elif isinstance(item, DtmfReceived):
                    self.keypad.press(item.digits)
                elif isinstance(item, TransferStatusReceived) and item.status == "failed":
                    if self.handover.begun:  # the last resort's transfer failed: say goodbye instead
                        self.handover.begin("transfer", hang_up=True)
                    else:
                        self._start(self._transfer_failed())
                elif isinstance(item, CallerHungUp):
                    break
        finally:
            await self._close()

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a reply (greeting, answer) as the one reply in progress; it supersedes any other."""
        if self.handover.begun:  # no engine could answer: nothing more is said but the last resort
            work.close()
            return
        if self.reply is not None and not self.reply.done():
            self.reply.cancel()
        self.reply = asyncio.create_task(self.handover.guard(work), name="reply")
        self.reply.add_done_callback(_log_failure)

    # --- caller audio ---------------------------------------------------------------------------
    def _on_frame(self, frame: AudioFrame) -> None:
        self.arrivals[self.frames % ARRIVALS] = frame.received_at
        self.frames += 1
        if self.speech is not None:
            self.speech.append(frame.pcm)
        else:
            self.preroll.append(frame.pcm)
        for event in self.vad.process(frame.pcm):
            if event.kind == "start":
                self._on_speech_start(event.at_ms)
            elif event.kind == "pause":
                self._on_pause(event.at_ms)
            else:
                self._on_speech_end(event.at_ms)

    def _arrival(self, at_ms: float) -> float:
        """When the frame holding stream position `at_ms` arrived (the frame that ends there, at a boundary)."""
        index = min(max(0, math.ceil(at_ms / FRAME_MS) - 1), self.frames - 1)
        if self.frames - index > ARRIVALS:
            return self.arrivals[(self.frames - 1) % ARRIVALS]
        return self.arrivals[index % ARRIVALS]

    def _on_speech_start(self, at_ms: float) -> None:
        if self.handover.begun:  # the apology is not interrupted, nor answered: the call is being let go
            return
        self.call.send(SpeechStarted())
        onset = self._arrival(at_ms)
        agent_audible = self.call.playing or any(u.started for u, _ in self.unplayed)
        if agent_audible:
            self._barge_in(onset)
        elif self.reply is not None and not self.reply.done():
            # Still working on the last words and they go on speaking: answer once they have finished.
            # (Before their words were transcribed, the audio is kept and transcribed with the rest.)
            self.reply.cancel()
        else:
            self.turn_audio = []
        self.speech = list(self.preroll)
        self.preroll.clear()

    def _on_pause(self, at_ms: float) -> None:
        """The caller has gone quiet: transcribe now, so the text is ready if the turn is indeed over."""
        if self.speech is None:
            return
        self._drop_speculative()
        audio = [*self.turn_audio, *self.speech]
        self.speculative = (at_ms, asyncio.create_task(self._transcribe(audio), name="stt-speculative"))

    def _drop_speculative(self) -> None:
        if self.speculative is not None:
            self.speculative[1].cancel()
            self.speculative = None

    def _on_speech_end(self, at_ms: float) -> None:
        self.call.send(SpeechStopped())
        if self.speech is None:
            return
        self.turn_audio.extend(self.speech)
        self.speech = None
        ready = None
        if self.speculative is not None and self.speculative[0] == at_ms:
            ready = self.speculative[1]  # nothing was said after the pause: its transcript is the turn's
            self.speculative = None
        self._drop_speculative()
        clock = TurnClock(speech_end=self._arrival(at_ms))
        clock.mark("eos_detected")
        self._start(self._answer(list(self.turn_audio), clock, ready))

    def _barge_in(self, onset: float) -> None:
        position = self.call.heard_position()
        self.call.stop_playback()
        barge_in_ms = round((time.monotonic() - onset) * 1000, 1)
        if self.reply is not None and not self.reply.done():
            self.reply.cancel()
        active = self.responder.active
        cut = list(self.unplayed)
        if active is not None and all(active is not u for u, _ in cut):
            cut.append((active, active.clock))
            active.cancel()
        self.unplayed.clear()
        if self.recorder is not None:
            self.recorder.cancel()
        self.turn_audio = []
        asyncio.create_task(self._record_interrupted(cut, position, barge_in_ms)).add_done_callback(_log_failure)
        if self.p.on_latency is not None:
            self.p.on_latency({"barge_in": barge_in_ms})

    async def _record_interrupted(self, cut: list[tuple[Utterance, TurnClock | None]], position: float,
                                  barge_in_ms: float) -> None:
        self.unheard = " ".join(u.unheard_text(position) for u, _ in cut).strip()
        heard_all = []
        for utterance, clock in cut:
            heard = utterance.heard_text(position)
            if heard:
                heard_all.append(heard)
                await self.conv.record_turn(Speaker.AGENT, heard, interrupted=True,
                                            latency=self._latency(utterance, clock))
                self.call.send(TranscriptLine("agent", heard, self.conv.agent.name, interrupted=True))
        # What the model said but the caller never heard must not look heard in the history.
        if heard_all and self.conv.history and self.conv.history[-1].role == "assistant":
            self.conv.history[-1] = ChatMessage(role="assistant", content=" ".join(heard_all) + " …")
        await self.conv.record_event("barge_in", heard=" ".join(heard_all), reaction_ms=barge_in_ms)

    # --- replies -------------------------------------------------------------------------------
    async def _greet(self) -> None:
        if self.conv.greeted:
            return
        clock = TurnClock(speech_end=time.monotonic())
        await self.responder.say(self.conv.agent.render_greeting(self.conv.variables()), clock)
        self.conv.greeted = True
        await self.conv.save()

    async def _resume(self) -> None:
        """The line dropped (a media host died, a socket broke) and is back: apologise, then carry on.
        If the caller's last words never got an answer they heard, answer them now."""
        await self.conv.record_event("resumed", turns=len(self.conv.history))
        unanswered = self.conv.unanswered()
        clock = TurnClock(speech_end=time.monotonic())
        await self.responder.say(self.conv.apology())
        if unanswered:
            await self._respond(clock)

    async def _take_over(self, apology: str) -> None:
        """The call comes from another pipeline (take_over): what the caller said there unanswered (`turn_audio`)
        becomes their turn, then the apology, then the answer their last words (or a tool's result) still need.
        Speech that goes on meanwhile continues the same turn (`_on_speech_start`)."""
        clock = TurnClock(speech_end=time.monotonic())
        if self.turn_audio:
            try:
                transcript, _ = await self._transcribe(list(self.turn_audio))
            except (EnginesExhausted, asyncio.CancelledError):
                raise
            except Exception as exc:  # as in _answer: nothing is left to hear with
                raise EnginesExhausted("stt", type(exc).__name__) from exc
            self.turn_audio = []
            if text := transcript.text.strip():
                self.call.send(Recognition(text, transcript.confidence))
                self.call.send(TranscriptLine("caller", text))
                self.conv.history.append(ChatMessage(role="user", content=text))
                await self.conv.record_turn(Speaker.CALLER, text)
        await self.responder.say(apology)
        if self.conv.unanswered():
            await self._respond(clock)

    async def _transcribe(self, audio: list[bytes]) -> tuple[Transcript, float]:
        """The text of `audio`, and when it was ready."""
        stream = self.p.engines.stt.stream(self.conv.agent.spec.locale)
        try:
            for frame in audio:
                stream.push(frame)
            transcript = await stream.finish()
        finally:
            await stream.aclose()
            await self.responder.fallbacks.report(stream)  # the engines it fell back from, for the call record
        return transcript, time.monotonic()

    async def _answer(self, audio: list[bytes], clock: TurnClock,
                      ready: asyncio.Task[tuple[Transcript, float]] | None = None) -> None:
        try:
            transcript, done_at = await (ready if ready is not None else self._transcribe(audio))
        except (EnginesExhausted, asyncio.CancelledError):
            raise
        except Exception as exc:  # the engine (or its whole fallback chain) failed: nothing is left to hear with
            raise EnginesExhausted("stt", type(exc).__name__) from exc
        clock.mark("stt_done", done_at)
        clock.engine("stt", transcript.engine_ms)
        await self._caller_said(transcript.text.strip(), clock, transcript.confidence)

    async def _caller_said(self, text: str, clock: TurnClock, confidence: float = 1.0) -> None:
        unheard, self.unheard = self.unheard, ""
        if not text:
            # A cough or a noise, not a turn. If it cut the agent off, the caller still needs the rest.
            if unheard:
                await self.conv.record_event("resumed_after_noise")
                await self.responder.say(unheard)
            return
        self.turn_audio = []
        self.call.send(TurnCommitted())
        self.call.send(Recognition(text, confidence))
        self.call.send(TranscriptLine("caller", text))
        self.conv.history.append(ChatMessage(role="user", content=text))
        await self.conv.record_turn(Speaker.CALLER, text)
        await self._respond(clock)

    async def _respond(self, clock: TurnClock) -> None:
        """Answer the caller's last words (the last history message), then carry out any transfer or hang-up."""
        self.turns += 1
        with turn_span(self.conv.call_id, self.conv.agent.name, self.turns):
            ending = await self.responder.answer(clock)
        # A handoff brings the new agent's turn-taking: its end-of-speech window applies from now on.
        self.vad.end_of_speech_ms = self.conv.agent.spec.turn.end_of_speech_ms
        if ending.transfer or ending.hangup:
            await self._finish_call(ending.transfer, ending.hangup)

    async def _finish_call(self, transfer: str | None, hangup: str | None) -> None:
        await self.call.wait_for_playout()  # the caller hears the goodbye before anything happens
        if transfer is not None:
            target = self.conv.scenario.spec.policy.human_queue or ""
            await self.conv.record_event("transfer", target=target, reason=transfer)
            self.call.send(Transfer(target, transfer))
        elif hangup is not None:
            await self.conv.record_event("hangup", reason=hangup)
            self.call.send(HangUp(hangup))
            self.ending = True
            self.call.feed_event(CallerHungUp("agent ended the call"))  # wakes the main loop to finish

    async def _transfer_failed(self) -> None:
        apology = self.conv.agent.reply_templates.get("transfer_failed")
        await self.responder.say(apology.render() if apology is not None else TRANSFER_FAILED)
        await self.conv.record_event("transfer_failed")

    def _on_digits(self, digits: str) -> None:
        """Typed digits are a caller turn, answered like speech."""
        self._start(self._caller_said(digits, TurnClock(speech_end=time.monotonic())))

    # --- what was played goes into the transcript ------------------------------------------------
    def _track(self, utterance: Utterance, clock: TurnClock | None) -> None:
        self.unplayed.append((utterance, clock))
        if self.recorder is None or self.recorder.done():
            self.recorder = asyncio.create_task(self._write_played())
            self.recorder.add_done_callback(_log_failure)

    async def _write_played(self) -> None:
        while self.unplayed:
            utterance, clock = self.unplayed[0]
            remaining = utterance.end_position - self.call.heard_position()
            if remaining > 0:
                await asyncio.sleep(remaining * FRAME_MS / 1000)
                continue
            self.unplayed.pop(0)
            await self.conv.record_turn(Speaker.AGENT, utterance.played_text, latency=self._latency(utterance, clock))
            self.call.send(TranscriptLine("agent", utterance.played_text, self.conv.agent.name))

    def _latency(self, utterance: Utterance, clock: TurnClock | None) -> dict[str, float] | None:
        """The turn's marks, completed with when its first audio went out, and reported."""
        if clock is None:
            return None
        first_out = utterance.first_audio_at()
        if first_out is not None:
            clock.mark("first_audio_out", first_out)
        latency = clock.summary()
        self.call.send(TurnLatency(latency))
        # Only replies to the caller are turns; a greeting answers no speech (its clock starts at the call).
        if self.p.on_latency is not None and "eos_detected" in latency:
            self.p.on_latency(latency)
        return latency

    async def _close(self) -> None:
        self._drop_speculative()
        self.keypad.close()
        if self.reply is not None:
            self.reply.cancel()
        self.handover.cancel()
        if self.recorder is not None and not self.recorder.done():
            # The call is over: whatever was queued was heard up to where the stream got.
            self.recorder.cancel()
            await self._record_interrupted(list(self.unplayed), self.call.heard_position(), 0.0)
        with contextlib.suppress(Exception):
            await self.conv.save()
        close = getattr(self.vad, "close", None)  # the embedded VAD hands its model back to the pool
        if close is not None:
            close()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())
