"""Scripted engines behind the real interfaces, for testing the cascade's mechanics quickly and exactly.

A caller "says" something by sending loud frames whose first sample carries a phrase number; the
scripted STT looks the phrase up. The TTS speaks 100 ms of tone per word, so what was heard maps to
words exactly. The chat model replies from a script. (The real engines are tested end to end elsewhere.)
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np

from agents.schema import Voice
from media_host.engines.base import (
    ChatDelta,
    ChatRequest,
    Engines,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Transcript,
    VadEvent,
)

RATE = 16000
FRAME = RATE // 50 * 2
WORD_MS = 100


def phrase_frame(phrase: int) -> bytes:
    """A loud 20 ms frame at 16 kHz carrying a phrase number in its first sample."""
    samples = np.full(FRAME // 2, 8000, dtype="<i2")
    samples[0] = phrase
    return samples.tobytes()


SILENCE = bytes(FRAME)


class EnergyVoiceActivityDetector:
    sample_rate = RATE
    made: list[EnergyVoiceActivityDetector] = []  # every detector created, so a test can look at the call's
    pause_ms: int | None = None  # when set (by a test), a pause is announced after this much quiet

    def __init__(self, end_of_speech_ms: int) -> None:
        EnergyVoiceActivityDetector.made.append(self)
        self.end_of_speech_ms = end_of_speech_ms
        self.position = 0.0
        self.speaking = False
        self.voiced = 0
        self.silent = 0
        self.last_voiced = 0.0

    def process(self, frame: bytes) -> list[VadEvent]:
        loud = np.abs(np.frombuffer(frame, dtype="<i2")).mean() > 1000
        events: list[VadEvent] = []
        if loud:
            self.voiced += 1
            self.silent = 0
            self.last_voiced = self.position + 20
            if not self.speaking and self.voiced >= 2:
                self.speaking = True
                events.append(VadEvent("start", self.position - 20))
        else:
            self.voiced = 0
            self.silent += 1
            if self.speaking and self.pause_ms is not None and self.silent * 20 == self.pause_ms:
                events.append(VadEvent("pause", self.last_voiced))
            if self.speaking and self.silent * 20 >= self.end_of_speech_ms:
                self.speaking = False
                events.append(VadEvent("end", self.last_voiced))
        self.position += 20
        return events

    def reset(self) -> None:
        self.speaking, self.voiced, self.silent = False, 0, 0


class ScriptedSpeechToText:
    sample_rate = RATE

    def __init__(self, phrases: dict[int, str]) -> None:
        self.phrases = phrases
        self.finished = 0

    def stream(self, language: str) -> ScriptedSttStream:
        return ScriptedSttStream(self)


class ScriptedSttStream:
    def __init__(self, stt: ScriptedSpeechToText) -> None:
        self.stt = stt
        self.words: list[str] = []

    def push(self, pcm: bytes) -> None:
        first = struct.unpack_from("<h", pcm)[0]
        text = self.stt.phrases.get(first)
        if text and (not self.words or self.words[-1] != text):
            self.words.append(text)

    def partial(self) -> str | None:
        return None

    async def finish(self) -> Transcript:
        self.stt.finished += 1
        await asyncio.sleep(0.01)
        return Transcript(" ".join(self.words), engine_ms=10.0)

    async def aclose(self) -> None:
        pass


class ToneTextToSpeech:
    sample_rate = RATE

    def __init__(self) -> None:
        self.spoken: list[str] = []

    async def synthesize(self, text: str, voice: Voice, locale: str) -> AsyncIterator[bytes]:
        self.spoken.append(text)
        await asyncio.sleep(0)
        words = len(text.split())
        t = np.arange(RATE * WORD_MS * words // 1000) / RATE
        yield (np.sin(2 * np.pi * 300 * t) * 3000).astype("<i2").tobytes()


Step = str | tuple[str, dict[str, object]] | Callable[[ChatRequest], str]


@dataclass
class ScriptedChatModel:
    """Replies from a script: a string is spoken, (tool, args) calls a tool; after a tool result the
    model speaks `after_tool` (or the tool's JSON content)."""

    script: list[Step]
    name: str = "scripted"
    delay_s: float = 0.0
    requests: list[ChatRequest] = field(default_factory=list)
    fail: bool = False
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        self.requests.append(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise ConnectionError("model unavailable")
        step = self.script.pop(0) if self.script else "I have nothing more to say."
        if callable(step):
            step = step(request)
        if isinstance(step, tuple):
            name, args = step
            import json

            yield ToolCallDelta(ToolCall(f"call_{next(self._ids)}", name, json.dumps(args)))
            return
        for word in step.split(" "):
            yield TextDelta(word + " ")


def scripted_engines(phrases: dict[int, str], script: list[Step], **chat: object) -> Engines:
    return Engines(vad=EnergyVoiceActivityDetector, stt=ScriptedSpeechToText(phrases),
                   chat=ScriptedChatModel(script, **chat), tts=ToneTextToSpeech())  # type: ignore[arg-type]
