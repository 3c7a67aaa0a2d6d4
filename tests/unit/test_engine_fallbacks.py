"""The STT and TTS fallback chains (media_host/engines/fallback_stt.py, fallback_tts.py) and the engine health
behind them (health.py), with engines that fail on cue (tests/support/faulty_engines.py) and a clock moved
by hand: a refused or hung STT is re-transcribed from the buffered audio by the next engine, a TTS failing
before its audio hands the sentence on, one failing mid-sentence hands on the next sentence, an engine
that failed is skipped until its background probe succeeds, and every outcome is counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from agents.schema import Voice
from media_host.engines.base import EngineFallback, EnginesExhausted, SpeechToText, TextToSpeech
from media_host.engines.chain import EngineChain, Link
from media_host.engines.fallback_stt import FallbackSpeechToText, stt_probe
from media_host.engines.fallback_tts import FallbackTextToSpeech, tts_probe
from media_host.engines.health import EngineHealth
from media_host.engines.outcomes import EngineStats
from tests.support.faulty_engines import FaultySpeechToText, FaultyTextToSpeech, tone, words_of
from tests.support.manual_clock import ManualClock

COOLDOWN_S = 30.0
FAST_DEADLINE_S = 0.05  # a hung engine never answers: any deadline trips; a short one keeps the test quick
VOICE = Voice()


@pytest.fixture
async def health() -> AsyncIterator[EngineHealth]:
    health = EngineHealth(cooldown_s=COOLDOWN_S, clock=ManualClock())
    yield health
    await health.aclose()


def clock_of(health: EngineHealth) -> ManualClock:
    assert isinstance(health.clock, ManualClock)
    return health.clock


def stt_chain(health: EngineHealth, stats: EngineStats, *engines: tuple[str, SpeechToText],
              deadline_s: float = 1.0, **options: int) -> FallbackSpeechToText:
    links: Sequence[Link[SpeechToText]] = [Link(name, engine) for name, engine in engines]
    chain = EngineChain("stt", links, health=health, stats=stats, deadline_s=deadline_s, probe=stt_probe)
    return FallbackSpeechToText(chain, **options)


def tts_chain(health: EngineHealth, stats: EngineStats, *engines: tuple[str, TextToSpeech],
              deadline_s: float = 1.0) -> FallbackTextToSpeech:
    links: Sequence[Link[TextToSpeech]] = [Link(name, engine) for name, engine in engines]
    return FallbackTextToSpeech(EngineChain("tts", links, health=health, stats=stats, deadline_s=deadline_s,
                                            probe=tts_probe))


def utterance(frames: int = 50, rate: int = 16000) -> list[bytes]:
    """`frames` 20 ms frames of tone, each different (a frame number in its first sample)."""
    frame = tone(rate, 20)
    return [i.to_bytes(2, "little", signed=True) + frame[2:] for i in range(frames)]


async def transcribe(stt: FallbackSpeechToText, frames: list[bytes]) -> tuple[str, list[EngineFallback]]:
    stream = stt.stream("en-US")
    try:
        for frame in frames:
            stream.push(frame)
        return (await stream.finish()).text, list(stream.fallbacks)
    finally:
        await stream.aclose()


async def speak(tts: FallbackTextToSpeech, text: str) -> tuple[bytes, list[EngineFallback]]:
    synthesis = tts.synthesize(text, VOICE, "en-US")
    audio = b"".join([chunk async for chunk in synthesis])
    return audio, list(synthesis.fallbacks)


# --- speech to text ---------------------------------------------------------------------------------------
async def test_a_refused_stt_is_transcribed_again_by_the_next_engine_from_the_buffered_audio(
        health: EngineHealth) -> None:
    stats = EngineStats()
    azure, whisper = FaultySpeechToText("refuse"), FaultySpeechToText("none", text="my balance please")
    stt = stt_chain(health, stats, ("azure_speech", azure), ("whisper", whisper))
    frames = utterance()
    text, notes = await transcribe(stt, frames)
    assert text == "my balance please"
    assert bytes(whisper.audio[0]) == b"".join(frames)  # every frame the caller said, none lost
    assert notes == [EngineFallback("stt", "azure_speech", "whisper", "error", error="ConnectionRefusedError")]
    assert stats.counts == {("stt", "azure_speech", "error"): 1, ("stt", "whisper", "fallback"): 1}
    assert not health.available("stt:azure_speech")


async def test_a_hung_stt_fails_at_the_deadline_and_the_next_engine_answers(health: EngineHealth) -> None:
    stats = EngineStats()
    azure, whisper = FaultySpeechToText("hang"), FaultySpeechToText("none", text="hello")
    stt = stt_chain(health, stats, ("azure_speech", azure), ("whisper", whisper), deadline_s=FAST_DEADLINE_S)
    text, notes = await transcribe(stt, utterance(10))
    assert text == "hello"
    assert [(n.engine, n.to, n.reason) for n in notes] == [("azure_speech", "whisper", "timeout")]
    assert stats.get(stage="stt", engine="azure_speech", outcome="timeout") == 1


async def test_an_engine_at_another_rate_gets_the_buffer_resampled(health: EngineHealth) -> None:
    azure, narrow = FaultySpeechToText("refuse"), FaultySpeechToText("none", text="ok", rate=8000)
    stt = stt_chain(health, EngineStats(), ("azure_speech", azure), ("narrow", narrow))
    assert stt.sample_rate == 16000  # the chain takes audio at its first engine's rate
    await transcribe(stt, utterance(50))  # 1 s at 16 kHz
    assert len(narrow.audio[0]) == 8000 * 2  # 1 s at 8 kHz


async def test_the_buffer_is_bounded_by_the_longest_utterance(health: EngineHealth) -> None:
    azure, whisper = FaultySpeechToText("refuse"), FaultySpeechToText("none", text="ok")
    stt = stt_chain(health, EngineStats(), ("azure_speech", azure), ("whisper", whisper), max_utterance_s=1)
    frames = utterance(100)  # 2 s
    await transcribe(stt, frames)
    assert bytes(whisper.audio[0]) == b"".join(frames[:50])  # the first second: the rest was not kept
    assert len(azure.audio[0]) == 2 * 16000 * 2  # the first engine had it all, as it came


async def test_when_every_stt_engine_fails_the_stream_raises_engines_exhausted(health: EngineHealth) -> None:
    stats = EngineStats()
    stt = stt_chain(health, stats, ("azure_speech", FaultySpeechToText("refuse")),
                    ("whisper", FaultySpeechToText("hang")), deadline_s=FAST_DEADLINE_S)
    stream = stt.stream("en-US")
    stream.push(utterance(1)[0])
    with pytest.raises(EnginesExhausted) as raised:
        await stream.finish()
    assert raised.value.stage == "stt"
    assert str(raised.value) == "stt: azure_speech error, whisper timeout"
    assert [(n.engine, n.to) for n in stream.fallbacks] == [("azure_speech", "whisper"), ("whisper", None)]
    await stream.aclose()


async def test_a_down_stt_engine_is_skipped_until_its_background_probe_succeeds(health: EngineHealth) -> None:
    stats = EngineStats()
    azure, whisper = FaultySpeechToText("refuse", text="azure heard it"), FaultySpeechToText("none", text="ok")
    stt = stt_chain(health, stats, ("azure_speech", azure), ("whisper", whisper))
    changes: list[tuple[str, bool]] = []
    health.on_change = lambda key, up: changes.append((key, up))
    await transcribe(stt, utterance(5))  # fails on Azure: it is down
    asked = azure.finished
    # The next turns go straight to Whisper: no call pays for Azure's failure again.
    text, notes = await transcribe(stt, utterance(5))
    assert (text, azure.finished) == ("ok", asked)
    assert notes == [EngineFallback("stt", "azure_speech", "whisper", "down")]
    assert stats.get(engine="azure_speech", outcome="skipped") == 1
    # After the cool-down the probe runs: Azure still refuses, so it stays down for another cool-down.
    clock = clock_of(health)
    await until(lambda: clock.sleeping == 1)  # the probe task waits out the cool-down
    clock.advance(COOLDOWN_S)
    await until(lambda: azure.finished == asked + 1 and clock.sleeping == 1)
    assert not health.available("stt:azure_speech")
    # Azure is back: the next probe succeeds, and the next turn is Azure's again.
    azure.fault = "none"
    clock.advance(COOLDOWN_S)
    await until(lambda: health.available("stt:azure_speech"))
    assert changes == [("stt:azure_speech", False), ("stt:azure_speech", True)]
    text, notes = await transcribe(stt, utterance(5))
    assert (text, notes) == ("azure heard it", [])
    assert stats.get(engine="azure_speech", outcome="ok") == 1
    assert health.status() == {"stt:azure_speech": True, "stt:whisper": True}


async def test_when_every_engine_is_down_each_is_tried_again(health: EngineHealth) -> None:
    azure, whisper = FaultySpeechToText("refuse"), FaultySpeechToText("refuse")
    stt = stt_chain(health, EngineStats(), ("azure_speech", azure), ("whisper", whisper))
    with pytest.raises(EnginesExhausted):
        await transcribe(stt, utterance(5))
    azure.fault = "none"  # a cool-down is a guess: Azure came back before its probe ran
    text, notes = await transcribe(stt, utterance(5))
    assert (text, notes, azure.streams) == ("", [], 2)
    assert health.available("stt:azure_speech")  # brought back by the request itself
    assert not health.available("stt:whisper")


async def test_shutdown_cancels_the_probe_tasks() -> None:
    health = EngineHealth(cooldown_s=COOLDOWN_S, clock=ManualClock())
    stt = stt_chain(health, EngineStats(), ("azure_speech", FaultySpeechToText("refuse")),
                    ("whisper", FaultySpeechToText("none")))
    await transcribe(stt, utterance(5))
    tasks = [t for t in asyncio.all_tasks() if t.get_name() == "engine-probe-stt:azure_speech"]
    assert len(tasks) == 1
    await health.aclose()
    assert tasks[0].cancelled()


# --- text to speech ---------------------------------------------------------------------------------------
async def test_a_tts_failing_before_any_audio_hands_the_sentence_to_the_next_engine(health: EngineHealth) -> None:
    stats = EngineStats()
    azure, hibari = FaultyTextToSpeech("before_audio"), FaultyTextToSpeech("none")
    tts = tts_chain(health, stats, ("azure_speech", azure), ("hibari", hibari))
    audio, notes = await speak(tts, "one two three four.")
    assert words_of(audio, 16000) == pytest.approx(4)  # the whole sentence, once
    assert notes == [EngineFallback("tts", "azure_speech", "hibari", "error", error="ConnectionResetError")]
    assert stats.counts == {("tts", "azure_speech", "error"): 1, ("tts", "hibari", "fallback"): 1}


async def test_a_tts_silent_past_the_first_audio_deadline_is_treated_as_failed(health: EngineHealth) -> None:
    azure, hibari = FaultyTextToSpeech("hang"), FaultyTextToSpeech("none")
    tts = tts_chain(health, EngineStats(), ("azure_speech", azure), ("hibari", hibari), deadline_s=FAST_DEADLINE_S)
    audio, notes = await speak(tts, "one two.")
    assert words_of(audio, 16000) == pytest.approx(2)
    assert [(n.engine, n.reason) for n in notes] == [("azure_speech", "timeout")]


async def test_a_tts_failing_mid_sentence_continues_from_the_next_sentence_on_the_next_engine(
        health: EngineHealth) -> None:
    stats = EngineStats()
    azure, hibari = FaultyTextToSpeech("mid_sentence", fault_after=1), FaultyTextToSpeech("none")
    tts = tts_chain(health, stats, ("azure_speech", azure), ("hibari", hibari))
    first, _ = await speak(tts, "one two.")
    broken, notes = await speak(tts, "three four five six.")  # no exception: what was played stands
    third, after = await speak(tts, "seven eight.")
    assert [words_of(a, 16000) for a in (first, broken, third)] == pytest.approx([2, 2, 2])
    assert notes == [EngineFallback("tts", "azure_speech", "hibari", "error", error="ConnectionResetError",
                                    mid_sentence=True)]
    assert azure.spoken == ["one two.", "three four five six."]  # not asked again while down
    assert hibari.spoken == ["seven eight."]  # the broken sentence is not said again
    assert after == [EngineFallback("tts", "azure_speech", "hibari", "down")]
    assert stats.counts == {("tts", "azure_speech", "ok"): 1, ("tts", "azure_speech", "error"): 1,
                            ("tts", "azure_speech", "skipped"): 1, ("tts", "hibari", "fallback"): 1}


async def test_a_fallback_at_another_rate_comes_out_at_the_chains_rate(health: EngineHealth) -> None:
    azure, piper = FaultyTextToSpeech("before_audio", rate=24000), FaultyTextToSpeech("none", rate=22050)
    tts = tts_chain(health, EngineStats(), ("azure_speech", azure), ("piper", piper))
    audio, _ = await speak(tts, "one two three.")
    assert tts.sample_rate == 24000
    assert words_of(audio, 24000) == pytest.approx(3, abs=0.01)


async def test_when_no_tts_engine_can_start_a_sentence_it_raises_engines_exhausted(health: EngineHealth) -> None:
    tts = tts_chain(health, EngineStats(), ("azure_speech", FaultyTextToSpeech("before_audio")),
                    ("hibari", FaultyTextToSpeech("before_audio")))
    with pytest.raises(EnginesExhausted) as raised:
        await speak(tts, "hello.")
    assert raised.value.stage == "tts"


async def test_a_down_tts_engine_comes_back_when_its_probe_synthesis_succeeds(health: EngineHealth) -> None:
    azure, hibari = FaultyTextToSpeech("before_audio"), FaultyTextToSpeech("none")
    tts = tts_chain(health, EngineStats(), ("azure_speech", azure), ("hibari", hibari))
    await speak(tts, "one.")
    azure.fault = "none"
    await until(lambda: clock_of(health).sleeping == 1)
    clock_of(health).advance(COOLDOWN_S)
    await until(lambda: health.available("tts:azure_speech"))
    assert azure.spoken == ["one.", "OK."]  # the sentence, then the probe
    _, notes = await speak(tts, "two.")
    assert (notes, azure.spoken[-1]) == ([], "two.")


async def until(predicate: object, timeout: float = 5.0) -> None:
    """Until `predicate()` holds: the probe task runs at the loop's next turns."""
    assert callable(predicate)
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0)
