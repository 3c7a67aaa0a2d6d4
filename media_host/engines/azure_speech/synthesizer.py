"""Speech SDK synthesizers, pooled and pre-warmed, one lent per synthesis and then returned.

A `SpeechSynthesizer` without audio output (`audio_config=None`: headless, nothing played or written
locally) serves one synthesis after another, so unlike recognizers they are reused. The pool builds
`size` of them up front (`warm_up`) with their connection opened
(`Connection.from_speech_synthesizer(s).open(True)`), lends one per sentence and takes it back once
the synthesis is over (stopped first when the listener went away: a barge-in). With every
synthesizer lent (many calls speaking at once) a new one is built, in a worker thread; up to
`max_idle` are kept when they come back, the rest released.

Each synthesizer's events (started, synthesizing, completed, canceled) are read on the SDK's thread
and passed as plain values (`events.py`) to `PooledSynthesizer.sink`, which the current borrower
sets. Blocking calls (building, `.get()` on SDK futures, stopping, releasing) run in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import azure.cognitiveservices.speech as speechsdk

from media_host.engines.azure_speech.events import (
    SynthesisEvent,
    forward,
    synthesis_canceled_event,
    synthesis_completed_event,
    synthesis_started_event,
    synthesizing_event,
)

log = logging.getLogger(__name__)

SynthesisSink = Callable[[SynthesisEvent], None]


class PooledSynthesizer:
    """One headless synthesizer; `sink` receives its events (on SDK threads) for the current borrower."""

    def __init__(self, synthesizer: Any, connection: Any | None) -> None:
        self.synthesizer = synthesizer
        self.connection = connection
        self.sink: SynthesisSink | None = None
        self._request: Any | None = None  # the SDK future of the synthesis in progress
        self._lock = threading.Lock()

    @classmethod
    def build(cls, config: speechsdk.SpeechConfig, *, prewarm: bool = True) -> PooledSynthesizer:
        """Blocking (native set-up): call it in a worker thread. `prewarm` opens the connection now."""
        synthesizer = speechsdk.SpeechSynthesizer(speech_config=config, audio_config=None)
        pooled = cls(synthesizer, None)
        synthesizer.synthesis_started.connect(pooled.on_started)
        synthesizer.synthesizing.connect(pooled.on_synthesizing)
        synthesizer.synthesis_completed.connect(pooled.on_completed)
        synthesizer.synthesis_canceled.connect(pooled.on_canceled)
        if prewarm:
            pooled.connection = speechsdk.Connection.from_speech_synthesizer(synthesizer)
            pooled.connection.open(True)  # returns at once; the connection comes up in the background
        return pooled

    # --- SDK callbacks (SDK threads) -------------------------------------------------------------------
    def _emit(self, read: Callable[[Any], SynthesisEvent], evt: Any) -> None:
        forward(self.sink, read, evt, "synthesis")

    def on_started(self, evt: Any) -> None:
        self._emit(synthesis_started_event, evt)

    def on_synthesizing(self, evt: Any) -> None:
        self._emit(synthesizing_event, evt)

    def on_completed(self, evt: Any) -> None:
        self._emit(synthesis_completed_event, evt)

    def on_canceled(self, evt: Any) -> None:
        self._emit(synthesis_canceled_event, evt)

    # --- use ---------------------------------------------------------------------------------------------
    def speak(self, ssml: str) -> None:
        """Start synthesizing (returns at once: the audio comes as events)."""
        self._request = self.synthesizer.speak_ssml_async(ssml)

    def settle(self, stop: bool) -> None:
        """Blocking (worker thread): stop the synthesis if asked (the listener left), then collect the
        SDK future, which also releases its native handle. Afterwards the synthesizer is free."""
        with self._lock:
            request, self._request = self._request, None
            if stop:
                self.synthesizer.stop_speaking_async().get()
            if request is not None:
                request.get()

    def dispose(self) -> None:
        """Blocking (worker thread): unhook the callbacks and close the connection."""
        with self._lock:
            self.sink = None
            if self.synthesizer is None:
                return
            try:
                for signal in (self.synthesizer.synthesis_started, self.synthesizer.synthesizing,
                               self.synthesizer.synthesis_completed, self.synthesizer.synthesis_canceled):
                    signal.disconnect_all()
                if self.connection is not None:
                    self.connection.close()
            except Exception:
                log.warning("could not release an Azure Speech synthesizer cleanly", exc_info=True)
            self.connection = self.synthesizer = None


class SynthesizerPool:
    """Idle `PooledSynthesizer`s; `acquire`/`release` on the loop, blocking work in worker threads."""

    def __init__(self, build: Callable[[], PooledSynthesizer], size: int = 2, max_idle: int | None = None) -> None:
        if size < 0:
            raise ValueError("the pool size cannot be negative")
        self._build = build
        self.size = size
        self.max_idle = max(size, max_idle if max_idle is not None else size * 4)
        self._idle: list[PooledSynthesizer] = []
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closed = False

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def warm_up(self) -> None:
        """Build synthesizers (connections opening) until `size` are idle; failures are logged."""
        missing = self.size - len(self._idle)
        results = await asyncio.gather(*(asyncio.to_thread(self._build) for _ in range(max(0, missing))),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.warning("could not pre-warm an Azure Speech synthesizer", exc_info=result)
            elif self._closed:
                self._track(asyncio.ensure_future(asyncio.to_thread(result.dispose)))
            else:
                self._idle.append(result)

    async def acquire(self) -> PooledSynthesizer:
        if self._closed:
            raise RuntimeError("the synthesizer pool is closed")
        if self._idle:
            return self._idle.pop()  # the most recently used: its connection is the likeliest still open
        build = asyncio.ensure_future(asyncio.to_thread(self._build))
        try:
            return await asyncio.shield(build)
        except asyncio.CancelledError:
            build.add_done_callback(self._release_built)
            raise

    def release(self, synthesizer: PooledSynthesizer, *, stop: bool, healthy: bool = True) -> None:
        """Give a synthesizer back once its synthesis is settled (in a worker thread; returns at once).
        `stop`: the synthesis may still run. `healthy=False` (it failed): released, not reused."""
        synthesizer.sink = None
        self._track(asyncio.ensure_future(self._settle(synthesizer, stop, healthy)))

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for synthesizer in idle:
            self._track(asyncio.ensure_future(asyncio.to_thread(synthesizer.dispose)))
        pending = list(self._tasks)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # --- internals -------------------------------------------------------------------------------------
    async def _settle(self, synthesizer: PooledSynthesizer, stop: bool, healthy: bool) -> None:
        try:
            await asyncio.to_thread(synthesizer.settle, stop)
        except Exception:
            log.warning("could not stop an Azure Speech synthesis", exc_info=True)
            healthy = False
        if healthy and not self._closed and len(self._idle) < self.max_idle:
            self._idle.append(synthesizer)
        else:
            await asyncio.to_thread(synthesizer.dispose)

    def _release_built(self, build: asyncio.Future[PooledSynthesizer]) -> None:
        if not build.cancelled() and build.exception() is None:
            self.release(build.result(), stop=False)

    def _track(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("Azure Speech synthesizer housekeeping failed", exc_info=task.exception())
