"""Text to speech with hibari-tts (Apache-2.0): 24 kHz, far faster than real time (docs/performance.md).

Only the default voice ("heart", American English, female; Kokoro's `af_heart`) ships in the wheel.
Hibari's other voices would be downloaded from a model hub on first use, which the media host must
never do, so any other `voice.embedded` is mapped to "heart" (with one warning per name).

`synthesize()` runs hibari's sentence stream in the `tts` thread pool, one sentence per job, and
yields each sentence's PCM16 as soon as it is made (the next sentence is made while the caller
consumes this one). `voice.rate` ("+10%") becomes hibari's `speed` (clamped to 0.5-2.0). Output is
deterministic: the noise component is seeded, so the same text and rate give the same bytes.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any, Final

from agents.schema import Voice
from media_host.audio import float_to_pcm16
from media_host.engines.embedded import workers

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 24000
DEFAULT_VOICE: Final = "heart"
_RATE = re.compile(r"^([+-]?)(\d{1,3})%$")
MIN_SPEED: Final = 0.5
MAX_SPEED: Final = 2.0


def rate_to_speed(rate: str | None) -> float:
    """ "+10%" -> 1.1, "-20%" -> 0.8, None -> 1.0; clamped to what the engines accept (0.5-2.0)."""
    if not rate:
        return 1.0
    m = _RATE.match(rate.strip())
    if m is None:
        raise ValueError(f"speaking rate must look like +10% or -5%, not {rate!r}")
    pct = int(m.group(2)) * (-1 if m.group(1) == "-" else 1)
    return min(MAX_SPEED, max(MIN_SPEED, 1.0 + pct / 100))


class WarnOnce:
    """True the first time a (kind, value) is seen: for one warning per unknown voice or locale."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def __call__(self, kind: str, value: str) -> bool:
        with self._lock:
            if (kind, value) in self._seen:
                return False
            self._seen.add((kind, value))
            return True


class HibariTextToSpeech:
    """`TextToSpeech` over one shared `hibari.Hibari` (load it with `load_hibari`)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, engine: Any, *, seed: int = 0) -> None:
        self.engine = engine
        self.seed = seed
        self._warn = WarnOnce()
        self.bundled_voices = _bundled_voices()

    def resolve_voice(self, voice: Voice) -> str:
        """The hibari voice to use: `voice.embedded` if it is bundled ("heart" or its Kokoro name
        "af_heart"), else the default. Only the loaded voice can be used: one model per process."""
        name = voice.embedded
        resolved = self.bundled_voices.get(name) or self.bundled_voices.get(name.lower())
        if resolved is None or resolved != self.engine.voice:
            if self._warn("voice", name):
                log.warning("embedded voice %r is not in the installed hibari wheel; using %r", name, self.engine.voice,
                            extra={"engine": "hibari", "voice": name})
            return str(self.engine.voice)
        return resolved

    def check_locale(self, locale: str) -> None:
        if not locale.lower().startswith("en") and self._warn("locale", locale):
            log.warning("hibari speaks English only; %s text is read as English", locale,
                        extra={"engine": "hibari", "locale": locale})

    def sentences(self, text: str, speed: float = 1.0) -> Iterator[bytes]:
        """Blocking: PCM16 per sentence, on the calling thread."""
        for audio in self.engine.stream(text, speed=speed, seed=self.seed):
            if len(audio):
                yield float_to_pcm16(audio)

    async def synthesize(self, text: str, voice: Voice, locale: str) -> AsyncGenerator[bytes, None]:
        if not text.strip():
            return
        self.resolve_voice(voice)
        self.check_locale(locale)
        speed = rate_to_speed(voice.rate)
        async for chunk in workers.iterate_in("tts", lambda: self.sentences(text, speed)):
            yield chunk


def _bundled_voices() -> dict[str, str]:
    """Names (hibari's and Kokoro's, e.g. "heart" and "af_heart") of the voices inside the wheel."""
    from hibari.voices import VOICES  # noqa: PLC0415 - the engine loads with its model

    names: dict[str, str] = {}
    for name, spec in VOICES.items():
        if spec.get("bundled"):
            names[name] = name
            if spec.get("kokoro"):
                names[str(spec["kokoro"])] = name
    return names


def load_hibari(*, threads: int = 1, voice: str = DEFAULT_VOICE) -> Any:
    """Load hibari with a bundled voice (blocking, ~0.2-0.5 s) and its G2P (which hibari would
    otherwise load lazily, on the first sentence). Raises if `voice` is not in the wheel."""
    from hibari import Hibari  # noqa: PLC0415 - the engine loads with its model
    from hibari.voices import voice_path  # noqa: PLC0415

    started = time.perf_counter()
    voice_path(voice, download_missing=False)  # FileNotFoundError rather than a download
    engine = Hibari(voice=voice, threads=threads)
    _ = engine.g2p
    log.debug("hibari loaded", extra={"engine": "hibari", "ms": round((time.perf_counter() - started) * 1000)})
    return engine
