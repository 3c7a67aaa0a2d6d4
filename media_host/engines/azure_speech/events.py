"""Azure Speech SDK events, mapped to the engine interfaces: plain values, no SDK handles.

The SDK calls back on its own threads with event objects that wrap native handles. Each callback
reads what it needs there (`*_event(evt)` below: text, reason, audio) into a small frozen value and
hands that value to the event loop (`post`). Everything after the hand-off, `RecognitionState` for
recognition and `SynthesisRun` for synthesis, is pure Python and runs on the loop, which is what the
unit tests drive (with stand-in event objects: SDK event objects cannot be built without a native
handle).

Errors carry the cancellation reason and code (and the service's detail text as an attribute, kept
out of the message), never what was said or synthesized.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import azure.cognitiveservices.speech as speechsdk

from media_host.engines.base import Transcript

log = logging.getLogger(__name__)

EMPTY_CONFIDENCE: Final = 0.0  # as the embedded STT: nothing heard, nothing to trust

T = TypeVar("T")


class SpeechServiceError(RuntimeError):
    """The Speech service cancelled a recognition or a synthesis (or did not answer in time)."""

    def __init__(self, operation: str, reason: str, code: str, details: str = "") -> None:
        super().__init__(f"Azure Speech {operation} failed: reason={reason} code={code}")
        self.operation = operation
        self.reason = reason
        self.code = code
        self.details = details  # the service's own words (may be long); for logs at the caller's discretion


class SpeechTimeout(SpeechServiceError, TimeoutError):
    """No answer from the service within the time a caller can wait."""


def post(loop: asyncio.AbstractEventLoop, callback: Callable[[T], object], value: T) -> None:
    """From an SDK thread: run `callback(value)` on the loop. Events that arrive after the loop has
    closed (a late callback at shutdown) are dropped: nobody is waiting for them any more."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, value)


def _name(value: Any) -> str:
    return str(getattr(value, "name", value))


# --- recognition -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recognizing:
    text: str


@dataclass(frozen=True, slots=True)
class Recognized:
    text: str
    confidence: float | None = None  # None when the result carries none (simple output format)


@dataclass(frozen=True, slots=True)
class RecognitionCanceled:
    is_error: bool  # False for the normal end of a pushed stream (EndOfStream) or our own stop
    reason: str
    code: str
    details: str = ""


@dataclass(frozen=True, slots=True)
class SessionStopped:
    pass


RecognitionEvent = Recognizing | Recognized | RecognitionCanceled | SessionStopped


def confidence_from_json(text: str | None) -> float | None:
    """NBest[0].Confidence of a detailed-format result, or None."""
    if not text:
        return None
    try:
        best = json.loads(text).get("NBest") or []
        value = best[0].get("Confidence") if best else None
        return None if value is None else min(1.0, max(0.0, float(value)))
    except (ValueError, TypeError, AttributeError, IndexError):
        return None


def recognizing_event(evt: Any) -> Recognizing:
    return Recognizing(str(evt.result.text or ""))


def recognized_event(evt: Any) -> Recognized | None:
    """None for a NoMatch (noise the service heard no words in) or an empty text."""
    result = evt.result
    if result.reason != speechsdk.ResultReason.RecognizedSpeech or not (result.text or "").strip():
        return None
    return Recognized(str(result.text).strip(), confidence_from_json(getattr(result, "json", None)))


def canceled_event(evt: Any) -> RecognitionCanceled:
    details = evt.cancellation_details
    reason = details.reason
    code = getattr(details, "code", None) or getattr(details, "error_code", None)
    return RecognitionCanceled(reason == speechsdk.CancellationReason.Error, _name(reason), _name(code),
                               str(getattr(details, "error_details", "") or ""))


