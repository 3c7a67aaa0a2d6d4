"""Speech to text over a chain of engines (Azure Speech, then the embedded Whisper): no caller words lost.

A `FallbackSttStream` keeps the utterance's audio as it is pushed (one buffer per stream, bounded by
`max_utterance_s`) and forwards it to the first engine of the chain's plan (media_host/engines/chain.py:
the healthy engines, in order). When that engine's `finish()` fails, or passes the STT deadline, the
buffered audio is transcribed again by the next engine, resampled to its rate if it differs. When none
answers, `finish()` raises `EnginesExhausted` (media_host/engines/base.py), for the cascade's last resort.

With one engine there is nothing to re-transcribe on: no buffer is kept, and the deadline still applies.
The fallbacks a stream went through are in its `fallbacks` (for the call record).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

import numpy as np

from media_host.audio import resample
from media_host.audio.codecs import ODD_LENGTH_MESSAGE
from media_host.engines.base import EngineFallback, EnginesExhausted, SpeechToText, SttStream, Transcript
from media_host.engines.chain import EngineChain, Link, tried_detail
from media_host.engines.health import Probe
from media_host.engines.outcomes import failure_outcome

log = logging.getLogger(__name__)

# The longest utterance kept for a re-transcription: Whisper's own limit (whisper_stt.MAX_SECONDS, not
# imported here: that module imports CTranslate2), beyond which it drops the audio anyway.
MAX_UTTERANCE_S: Final = 60
PROBE_LANGUAGE: Final = "en-US"
PROBE_SECONDS: Final = 0.4  # long enough for Whisper to decode (it skips < 200 ms), short for Azure's bill


def probe_audio(rate: int) -> bytes:
    """A quiet 440 Hz tone (-26 dBFS): above Whisper's silence gate, so the probe runs a real decode."""
    t = np.arange(int(rate * PROBE_SECONDS)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 1600).astype("<i2").tobytes()


def stt_probe(engine: SpeechToText) -> Probe:
    """A short recognition on `engine`: it answers (any text), or the probe raises."""
    audio = probe_audio(engine.sample_rate)

    async def probe() -> None:
        stream = engine.stream(PROBE_LANGUAGE)
        try:
            stream.push(audio)
            await stream.finish()
        finally:
            await stream.aclose()

    return probe


class FallbackSpeechToText:
    """`SpeechToText` over `chain`; audio comes in at the chain's first engine's rate."""

    def __init__(self, chain: EngineChain[SpeechToText], *, max_utterance_s: int = MAX_UTTERANCE_S) -> None:
        self.chain = chain
        self.sample_rate = chain.links[0].engine.sample_rate
        self.max_bytes = max_utterance_s * self.sample_rate * 2

    def stream(self, language: str) -> FallbackSttStream:
        return FallbackSttStream(self, language)

    async def aclose(self) -> None:
        """Close the engines that hold connections (Azure Speech's recognizer pool), at shutdown."""
        for link in self.chain.links:
            close = getattr(link.engine, "aclose", None)
            if close is not None:
                await close()


class FallbackSttStream:
    """One caller utterance (`SttStream`) on the chain; `fallbacks` lists what it fell back from."""

    def __init__(self, stt: FallbackSpeechToText, language: str) -> None:
        self._stt = stt
        self._language = language
        self._plan, skipped = stt.chain.plan()
        self.fallbacks: list[EngineFallback] = skipped
        self._stream: SttStream | None = None
        self._push_failure: Exception | None = None  # the first engine broke while taking audio
        try:
            self._stream = self._plan[0].engine.stream(language)
        except Exception as exc:  # finish() moves on to the next engine
            self._push_failure = exc
        self._buffer: bytearray | None = bytearray() if len(self._plan) > 1 else None
        self._result: Transcript | None = None
        self._closed = False

    def push(self, pcm: bytes) -> None:
        if self._closed or self._result is not None:
            return
        if len(pcm) & 1:
            raise ValueError(ODD_LENGTH_MESSAGE)  # the caller's bug, not an engine failure
        buffer = self._buffer
        if buffer is not None and (room := self._stt.max_bytes - len(buffer)) > 0:
            buffer += pcm if len(pcm) <= room else pcm[:room]
        if self._stream is not None and self._push_failure is None:
            try:
                self._stream.push(pcm)
            except Exception as exc:  # kept for finish(): the next engine takes the buffered audio
                self._push_failure = exc

    def partial(self) -> str | None:
        if self._stream is None or self._push_failure is not None:
            return None
        return self._stream.partial()

    async def finish(self) -> Transcript:
        if self._result is not None:
            return self._result
        if self._closed:
            raise RuntimeError("the stream is closed")
        chain = self._stt.chain
        tried: list[tuple[str, str]] = []
        for index, link in enumerate(self._plan):
            try:
                transcript = await self._attempt(index, link)
            except Exception as exc:
                following = self._plan[index + 1] if index + 1 < len(self._plan) else None
                self.fallbacks.append(chain.failed(link, exc, following))
                tried.append((link.name, failure_outcome(exc)))
                await self._close_current()
                continue
            chain.succeeded(link)
            self._result = transcript
            self._buffer = None
            return transcript
        self._buffer = None
        raise EnginesExhausted("stt", tried_detail(tried))

    async def aclose(self) -> None:
        self._closed = True
        self._buffer = None
        await self._close_current()

    # --- internals -------------------------------------------------------------------------------------
    async def _attempt(self, index: int, link: Link[SpeechToText]) -> Transcript:
        if index == 0:
            if self._push_failure is not None:
                raise self._push_failure
            stream = self._stream
            if stream is None:
                raise RuntimeError("the stream is closed")
        else:
            stream = self._stream = link.engine.stream(self._language)
            audio, frame = self._replayed(link.engine.sample_rate), link.engine.sample_rate // 50 * 2
            for start in range(0, len(audio), frame):  # in 20 ms frames, as the pipeline pushes
                stream.push(audio[start:start + frame])
        async with asyncio.timeout(self._stt.chain.deadline_s):
            return await stream.finish()

    def _replayed(self, rate: int) -> bytes:
        """The utterance so far, at `rate`."""
        audio = bytes(self._buffer or b"")
        return audio if rate == self._stt.sample_rate else resample(audio, self._stt.sample_rate, rate)

    async def _close_current(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):  # a broken engine may fail to close too; it is done with
                await stream.aclose()
