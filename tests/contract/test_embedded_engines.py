"""The embedded engines for real: silero VAD, Whisper tiny.en STT, hibari and piper TTS (no mocks).

Models load once for the module (load_embedded caches them per process). Speech is made by the TTS
engines themselves with pinned noise, so every run hears the same audio. Whisper writes numbers as
digits, so transcripts are compared after the formatting-only normalisation of local-engines.md.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
import statistics
import threading
import time
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest

from agents.schema import Voice
from media_host.audio import float_to_pcm16, frame_bytes, resample
from media_host.engines.base import (
    SpeechToText,
    SttStream,
    TextToSpeech,
    VadEvent,
    VadFactory,
    VoiceActivityDetector,
)
from media_host.engines.embedded import build, workers
from media_host.engines.embedded.hibari_tts import HibariTextToSpeech, rate_to_speed
from media_host.engines.embedded.vad import SileroVadFactory, SileroVoiceActivityDetector
from media_host.engines.embedded.whisper_stt import WhisperSpeechToText

CARD = "My card was stolen, please block it."
BIRTH = "My date of birth is March third nineteen eighty."
SENTENCES = [CARD, BIRTH]
VOICE = Voice()
STT_RATE = 16000

# Formatting-only normalisation (as in local-engines.md): digits Whisper writes -> the words spoken.
_WORDS = {"3rd": "third", "1980": "nineteen eighty", "4567": "four five six seven"}


def normalise(text: str) -> str:
    # Whisper writes a date's day as "3rd" or "3": after a month name both are the ordinal spoken.
    text = re.sub(r"\b(march) 3(rd)?\b", r"\1 third", text.lower())
    words = re.sub(r"[^\w\s']", " ", text).split()
    return " ".join(_WORDS.get(w, w) for w in words)


async def synthesize(tts: TextToSpeech, text: str, voice: Voice = VOICE) -> bytes:
    return b"".join([chunk async for chunk in tts.synthesize(text, voice, "en-US")])


async def transcribe(stt: SpeechToText, pcm16k: bytes) -> str:
    stream = stt.stream("en-US")
    step = frame_bytes(STT_RATE)
    for i in range(0, len(pcm16k), step):  # as the pipeline feeds it: 20 ms frames
        stream.push(pcm16k[i : i + step])
    transcript = await stream.finish()
    await stream.aclose()
    return transcript.text


def samples(pcm: bytes) -> npt.NDArray[np.float64]:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768


def speech_bounds_ms(pcm: bytes, rate: int) -> tuple[float, float]:
    """Where the voiced audio begins and ends: the first and last 10 ms block above -50 dBFS RMS."""
    x = samples(pcm)
    block = rate // 100
    n = len(x) // block
    rms = np.sqrt(np.mean(x[: n * block].reshape(n, block) ** 2, axis=1))
    loud = np.nonzero(rms > 10 ** (-50 / 20))[0]
    return float(loud[0] * 10), float((loud[-1] + 1) * 10)


def run_vad(detector: SileroVoiceActivityDetector, pcm: bytes) -> list[VadEvent]:
    step = frame_bytes(detector.sample_rate)
    events: list[VadEvent] = []
    for i in range(0, len(pcm) - step + 1, step):
        events += detector.process(pcm[i : i + step])
    return events


def noise(seconds: float, rate: int, rms: float, seed: int = 7) -> bytes:
    rng = np.random.default_rng(seed)
    return float_to_pcm16(rng.normal(0.0, rms, int(seconds * rate)).astype(np.float32))


# --- fixtures: one load per process, shared by the module ---------------------------------------------
@pytest.fixture(scope="module")
async def engines() -> tuple[VadFactory, SpeechToText, TextToSpeech]:
    started = time.perf_counter()
    loaded = await build.load_embedded("hibari")
    print(f"\nload_embedded(hibari): {(time.perf_counter() - started) * 1000:.0f} ms; {build.timings}")
    return loaded


@pytest.fixture(scope="module")
def stt(engines: tuple[VadFactory, SpeechToText, TextToSpeech]) -> WhisperSpeechToText:
    assert isinstance(engines[1], WhisperSpeechToText)
    return engines[1]


@pytest.fixture(scope="module")
def hibari(engines: tuple[VadFactory, SpeechToText, TextToSpeech]) -> HibariTextToSpeech:
    assert isinstance(engines[2], HibariTextToSpeech)
    return engines[2]


@pytest.fixture(scope="module")
async def speech(hibari: HibariTextToSpeech) -> dict[str, bytes]:
    """Each test sentence, synthesized once (24 kHz)."""
    return {text: await synthesize(hibari, text) for text in SENTENCES}


# --- STT <- TTS round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize("text", SENTENCES)
async def test_hibari_then_whisper_round_trip(stt: WhisperSpeechToText, speech: dict[str, bytes], text: str) -> None:
    pcm = resample(speech[text], 24000, STT_RATE)
    stream = stt.stream("en-US")
    stream.push(pcm)
    assert stream.partial() is None
    transcript = await stream.finish()
    await stream.aclose()
    assert normalise(transcript.text) == normalise(text), transcript.text
    assert 0.5 < transcript.confidence <= 1.0
    assert transcript.engine_ms > 0
    print(f"\n{len(pcm) / 2 / STT_RATE:.2f} s utterance: {transcript.engine_ms:.0f} ms STT -> {transcript.text!r}")


@pytest.mark.parametrize("text", SENTENCES)
async def test_round_trip_through_an_8khz_telephone_line(stt: WhisperSpeechToText, speech: dict[str, bytes],
                                                         text: str) -> None:
    narrowband = resample(speech[text], 24000, 8000)  # what the caller's phone line carries
    heard = await transcribe(stt, resample(narrowband, 8000, STT_RATE))
    assert normalise(heard) == normalise(text), heard


async def test_piper_voice_round_trip(stt: WhisperSpeechToText) -> None:
    pytest.importorskip("piper", reason="piper-tts is the optional GPL extra (requirements-piper.txt)")
    piper = await asyncio.to_thread(build.get_piper_tts)
    await build.warm_up(None, piper)
    assert piper.sample_rate == 22050
    started = time.perf_counter()
    first_chunk_ms = None
    chunks = []
    async for chunk in piper.synthesize(CARD + " " + BIRTH, VOICE, "en-US"):
        first_chunk_ms = first_chunk_ms or (time.perf_counter() - started) * 1000
        chunks.append(chunk)
    assert len(chunks) == 2  # one per sentence
    for chunk, text in zip(chunks, SENTENCES, strict=True):
        heard = await transcribe(stt, resample(chunk, piper.sample_rate, STT_RATE))
        assert normalise(heard) == normalise(text), heard
    print(f"\npiper: first chunk {first_chunk_ms:.0f} ms, {sum(map(len, chunks)) / 2 / 22050:.2f} s of audio")
    # Noise pinned: the same text is the same audio.
    assert await synthesize(piper, CARD) == chunks[0]


async def test_piper_can_declare_24khz() -> None:
    pytest.importorskip("piper", reason="piper-tts is the optional GPL extra (requirements-piper.txt)")
    native = await asyncio.to_thread(build.get_piper_tts)
    at_24k = await asyncio.to_thread(lambda: build.get_piper_tts(output_rate=24000))
    assert at_24k.sample_rate == 24000
    a, b = await synthesize(native, "Yes."), await synthesize(at_24k, "Yes.")
    assert abs(len(b) / len(a) - 24000 / 22050) < 0.001


# --- STT edge cases -----------------------------------------------------------------------------------
async def test_stt_of_silence_and_tiny_audio_is_empty_without_the_model(stt: WhisperSpeechToText) -> None:
    for pcm in (bytes(2 * STT_RATE * 2), noise(2.0, STT_RATE, 0.0005), bytes(640), b""):
        stream = stt.stream("en-US")
        stream.push(pcm)
        transcript = await stream.finish()
        assert transcript.text == ""
        assert transcript.engine_ms == 0.0  # gated: the model never ran
        await stream.aclose()


async def test_stt_stream_buffers_long_utterances_and_is_reusable(stt: WhisperSpeechToText,
                                                                  speech: dict[str, bytes]) -> None:
    stream = stt.stream("en-US")
    for _ in range(500):  # 10 s of 20 ms frames: past the 8 s preallocation
        stream.push(bytes(frame_bytes(STT_RATE)))
    assert stream.buffered_ms == 10_000
    assert (await stream.finish()).text == ""
    assert stream.buffered_ms == 0  # finish() consumed the utterance; the stream takes the next one
    stream.push(resample(speech[CARD], 24000, STT_RATE))
    assert normalise((await stream.finish()).text) == normalise(CARD)
    await stream.aclose()
    stream.push(bytes(640))  # late frames after close are ignored
    assert (await stream.finish()).text == ""


# --- TTS behaviour ------------------------------------------------------------------------------------
async def test_hibari_streams_one_chunk_per_sentence_deterministically(hibari: HibariTextToSpeech) -> None:
    text = "Thank you for calling. Your card is now blocked. Is there anything else?"
    started = time.perf_counter()
    first_ms = None
    chunks = []
    async for chunk in hibari.synthesize(text, VOICE, "en-US"):
        first_ms = first_ms or (time.perf_counter() - started) * 1000
        chunks.append(chunk)
    total_s = time.perf_counter() - started
    audio_s = sum(map(len, chunks)) / 2 / hibari.sample_rate
    assert len(chunks) == 3
    assert all(len(c) % 2 == 0 and len(c) > 0 for c in chunks)
    assert b"".join(chunks) == await synthesize(hibari, text)  # seeded: same text, same bytes
    print(f"\nhibari: first chunk {first_ms:.0f} ms, RTF {total_s / audio_s:.3f} ({audio_s:.2f} s audio)")


async def test_hibari_rate_and_voice_mapping(hibari: HibariTextToSpeech, caplog: pytest.LogCaptureFixture) -> None:
    assert rate_to_speed("+10%") == pytest.approx(1.1)
    assert rate_to_speed("-20%") == pytest.approx(0.8)
    assert rate_to_speed("+300%") == 2.0
    normal = await synthesize(hibari, CARD)
    faster = await synthesize(hibari, CARD, Voice(rate="+25%"))
    assert len(faster) < 0.9 * len(normal)
    assert hibari.resolve_voice(Voice(embedded="af_heart")) == "heart"
    with caplog.at_level(logging.WARNING, logger="media_host.engines.embedded.hibari_tts"):
        other = await synthesize(hibari, CARD, Voice(embedded="bf_emma"))  # not in the wheel: no download
        await synthesize(hibari, "Yes.", Voice(embedded="bf_emma"))
    assert other == normal  # the bundled default voice
    assert sum("bf_emma" in r.getMessage() for r in caplog.records) == 1  # warned once
    assert [c async for c in hibari.synthesize("  ", VOICE, "en-US")] == []


async def test_tts_stopped_early_leaves_the_pool_usable(hibari: HibariTextToSpeech) -> None:
    text = " ".join(["This is a long answer that the caller interrupts."] * 6)
    stream = hibari.synthesize(text, VOICE, "en-US")
    first = await anext(stream)
    assert first
    await stream.aclose()  # barge-in
    assert await synthesize(hibari, "Yes.")


# --- VAD ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [16000, 8000])
async def test_vad_finds_one_utterance_padded_with_silence(speech: dict[str, bytes], rate: int) -> None:
    factory = await asyncio.to_thread(build.get_vad_factory, rate)
    lead, tail = 0.6, 1.2
    for text in SENTENCES:
        voiced = resample(speech[text], 24000, rate)
        pcm = bytes(int(lead * rate) * 2) + voiced + bytes(int(tail * rate) * 2)
        start, end = speech_bounds_ms(speech[text], 24000)  # the truth: the full-band original
        start, end = start + lead * 1000, end + lead * 1000
        detector = factory(500)
        step = frame_bytes(rate)
        events: list[VadEvent] = []
        detected_at: dict[str, float] = {}
        for i in range(0, len(pcm) - step + 1, step):
            for event in detector.process(pcm[i : i + step]):
                events.append(event)
                detected_at[event.kind] = detector.position_ms  # when the pipeline learns of it
        detector.close()
        # A pause (the caller has been quiet 300 ms) comes before the end, dated like it.
        assert [e.kind for e in events] == ["start", "pause", "end"], events
        assert events[1].at_ms == events[2].at_ms
        assert detected_at["end"] - detected_at["pause"] >= 150  # noticed well before the end
        events = [e for e in events if e.kind != "pause"]
        assert abs(events[0].at_ms - start) <= 100, (events, start)
        assert abs(events[1].at_ms - end) <= 100, (events, end)
        onset_to_start = detected_at["start"] - start
        assert onset_to_start <= 150  # barge-in budget: react within ~150 ms of speech onset
        assert detected_at["end"] - end >= 500  # the end waits for end_of_speech_ms of silence
        print(f"\nVAD {rate} Hz: start {events[0].at_ms - start:+.0f} ms, end {events[1].at_ms - end:+.0f} ms; "
              f"start known {onset_to_start:.0f} ms after onset")


@pytest.mark.parametrize("rate", [16000, 8000])
async def test_vad_fires_nothing_on_silence_or_low_noise(rate: int) -> None:
    factory = await asyncio.to_thread(build.get_vad_factory, rate)
    for pcm in (bytes(5 * rate * 2), noise(5.0, rate, 0.003), noise(5.0, rate, 0.01, seed=11)):  # -50, -40 dBFS
        detector = factory(500)
        assert run_vad(detector, pcm) == []
        detector.close()


async def test_vad_state_does_not_leak_between_calls(speech: dict[str, bytes]) -> None:
    factory = SileroVadFactory(16000, spare=1, max_idle=1)
    await asyncio.to_thread(factory.prepare)
    voiced = resample(speech[CARD], 24000, 16000)
    first = factory(500)
    events = run_vad(first, voiced[: len(voiced) // 2])  # hang up mid-sentence
    assert [e.kind for e in events] == ["start"]
    assert first.in_speech
    first.close()  # its model goes back to the spares, reset
    second = factory(300)
    assert second.end_of_speech_ms == 300
    assert run_vad(second, bytes(3 * 16000 * 2)) == []  # no "end" for the other call's turn
    assert second.position_ms == 3000
    second.end_of_speech_ms = 800
    events = [e for e in run_vad(second, voiced + bytes(16000 * 2)) if e.kind != "pause"]
    assert [e.kind for e in events] == ["start", "end"]
    assert events[0].at_ms > 3000  # stream positions are this call's own
    second.reset()
    assert not second.in_speech
    assert run_vad(second, bytes(16000 * 2)) == []
    assert factory.built_on_loop == 0


async def test_vad_per_frame_cost(speech: dict[str, bytes]) -> None:
    factory = await asyncio.to_thread(build.get_vad_factory, 16000)
    detector = factory(500)
    pcm = (bytes(16000) + resample(speech[BIRTH], 24000, 16000)) * 3  # ~11 s
    step = frame_bytes(16000)
    costs = []
    for i in range(0, len(pcm) - step + 1, step):
        t0 = time.perf_counter()
        detector.process(pcm[i : i + step])
        costs.append((time.perf_counter() - t0) * 1e6)
    detector.close()
    mean, p99 = statistics.fmean(costs), sorted(costs)[int(len(costs) * 0.99)]
    print(f"\nVAD per 20 ms frame: mean {mean:.0f} us, p99 {p99:.0f} us over {len(costs)} frames")
    assert mean < 1000  # < 5 % of a frame's duration; measured ~0.1 ms


# --- never block the loop ---------------------------------------------------------------------------------
async def test_model_calls_do_not_block_the_event_loop(stt: WhisperSpeechToText, hibari: HibariTextToSpeech,
                                                        speech: dict[str, bytes]) -> None:
    tick = 0.005
    lateness: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(tick)
            now = time.perf_counter()
            lateness.append((now - last - tick) * 1000)
            last = now

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.05)
    long_text = " ".join(SENTENCES * 6)
    stream = stt.stream("en-US")
    stream.push(resample(speech[BIRTH] + speech[CARD], 24000, STT_RATE))
    started = time.perf_counter()
    transcript, audio = await asyncio.gather(stream.finish(), synthesize(hibari, long_text))
    busy_ms = (time.perf_counter() - started) * 1000
    stop.set()
    await beat
    assert transcript.text
    assert audio
    worst = max(lateness)
    print(f"\nheartbeat during {busy_ms:.0f} ms of STT+TTS: worst {worst:.1f} ms late, "
          f"p95 {sorted(lateness)[int(len(lateness) * 0.95)]:.1f} ms, {len(lateness)} ticks")
    # The models really ran meanwhile: work this long done on the loop would have made a beat > 25 ms late.
    assert busy_ms > 100
    assert worst < 25, lateness


async def test_iterate_in_streams_closes_and_propagates() -> None:
    closed = threading.Event()
    threads: set[str] = set()

    def sentences(n: int, fail_at: int | None = None) -> Iterator[int]:
        try:
            for i in range(n):
                threads.add(threading.current_thread().name)
                if i == fail_at:
                    raise RuntimeError("engine failed")
                yield i
        finally:
            closed.set()

    assert [i async for i in workers.iterate_in("tts", lambda: sentences(3))] == [0, 1, 2]
    assert threads == {n for n in threads if n.startswith("engine-tts")}  # never the loop's thread

    closed.clear()
    stream = workers.iterate_in("tts", lambda: sentences(100))
    assert await anext(stream) == 0
    await stream.aclose()  # barge-in: the generator is closed in its thread, after the item in flight
    assert await asyncio.to_thread(closed.wait, 5)

    with pytest.raises(RuntimeError, match="engine failed"):
        _ = [i async for i in workers.iterate_in("tts", lambda: sentences(5, fail_at=2))]


async def test_engines_satisfy_the_interfaces(stt: WhisperSpeechToText, hibari: HibariTextToSpeech) -> None:
    # Checked by mypy (structural): the classes fit the Protocols of media_host.engines.base.
    factory: VadFactory = await asyncio.to_thread(build.get_vad_factory, 16000)
    detector: VoiceActivityDetector = factory(700)
    speech_to_text: SpeechToText = stt
    stream: SttStream = speech_to_text.stream("en-GB")
    text_to_speech: TextToSpeech = hibari
    assert (detector.sample_rate, detector.end_of_speech_ms) == (16000, 700)
    assert (speech_to_text.sample_rate, text_to_speech.sample_rate) == (16000, 24000)
    await stream.aclose()
    if importlib.util.find_spec("piper") is not None:
        piper: TextToSpeech = await asyncio.to_thread(build.get_piper_tts)
        assert piper.sample_rate == 22050
    assert build.describe("piper")["tts"].startswith("piper")


async def test_whisper_alone_loads_and_warms_up_without_a_tts(stt: WhisperSpeechToText,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """STT_ENGINE=embedded with Azure TTS: Whisper warms up on quiet noise; no embedded TTS is loaded for it."""
    from media_host.engines.embedded import whisper_stt

    assert build.STT_RATE == whisper_stt.SAMPLE_RATE  # build.py keeps its own copy to stay light

    def no_tts(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a TTS was loaded for an STT-only selection")

    monkeypatch.setattr(build, "get_tts", no_tts)
    monkeypatch.setattr(build, "get_hibari_tts", no_tts)
    monkeypatch.setattr(build, "_warm", set())  # as if `stt` were cold
    monkeypatch.setitem(build.timings, "stt_warm_up_ms", -1.0)
    vad, loaded, speech = await build.load_selected(stt=True, tts=None)
    assert (loaded, speech) == (stt, None)  # the process's cached Whisper
    assert isinstance(vad, SileroVadFactory)
    assert build.timings["stt_warm_up_ms"] > 0
    assert id(stt) in build._warm
