"""Text to speech over a chain of engines (Azure Speech, then the embedded TTS): every sentence is spoken.

Each sentence (the cascade's speaker synthesizes a reply sentence by sentence) goes to the first engine of
the chain's plan (media_host/engines/chain.py: the healthy engines, in order):

- It fails before any audio, or its first audio (or any next chunk) is later than the TTS deadline: the
  same sentence goes to the next engine; the caller hears it once, a little later.
- It fails after some audio was played: the rest of that sentence is not said (saying it again from the
  start would repeat what the caller just heard), the synthesis ends there without raising, and the engine
  is marked down, so the reply continues from the next sentence on the next engine. The note says so
  (`mid_sentence`).
- No engine can start it: `EnginesExhausted` (media_host/engines/base.py), for the cascade's last resort.

Audio comes out at one rate, the chain's first engine's; an engine at another rate is resampled (one
`StreamResampler` per sentence, not per chunk). Voices: every engine is given the agent's `Voice` and picks
its own field from it (Azure its `azure` name, the embedded engines `embedded`), as without a chain.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Final

from agents.schema import Voice
from media_host.audio import StreamResampler
from media_host.engines.base import EngineFallback, EnginesExhausted, TextToSpeech
from media_host.engines.chain import EngineChain, tried_detail
from media_host.engines.health import Probe
from media_host.engines.outcomes import failure_outcome

PROBE_TEXT: Final = "OK."
PROBE_LOCALE: Final = "en-US"


class NoAudio(RuntimeError):
    """A probe synthesis ended without any audio."""


def tts_probe(engine: TextToSpeech) -> Probe:
    """A short synthesis on `engine`: its first audio arrives, or the probe raises."""

    async def probe() -> None:
        chunks = engine.synthesize(PROBE_TEXT, Voice(), PROBE_LOCALE)
        try:
            async for chunk in chunks:
                if chunk:
                    return
        finally:
            await _close(chunks)
        raise NoAudio("the probe synthesis gave no audio")

    return probe


class FallbackTextToSpeech:
    """`TextToSpeech` over `chain`, at the first engine's `sample_rate`."""

    def __init__(self, chain: EngineChain[TextToSpeech]) -> None:
        self.chain = chain
        self.sample_rate = chain.links[0].engine.sample_rate

    def synthesize(self, text: str, voice: Voice, locale: str) -> FallbackSynthesis:
        return FallbackSynthesis(self, text, voice, locale)

    async def aclose(self) -> None:
        """Close the engines that hold connections (Azure Speech's synthesizer pool), at shutdown."""
        for link in self.chain.links:
            close = getattr(link.engine, "aclose", None)
            if close is not None:
                await close()


class FallbackSynthesis:
    """One sentence's audio (an async iterator of PCM16 chunks); `fallbacks` lists what it fell back from."""

    def __init__(self, tts: FallbackTextToSpeech, text: str, voice: Voice, locale: str) -> None:
        self.fallbacks: list[EngineFallback] = []
        self._tts = tts
        self._chunks = self._run(text, voice, locale)

    def __aiter__(self) -> FallbackSynthesis:
        return self

    async def __anext__(self) -> bytes:
        return await anext(self._chunks)

    async def aclose(self) -> None:
        await self._chunks.aclose()

    async def _run(self, text: str, voice: Voice, locale: str) -> AsyncGenerator[bytes, None]:
        if not text.strip():
            return
        chain = self._tts.chain
        plan, skipped = chain.plan()
        self.fallbacks.extend(skipped)
        tried: list[tuple[str, str]] = []
        for index, link in enumerate(plan):
            played = False
            resampler = (StreamResampler(link.engine.sample_rate, self._tts.sample_rate)
                         if link.engine.sample_rate != self._tts.sample_rate else None)
            chunks = link.engine.synthesize(text, voice, locale)
            try:
                while (chunk := await self._next(chunks)) is not None:
                    if resampler is not None:
                        chunk = resampler.process(chunk)
                    if chunk:
                        played = True
                        yield chunk
                if resampler is not None and (tail := resampler.flush()):
                    yield tail
            except Exception as exc:
                if played:  # the caller heard the start: the next sentence goes to the next engine
                    self.fallbacks.append(chain.failed(link, exc, chain.next_up(link), mid_sentence=True))
                    return
                following = plan[index + 1] if index + 1 < len(plan) else None
                self.fallbacks.append(chain.failed(link, exc, following))
                tried.append((link.name, failure_outcome(exc)))
                continue
            finally:
                await _close(chunks)
            chain.succeeded(link)
            return
        raise EnginesExhausted("tts", tried_detail(tried))

    async def _next(self, chunks: AsyncIterator[bytes]) -> bytes | None:
        """The engine's next chunk (None: the sentence is done), within the TTS deadline."""
        async with asyncio.timeout(self._tts.chain.deadline_s):
            return await anext(chunks, None)


async def _close(chunks: AsyncIterator[bytes]) -> None:
    """Close an engine's synthesis (Azure gives its synthesizer back); a broken one may fail to close."""
    close = getattr(chunks, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
