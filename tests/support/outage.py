"""Engines that go down when a test says so, wrapping working ones (scripted or embedded).

`Outage` is the switch; the wrappers fail while it is down, as a fallback chain with no engine left does
(EnginesExhausted) or, with `error=`, as a lone engine does (its own exception). `VoiceprintTextToSpeech`
speaks deterministic audio that differs by text, so a test can find an exact clip in what the caller heard.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable

import numpy as np

from agents.schema import Voice
from media_host.engines.base import EnginesExhausted, SpeechToText, SttStream, TextToSpeech, Transcript

Failure = Callable[[str], BaseException]  # stage -> the exception raised


class Outage:
    """Which stages are down ("stt", "tts"); `failures` counts each failed call, by stage."""

    def __init__(self, *down: str, error: Failure = EnginesExhausted) -> None:
        self.down = set(down)
        self.error = error
        self.failures: dict[str, int] = {}

    def check(self, stage: str) -> None:
        if stage in self.down:
            self.failures[stage] = self.failures.get(stage, 0) + 1
            raise self.error(stage)


class OutageSpeechToText:
    def __init__(self, inner: SpeechToText, outage: Outage) -> None:
        self.inner, self.outage = inner, outage
        self.sample_rate = inner.sample_rate

    def stream(self, language: str) -> SttStream:
        return _OutageSttStream(self.inner.stream(language), self.outage)


class _OutageSttStream:
    def __init__(self, inner: SttStream, outage: Outage) -> None:
        self.inner, self.outage = inner, outage

    def push(self, pcm: bytes) -> None:
        self.inner.push(pcm)

    def partial(self) -> str | None:
        return self.inner.partial()

    async def finish(self) -> Transcript:
        self.outage.check("stt")
        return await self.inner.finish()

    async def aclose(self) -> None:
        await self.inner.aclose()


class OutageTextToSpeech:
    """Fails while "tts" is down, or (with `fail_after`) from the n+1th sentence on, after speaking n."""

    def __init__(self, inner: TextToSpeech, outage: Outage, fail_after: int | None = None) -> None:
        self.inner, self.outage, self.fail_after = inner, outage, fail_after
        self.sample_rate = inner.sample_rate
        self.spoken: list[str] = []

    async def synthesize(self, text: str, voice: Voice, locale: str) -> AsyncIterator[bytes]:
        if self.fail_after is not None and len(self.spoken) >= self.fail_after:
            self.outage.down.add("tts")
        self.outage.check("tts")
        self.spoken.append(text)
        async for chunk in self.inner.synthesize(text, voice, locale):
            yield chunk


class VoiceprintTextToSpeech:
    """100 ms of tone per word, each word's pitch taken from the word: a text's audio is its own."""

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate

    async def synthesize(self, text: str, voice: Voice, locale: str) -> AsyncIterator[bytes]:
        t = np.arange(self.sample_rate // 10) / self.sample_rate
        words = [np.sin(2 * np.pi * (400 + zlib.crc32(w.encode()) % 800) * t) * 4000 for w in text.split()]
        yield np.concatenate(words).astype("<i2").tobytes()


class BrokenTextToSpeech:
    """A TTS that cannot speak at all (at start-up, say)."""

    sample_rate = 16000

    def __init__(self) -> None:
        self.attempts = 0

    async def synthesize(self, text: str, voice: Voice, locale: str) -> AsyncIterator[bytes]:
        self.attempts += 1
        if self.attempts:  # always: an async generator that fails on its first step, as a dead engine does
            raise ConnectionError("speech service unreachable")
        yield b""
