"""Speech SDK recognizers, pooled and pre-warmed per language, one per caller utterance.

A recognizer reads from the `PushAudioInputStream` it was created with, and a push stream, once
closed (which is how the end of an utterance is told), cannot be reopened. So a recognizer serves one
utterance and is then disposed of; what is pooled is the set-up. Each `RecognizerSession` is built
ahead of need, in a worker thread: push stream, recognizer, event wiring, and its service connection
opened (`Connection.from_recognizer(r).open(True)`: the WebSocket and, with Entra ID, the token).
The pool keeps `size` of them ready per language (languages are added on first use, or up front with
`warm_up`) and builds a replacement as soon as one is taken, so a new utterance starts on an open
connection and does not pay the connection set-up. An empty pool (a burst of turns)
builds one on the spot, in a thread.

A ready connection left idle may be closed by the service after a while; the SDK then reconnects
when recognition starts, which costs the set-up the pool was meant to save, and nothing else.

Everything blocking (building, `.get()` on SDK futures, stopping, releasing) runs in worker threads,
never on the event loop. SDK events are read on the SDK's thread and passed on as plain values
(`events.py`) through `RecognizerSession.sink`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import azure.cognitiveservices.speech as speechsdk

from media_host.engines.azure_speech.events import (
    RecognitionEvent,
    SessionStopped,
    canceled_event,
    forward,
    recognized_event,
    recognizing_event,
)

log = logging.getLogger(__name__)

RecognitionSink = Callable[[RecognitionEvent], None]


class Session(Protocol):
    """What a stream needs of a recognizer session (`RecognizerSession`; a fake in unit tests)."""

    sink: RecognitionSink | None

    def write(self, pcm: bytes) -> None: ...

    def end_audio(self) -> None: ...

    def start(self) -> None: ...

    def dispose(self) -> None: ...


class RecognizerSession:
    """One recognizer on its own push stream (single use). `sink` receives its events, on SDK threads."""

    def __init__(self, recognizer: Any, stream: Any, connection: Any | None, language: str) -> None:
        self.recognizer = recognizer
        self.stream = stream
        self.connection = connection
        self.language = language
        self.created = time.monotonic()
        self.sink: RecognitionSink | None = None
        self._lock = threading.Lock()  # start and dispose may run in two worker threads at once
        self._started = False
        self._disposed = False

    @classmethod
    def build(cls, config: speechsdk.SpeechConfig, language: str, sample_rate: int, *,
              prewarm: bool = True) -> RecognizerSession:
        """Blocking (native set-up): call it in a worker thread. `prewarm` opens the connection now."""
        audio_format = speechsdk.audio.AudioStreamFormat(samples_per_second=sample_rate, bits_per_sample=16,
                                                         channels=1)
        stream = speechsdk.audio.PushAudioInputStream(stream_format=audio_format)
        recognizer = speechsdk.SpeechRecognizer(speech_config=config, language=language,
                                                audio_config=speechsdk.audio.AudioConfig(stream=stream))
        session = cls(recognizer, stream, None, language)
        recognizer.recognizing.connect(session.on_recognizing)
        recognizer.recognized.connect(session.on_recognized)
        recognizer.canceled.connect(session.on_canceled)
        recognizer.session_stopped.connect(session.on_session_stopped)
        if prewarm:
            session.connection = speechsdk.Connection.from_recognizer(recognizer)
            session.connection.open(True)  # returns at once; the connection comes up in the background
        return session

    # --- SDK callbacks (SDK threads): read the event here, while its native handle is alive ---------
    def _emit(self, read: Callable[[Any], RecognitionEvent | None], evt: Any) -> None:
        forward(self.sink, read, evt, "recognition")

    def on_recognizing(self, evt: Any) -> None:
        self._emit(recognizing_event, evt)

    def on_recognized(self, evt: Any) -> None:
        self._emit(recognized_event, evt)

    def on_canceled(self, evt: Any) -> None:
        self._emit(canceled_event, evt)

    def on_session_stopped(self, evt: Any) -> None:
        self._emit(lambda _: SessionStopped(), evt)

    # --- use ---------------------------------------------------------------------------------------
    def write(self, pcm: bytes) -> None:
        """Caller audio (non-blocking: the SDK copies it into its buffer)."""
        self.stream.write(pcm)

    def end_audio(self) -> None:
        """No more audio: the service finishes the last phrase, then the session stops."""
        self.stream.close()

    def start(self) -> None:
        """Blocking: start continuous recognition and wait until it runs (worker thread)."""
        with self._lock:
            if self._disposed or self._started:
                return
            self._started = True
            self.recognizer.start_continuous_recognition_async().get()

    def dispose(self) -> None:
        """Blocking: stop recognition, unhook the callbacks, close the connection (worker thread)."""
        with self._lock:
            if self._disposed:
                return
            self._disposed = True
            self.sink = None
            try:
                if self._started:
                    self.recognizer.stop_continuous_recognition_async().get()
                for signal in (self.recognizer.recognizing, self.recognizer.recognized, self.recognizer.canceled,
                               self.recognizer.session_stopped):
                    signal.disconnect_all()
                if self.connection is not None:
                    self.connection.close()
            except Exception:  # releasing must not fail a call; the native handles are freed with the objects
                log.warning("could not stop an Azure Speech recognizer cleanly", exc_info=True)
            self.connection = self.recognizer = self.stream = None


class RecognizerPool:
    """Ready `RecognizerSession`s per language; `acquire` on the loop, building in worker threads."""

    def __init__(self, build: Callable[[str], RecognizerSession], size: int = 2) -> None:
        if size < 0:
            raise ValueError("the pool size cannot be negative")
        self._build = build
        self.size = size
        self._ready: dict[str, deque[RecognizerSession]] = {}
        self._building: dict[str, int] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closed = False

    def ready(self, language: str) -> int:
        return len(self._ready.get(language, ()))

    async def acquire(self, language: str) -> RecognizerSession:
        """A ready session (a replacement is started), else a new one built now."""
        if self._closed:
            raise RuntimeError("the recognizer pool is closed")
        queue = self._ready.setdefault(language, deque())
        session = queue.popleft() if queue else None
        self._refill(language)
        if session is not None:
            return session
        build = asyncio.ensure_future(asyncio.to_thread(self._build, language))
        try:
            return await asyncio.shield(build)
        except asyncio.CancelledError:
            # The utterance was abandoned while its recognizer was being built: release it once built.
            build.add_done_callback(self._dispose_built)
            raise

    async def warm_up(self, languages: list[str] | tuple[str, ...]) -> None:
        """Fill the pool for `languages` and wait until it is (failures are logged, not raised)."""
        for language in languages:
            self._refill(language)
        pending = list(self._tasks)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def dispose(self, session: Session) -> None:
        """Release a used session, in a worker thread (returns at once)."""
        session.sink = None
        self._track(asyncio.ensure_future(asyncio.to_thread(session.dispose)))

    async def aclose(self) -> None:
        self._closed = True
        for queue in self._ready.values():
            while queue:
                self.dispose(queue.popleft())
        pending = list(self._tasks)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # --- internals -----------------------------------------------------------------------------------
    def _refill(self, language: str) -> None:
        missing = self.size - self.ready(language) - self._building.get(language, 0)
        for _ in range(max(0, missing)):
            self._building[language] = self._building.get(language, 0) + 1
            self._track(asyncio.ensure_future(self._add(language)))

    async def _add(self, language: str) -> None:
        try:
            session = await asyncio.to_thread(self._build, language)
        except Exception:
            log.warning("could not pre-warm an Azure Speech recognizer", exc_info=True,
                        extra={"engine": "azure_speech", "language": language})
            return
        finally:
            self._building[language] -= 1
        if self._closed:
            self.dispose(session)
        else:
            self._ready.setdefault(language, deque()).append(session)

    def _dispose_built(self, build: asyncio.Future[RecognizerSession]) -> None:
        if not build.cancelled() and build.exception() is None:
            self.dispose(build.result())

    def _track(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("Azure Speech recognizer housekeeping failed", exc_info=task.exception())
