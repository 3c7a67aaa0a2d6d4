"""Speaking one agent reply: text streams in, sentences are synthesized and played in order.

The first sentence goes to TTS as soon as it is complete, so the caller hears the start of a reply
while the model is still writing the rest. Each sentence's position in the outbound stream is kept,
so a barge-in can tell which words the caller actually heard.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agents.schema import Voice
from media_host.channel import CallChannel
from media_host.engines.base import EnginesExhausted, TextToSpeech
from media_host.pipelines.cascade.latency import TurnClock

_ABBREVIATIONS = ("dr", "mr", "mrs", "ms", "st", "e.g", "i.e", "a.m", "p.m", "no", "vs", "approx")
_BOUNDARY = re.compile(r"([.!?])(\s+)")
Report = Callable[[object], Awaitable[None]]  # CallFallbacks.report
_LONG_CLAUSE = 160  # split a sentence this long at its last comma, so TTS can start


def split_sentences(text: str) -> tuple[list[str], str]:
    """Complete sentences in `text`, and the unfinished rest."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        candidate = text[start:match.end(1)]
        last_word = candidate.rsplit(None, 1)[-1].lower().rstrip(".") if candidate.strip() else ""
        if match.group(1) == "." and last_word in _ABBREVIATIONS:
            continue
        if candidate.strip():
            sentences.append(candidate.strip())
        start = match.end()
    rest = text[start:]
    if len(rest) > _LONG_CLAUSE and "," in rest:
        cut = rest.rindex(",") + 1
        sentences.append(rest[:cut].strip())
        rest = rest[cut:]
    return sentences, rest.lstrip()


@dataclass(frozen=True, slots=True)
class Spoken:
    text: str
    start: int  # outbound stream positions (frames), as CallChannel.stream_position
    end: int


class Utterance:
    """One reply. `feed` text as it streams, `finish` when it is complete, `cancel` on barge-in."""

    def __init__(self, call: CallChannel, tts: TextToSpeech, voice: Voice, locale: str,
                 clock: TurnClock | None = None, *, report: Report | None = None) -> None:
        self.call, self.tts, self.voice, self.locale, self.clock = call, tts, voice, locale, clock
        self.report = report  # told of each sentence's synthesis: the engines it fell back from go on record
        self.spoken: list[Spoken] = []
        self.started = False  # the first audio of the reply was queued
        self.playout_utterance: int | None = None  # its number in the playout queue
        self._text: list[str] = []
        self._buffer = ""
        self._sentences: asyncio.Queue[str | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._speak(), name="tts")

    @property
    def text(self) -> str:
        return " ".join(" ".join(self._text).split())

    def feed(self, text: str) -> None:
        if (failure := self._failure()) is not None:
            raise failure  # the TTS gave up: stop the reply now, not once the model has written all of it
        self._text.append(text)
        self._buffer += text
        complete, self._buffer = split_sentences(self._buffer)
        for sentence in complete:
            self._sentences.put_nowait(sentence)

    async def finish(self) -> None:
        """Synthesize what is left; returns when all the audio is queued (not yet played)."""
        if self._buffer.strip():
            self._sentences.put_nowait(self._buffer.strip())
        self._buffer = ""
        self._sentences.put_nowait(None)
        try:
            await self._task
        finally:
            if self.started:  # what was queued before a failure plays out, as a whole utterance
                self.call.end_utterance()

    def cancel(self) -> None:
        self._task.cancel()

    @property
    def played_text(self) -> str:
        """What the caller hears of it once its audio has played: its text, or, when the TTS gave up, the
        sentences synthesized before."""
        return " ".join(s.text for s in self.spoken) if self._failure() is not None else self.text

    def _failure(self) -> BaseException | None:
        return self._task.exception() if self._task.done() and not self._task.cancelled() else None

    @property
    def end_position(self) -> int:
        return self.spoken[-1].end if self.spoken else 0

    def first_audio_at(self) -> float | None:
        """When the reply's first frame went out to the caller (None if not yet)."""
        if self.playout_utterance is None:
            return None
        return self.call.first_sent_at(self.playout_utterance)

    def heard_text(self, position: float) -> str:
        """The words heard by the time the outbound stream reached `position` (frames)."""
        words: list[str] = []
        for sentence in self.spoken:
            if sentence.end <= position:
                words.extend(sentence.text.split())
            elif sentence.start < position:
                part = sentence.text.split()
                fraction = (position - sentence.start) / max(1, sentence.end - sentence.start)
                words.extend(part[:int(len(part) * fraction)])
                break
            else:
                break
        return " ".join(words)

    def unheard_text(self, position: float) -> str:
        """What the reply was still going to say after `position` (whole sentences, from the first
        sentence the caller did not hear in full)."""
        rest = [s.text for s in self.spoken if s.end > position]
        return " ".join(rest) if rest else ""

    async def _speak(self) -> None:
        try:
            await self._synthesize()
        except EnginesExhausted:
            raise
        except Exception as exc:  # the engine (or its whole fallback chain) failed: nothing is left to speak with
            raise EnginesExhausted("tts", type(exc).__name__) from exc

    async def _synthesize(self) -> None:
        while (sentence := await self._sentences.get()) is not None:
            start = self.call.stream_position
            submitted = time.monotonic()
            synthesis = self.tts.synthesize(sentence, self.voice, self.locale)
            try:
                async for chunk in synthesis:
                    if self.clock is not None and "first_tts_chunk" not in self.clock.marks:
                        self.clock.mark("first_tts_chunk")
                        self.clock.engine("tts", (time.monotonic() - submitted) * 1000)
                    if not self.started:
                        self.playout_utterance = self.call.start_utterance()
                        self.started = True
                    self.call.play(chunk)
            finally:
                if self.report is not None:
                    await self.report(synthesis)
            self.spoken.append(Spoken(sentence, start, self.call.stream_position))
