"""Speech to text with Azure AI Speech: `AzureSpeechToText` and its per-utterance `AzureSttStream`.

16 kHz PCM16 in (the rate the service recognizes at; the cascade resamples the caller to it). On its
first audio, a stream takes a pre-warmed recognizer from the pool (`recognizer.py`) and runs continuous
recognition on it: audio is pushed as it comes (held until the recognizer is there), `recognizing` events give
`partial()`, `recognized` events are the utterance's final phrases. `finish()` closes the audio,
waits for the service to end the session (at most `finish_timeout_s`) and returns the phrases joined,
with their length-weighted confidence, and the wait as `engine_ms`.

Failures: a cancellation with an error (authentication, quota, network) or no session end in time
raises `SpeechServiceError` (`SpeechTimeout` for the latter) from `finish()`, unless some phrases were
already final: those are returned (with a warning logged), since the caller did say them. No speech
at all gives an empty transcript with confidence 0.0, as the embedded STT.

SDK callbacks come on SDK threads; they are handed to the loop with `call_soon_threadsafe`. Nothing
here blocks the loop: building, starting and releasing recognizers run in worker threads.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Final, Protocol

import azure.cognitiveservices.speech as speechsdk

from media_host.engines.azure_speech.events import EMPTY_CONFIDENCE, RecognitionEvent, RecognitionState, post
from media_host.engines.azure_speech.recognizer import RecognizerPool, RecognizerSession, Session
from media_host.engines.base import Transcript

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 16000
FINISH_TIMEOUT_S: Final = 3.0  # longest wait, after the audio ends, for the service to end the session
DEFAULT_POOL_SIZE: Final = 2  # ready recognizers per language: a turn and a speculative turn at once


class SessionSource(Protocol):
    """Where sessions come from and go back to (`RecognizerPool`)."""

    async def acquire(self, language: str) -> Session: ...

    def dispose(self, session: Session) -> None: ...


class AzureSttStream:
    """One caller utterance (`SttStream`), on one recognizer session. Create it on the event loop."""

    def __init__(self, source: SessionSource, language: str, *, finish_timeout_s: float = FINISH_TIMEOUT_S) -> None:
        self._source = source
        self._language = language
        self._finish_timeout_s = finish_timeout_s
        self._loop = asyncio.get_running_loop()
        self._state = RecognitionState()
        self._done = asyncio.Event()
        self._pending: list[bytes] = []  # audio pushed before the session is there
        self._session: Session | None = None
        self._ended = False  # finish() was called: no more audio
        self._closed = False
        self._result: Transcript | None = None
        self._opening: asyncio.Task[Session] | None = None  # taken on the first audio: silence costs nothing

    async def _open(self) -> Session:
        session = await self._source.acquire(self._language)
        self._session = session
        session.sink = self._on_sdk_event
        for pcm in self._pending:
            session.write(pcm)
        self._pending.clear()
        await asyncio.to_thread(session.start)
        return session

    def _on_sdk_event(self, event: RecognitionEvent) -> None:
        """On an SDK thread: pass the event to the loop."""
        post(self._loop, self._apply, event)

    def _apply(self, event: RecognitionEvent) -> None:
        if self._closed:
            return
        self._state.apply(event)
        if self._state.done:
            self._done.set()

    # --- SttStream -------------------------------------------------------------------------------------
    def push(self, pcm: bytes) -> None:
        if self._closed or self._ended:
            return  # late frames after the end or a hang-up are ignored
        if len(pcm) & 1:
            raise ValueError("PCM16 audio must have an even number of bytes")
        if not pcm:
            return
        if self._opening is None:
            self._opening = self._loop.create_task(self._open(), name="azure-stt-open")
        if self._session is None:
            self._pending.append(bytes(pcm))
        else:
            self._session.write(bytes(pcm))

    def partial(self) -> str | None:
        return self._state.partial()

    async def finish(self) -> Transcript:
        if self._result is not None:
            return self._result
        if self._closed:
            raise RuntimeError("the stream is closed")
        self._ended = True
        if self._opening is None:
            self._result = Transcript("", EMPTY_CONFIDENCE, 0.0)  # nothing to recognize: no round trip
            return self._result
        started = time.perf_counter()
        session = await self._opening
        session.end_audio()
        timed_out = False
        try:
            async with asyncio.timeout(self._finish_timeout_s):
                await self._done.wait()
        except TimeoutError:
            timed_out = True
        engine_ms = (time.perf_counter() - started) * 1000
        if (timed_out or self._state.error is not None) and self._state.finals:
            log.warning("Azure Speech recognition ended badly; keeping the phrases already final",
                        extra={"engine": "azure_speech", "timed_out": timed_out,
                               "reason": self._state.error.reason if self._state.error else "Timeout"})
        self._result = self._state.transcript(engine_ms, timed_out=timed_out)
        return self._result

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        opening = self._opening
        if opening is not None and not opening.done():
            opening.cancel()  # the pool releases a recognizer built after this
        elif opening is not None and not opening.cancelled():
            opening.exception()  # retrieved: a failed open was already reported by finish(), or is moot
        session, self._session = self._session, None
        if session is not None:
            session.sink = None
            self._source.dispose(session)


class AzureSpeechToText:
    """`SpeechToText` on Azure AI Speech: one pool of pre-warmed recognizers for the process."""

    sample_rate = SAMPLE_RATE

    def __init__(self, config: speechsdk.SpeechConfig, *, pool_size: int = DEFAULT_POOL_SIZE,
                 finish_timeout_s: float = FINISH_TIMEOUT_S) -> None:
        self.config = config
        self.finish_timeout_s = finish_timeout_s
        self.pool = RecognizerPool(functools.partial(_build_session, config), size=pool_size)

    def stream(self, language: str) -> AzureSttStream:
        return AzureSttStream(self.pool, language, finish_timeout_s=self.finish_timeout_s)

    async def warm_up(self, languages: list[str] | tuple[str, ...] = ("en-US",)) -> None:
        """Open connections for `languages` ahead of the first call."""
        await self.pool.warm_up(languages)

    async def aclose(self) -> None:
        await self.pool.aclose()


def _build_session(config: speechsdk.SpeechConfig, language: str) -> RecognizerSession:
    return RecognizerSession.build(config, language, SAMPLE_RATE)

