"""Text to speech with Azure AI Speech: `AzureTextToSpeech`, 24 kHz PCM16 streamed as it is made.

Each sentence becomes SSML in the agent's voice (`ssml.py`: its Azure name, style and rate, in the
agent's locale) and is spoken on a synthesizer borrowed from the pool (`synthesizer.py`). The audio
comes back in pieces, as the service synthesizes it (`synthesizing` events): each piece goes through
an `asyncio.Queue` to the caller as soon as it arrives, so playback starts on the first piece rather
than after the whole sentence. The output format is raw PCM (no WAV header; one is stripped if it
appears).

A cancellation by the service raises `SpeechServiceError` with its reason and code (the text is never
in the message); no audio event for `chunk_timeout_s` raises `SpeechTimeout`. When the listener stops
early (a barge-in closes the generator), the synthesis is stopped and the synthesizer goes back to the
pool once it has.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncGenerator
from typing import Final

import azure.cognitiveservices.speech as speechsdk

from agents.schema import Voice
from media_host.engines.azure_speech.config import OUTPUT_SAMPLE_RATE
from media_host.engines.azure_speech.events import SpeechServiceError, SpeechTimeout, SynthesisEvent, SynthesisRun, post
from media_host.engines.azure_speech.ssml import build_ssml
from media_host.engines.azure_speech.synthesizer import PooledSynthesizer, SynthesizerPool

log = logging.getLogger(__name__)

CHUNK_TIMEOUT_S: Final = 10.0  # longest wait for the service's next event (first audio included)
DEFAULT_POOL_SIZE: Final = 2


class AzureTextToSpeech:
    """`TextToSpeech` on Azure AI Speech: one pool of pre-warmed synthesizers for the process."""

    sample_rate = OUTPUT_SAMPLE_RATE

    def __init__(self, pool: SynthesizerPool, *, chunk_timeout_s: float = CHUNK_TIMEOUT_S) -> None:
        self.pool = pool
        self.chunk_timeout_s = chunk_timeout_s

    @classmethod
    def from_config(cls, config: speechsdk.SpeechConfig, *, pool_size: int = DEFAULT_POOL_SIZE,
                    chunk_timeout_s: float = CHUNK_TIMEOUT_S) -> AzureTextToSpeech:
        pool = SynthesizerPool(functools.partial(PooledSynthesizer.build, config), size=pool_size)
        return cls(pool, chunk_timeout_s=chunk_timeout_s)

    async def synthesize(self, text: str, voice: Voice, locale: str) -> AsyncGenerator[bytes, None]:
        if not text.strip():
            return
        ssml = build_ssml(text, voice, locale)
        synthesizer = await self.pool.acquire()
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[SynthesisEvent] = asyncio.Queue()
        run = SynthesisRun()
        healthy = True

        def on_event(event: SynthesisEvent) -> None:  # on an SDK thread
            post(loop, events.put_nowait, event)

        synthesizer.sink = on_event
        try:
            synthesizer.speak(ssml)
            while not run.finished:
                try:
                    async with asyncio.timeout(self.chunk_timeout_s):
                        event = await events.get()
                except TimeoutError:
                    raise SpeechTimeout("synthesis", "Timeout", "NoAudio") from None
                pcm = run.feed(event)
                if pcm:
                    yield pcm
        except SpeechServiceError as exc:
            healthy = False
            log.warning("Azure Speech synthesis failed", extra={"engine": "azure_speech", "reason": exc.reason,
                                                                "code": exc.code})
            raise
        except Exception:
            healthy = False
            raise
        finally:
            # Stopped first unless the service has finished it (completed or cancelled).
            self.pool.release(synthesizer, stop=not run.finished, healthy=healthy)

    async def warm_up(self) -> None:
        """Open the pool's connections ahead of the first call."""
        await self.pool.warm_up()

    async def aclose(self) -> None:
        await self.pool.aclose()