@dataclass
class RecognitionState:
    """One utterance's recognition events, applied in order on the loop."""

    hypothesis: str = ""  # the service's current guess at the phrase being spoken
    finals: list[Recognized] = field(default_factory=list)
    error: RecognitionCanceled | None = None
    stopped: bool = False

    def apply(self, event: RecognitionEvent) -> None:
        if isinstance(event, Recognizing):
            self.hypothesis = event.text
        elif isinstance(event, Recognized):
            self.finals.append(event)
            self.hypothesis = ""
        elif isinstance(event, RecognitionCanceled):
            if event.is_error and self.error is None:
                self.error = event
        else:
            self.stopped = True

    @property
    def done(self) -> bool:
        """Nothing more will come: the session stopped, or the service failed."""
        return self.stopped or self.error is not None

    def partial(self) -> str | None:
        """What has been heard so far: the final phrases, then the current guess."""
        text = " ".join([*(f.text for f in self.finals), self.hypothesis]).strip()
        return text or None

    def transcript(self, engine_ms: float = 0.0, *, timed_out: bool = False) -> Transcript:
        """The final text. A failure (an error, or no end within the time allowed) raises, unless some
        phrases were already final: the caller's words are not thrown away because the end failed."""
        if not self.finals:
            if self.error is not None:
                raise SpeechServiceError("recognition", self.error.reason, self.error.code, self.error.details)
            if timed_out:
                raise SpeechTimeout("recognition", "Timeout", "NoSessionStop")
            return Transcript("", EMPTY_CONFIDENCE, engine_ms)
        text = " ".join(f.text for f in self.finals)
        # Each phrase's confidence weighted by its length: a long phrase says more than "yes".
        weighted = [(f.confidence, len(f.text)) for f in self.finals if f.confidence is not None]
        total = sum(n for _, n in weighted)
        confidence = sum(c * n for c, n in weighted) / total if total else 1.0
        return Transcript(text, confidence, engine_ms)


# --- synthesis -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SynthesisStarted:
    result_id: str


@dataclass(frozen=True, slots=True)
class SynthesisChunk:
    result_id: str
    audio: bytes


@dataclass(frozen=True, slots=True)
class SynthesisCompleted:
    result_id: str


@dataclass(frozen=True, slots=True)
class SynthesisCanceled:
    result_id: str
    reason: str
    code: str
    details: str = ""


SynthesisEvent = SynthesisStarted | SynthesisChunk | SynthesisCompleted | SynthesisCanceled


def synthesis_started_event(evt: Any) -> SynthesisStarted:
    return SynthesisStarted(str(evt.result.result_id))


def synthesizing_event(evt: Any) -> SynthesisChunk:
    return SynthesisChunk(str(evt.result.result_id), bytes(evt.result.audio_data or b""))


def synthesis_completed_event(evt: Any) -> SynthesisCompleted:
    return SynthesisCompleted(str(evt.result.result_id))


def synthesis_canceled_event(evt: Any) -> SynthesisCanceled:
    details = evt.result.cancellation_details
    if details is None:
        return SynthesisCanceled(str(evt.result.result_id), "Unknown", "Unknown")
    code = getattr(details, "error_code", None) or getattr(details, "code", None)
    return SynthesisCanceled(str(evt.result.result_id), _name(details.reason), _name(code),
                             str(getattr(details, "error_details", "") or ""))


def strip_wav_header(data: bytes) -> bytes:
    """The PCM after a RIFF/WAVE header, or `data` unchanged when it has none. The raw output format
    has none; this guards against a WAV format configured by mistake (a header played as audio is a
    loud click). A header cut across two chunks is not handled: the SDK sends it whole."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos:pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        if chunk_id == b"data":
            return data[pos + 8:]
        pos += 8 + size + (size & 1)
    return b""  # a header alone


class SynthesisRun:
    """One synthesis's events, applied on the loop: PCM16 out, in order.

    A pooled synthesizer serves one synthesis after another, so a late event from the previous one
    could reach this run: only events with the result id announced by `SynthesisStarted` count.
    The first audio is checked for a WAV header, and an odd trailing byte waits for the next chunk
    (PCM16 samples are never split).
    """

    def __init__(self) -> None:
        self.result_id: str | None = None
        self.finished = False
        self._first = True
        self._carry = b""

    def feed(self, event: SynthesisEvent) -> bytes:
        """PCM to play now (maybe empty). Raises `SpeechServiceError` when the service cancelled."""
        if self.finished:
            return b""
        if isinstance(event, SynthesisStarted):
            if self.result_id is None:
                self.result_id = event.result_id
            return b""
        if self.result_id is None or event.result_id != self.result_id:
            return b""  # before our start, or another synthesis's straggler
        if isinstance(event, SynthesisCompleted):
            self.finished = True
            return b""
        if isinstance(event, SynthesisCanceled):
            self.finished = True
            raise SpeechServiceError("synthesis", event.reason, event.code, event.details)
        audio = event.audio
        if self._first and audio:
            audio = strip_wav_header(audio)
            self._first = False
        audio = self._carry + audio
        cut = len(audio) & ~1
        self._carry = audio[cut:]
        return audio[:cut]


def forward(sink: Callable[[Any], None] | None, read: Callable[[Any], object | None], evt: Any, what: str) -> None:
    """Read an SDK event on the SDK's thread and hand it to `sink`; nothing may escape into that thread."""
    if sink is None:
        return  # not in use yet, or already given up on
    try:
        event = read(evt)
    except Exception:
        logging.getLogger(__name__).exception("could not read an Azure Speech %s event", what)
        return
    if event is not None:
        sink(event)
