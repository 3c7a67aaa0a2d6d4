"""Speech engines that fail on cue, behind the real interfaces, for the fallback chains' tests.

Each records what it was given, so a test can tell that the next engine got the whole utterance (no
words lost) and that a failed engine was not asked again while it was down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal

import numpy as np

from agents.schema import Voice
from media_host.engines.base import Transcript

SttFault = Literal["refuse", "hang", "none"]
TtsFault = Literal["before_audio", "mid_sentence", "hang", "none"]


class FaultySpeechToText:
    """An STT whose `finish()` raises ConnectionRefusedError (`refuse`), never returns (`hang`), or returns
    `text` (`none`). `streams` counts the utterances it was asked for; `audio` holds each one's bytes."""

    def __init__(self, fault: SttFault, *, text: str = "", rate: int = 16000) -> None:
        self.fault = fault
        self.text = text
        self.sample_rate = rate
        self.audio: list[bytearray] = []
        self.finished = 0

    @property
    def streams(self) -> int:
        return len(self.audio)

    def stream(self, language: str) -> FaultySttStream:
        self.audio.append(bytearray())
        return FaultySttStream(self, self.audio[-1])


class FaultySttStream:
    def __init__(self, stt: FaultySpeechToText, audio: bytearray) -> None:
        self.stt, self.audio = stt, audio
        self.closed = False

    def push(self, pcm: bytes) -> None:
        self.audio += pcm

    def partial(self) -> str | None:
        return None

    async def finish(self) -> Transcript:
        self.stt.finished += 1
        if self.stt.fault == "refuse":
            raise ConnectionRefusedError("the speech service refused the connection")
        if self.stt.fault == "hang":
            await asyncio.Event().wait()
        return Transcript(self.stt.text, 0.9, 1.0)

    async def aclose(self) -> None:
        self.closed = True


def tone(rate: int, ms: int, hz: float = 300.0) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * hz * t) * 3000).astype("<i2").tobytes()


class FaultyTextToSpeech:
    """A TTS speaking 100 ms of tone per word in two chunks (the first half of the words, then the rest),
    failing as `fault` says: before any audio, after the first chunk, or by never answering. `fault_after`
    sentences succeed first. `spoken`: every sentence it was asked for."""

    def __init__(self, fault: TtsFault, *, rate: int = 16000, fault_after: int = 0) -> None:
        self.fault = fault
        self.sample_rate = rate
        self.fault_after = fault_after
        self.spoken: list[str] = []

    async def synthesize(self, text: str, voice: Voice, locale: str) -> AsyncIterator[bytes]:
        self.spoken.append(text)
        failing = len(self.spoken) > self.fault_after
        words = len(text.split())
        first, rest = (words + 1) // 2, words - (words + 1) // 2
        await asyncio.sleep(0)
        if failing and self.fault == "before_audio":
            raise ConnectionResetError("the speech service dropped the connection")
        if failing and self.fault == "hang":
            await asyncio.Event().wait()
        yield tone(self.sample_rate, 100 * first)
        if failing and self.fault == "mid_sentence":
            raise ConnectionResetError("the speech service dropped the connection")
        if rest:
            yield tone(self.sample_rate, 100 * rest)


def words_of(pcm: bytes, rate: int) -> float:
    """How many 100 ms words `pcm` lasts."""
    return len(pcm) / 2 / rate / 0.1


