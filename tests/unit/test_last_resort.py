"""The last resort's clips (media_host/engines/last_resort.py): spoken at start-up by the first TTS that works,
at the rate asked for; the special information tone when none works; the texts from the agent's replies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from agents import AgentLibrary
from agents.schema import Voice
from media_host.engines.last_resort import (
    GOODBYE_TEXT,
    SIT_HZ,
    TRANSFER_TEXT,
    Apology,
    LastResort,
    apology_of,
    build_last_resort,
    special_information_tone,
)
from media_host.metrics import exposition
from tests.support.outage import BrokenTextToSpeech, VoiceprintTextToSpeech

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


class HungTextToSpeech:
    sample_rate = 16000

    async def synthesize(self, text: str, voice: Voice, locale: str) -> AsyncIterator[bytes]:
        await asyncio.Event().wait()
        yield b""


async def test_the_first_engine_that_works_speaks_both_clips_at_the_rate_asked() -> None:
    spoken = VoiceprintTextToSpeech(16000)
    clips = await build_last_resort([BrokenTextToSpeech(), HungTextToSpeech(), spoken], 24000, Apology(Voice()),
                                    timeout_s=0.2)
    assert clips.source == "VoiceprintTextToSpeech"
    assert len(clips.transfer) == len(TRANSFER_TEXT.split()) * 2400 * 2  # 100 ms a word, at 24 kHz
    assert len(clips.goodbye) == len(GOODBYE_TEXT.split()) * 2400 * 2
    assert clips.transfer != clips.goodbye[:len(clips.transfer)]
    assert clips.clip(transfer=True, rate=24000) is clips.transfer
    assert len(clips.clip(transfer=False, rate=8000)) == len(clips.goodbye) // 3
    assert clips.text(transfer=True) == TRANSFER_TEXT


async def test_no_engine_working_gives_the_special_information_tone_and_an_error(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        clips = await build_last_resort([BrokenTextToSpeech()], 16000, Apology(Voice()))
    assert clips.source == "tone"
    assert clips.transfer == clips.goodbye == special_information_tone(16000)
    assert clips.text(transfer=False) == "(special information tone)"
    assert [r.levelname for r in caplog.records] == ["WARNING", "ERROR"]
    assert "special information tone" in caplog.records[-1].getMessage()


def test_the_tone_is_three_rising_tones_never_silence() -> None:
    pcm = np.frombuffer(special_information_tone(8000), dtype="<i2").astype(float)
    assert len(pcm) == 3 * (8000 * 360 // 1000)  # 330 ms of tone and 30 ms of gap, three times
    segment = 8000 * 360 // 1000
    for i, hz in enumerate(SIT_HZ):
        tone = pcm[i * segment:i * segment + 8000 * 330 // 1000]
        spectrum = np.abs(np.fft.rfft(tone))
        assert abs(np.argmax(spectrum) * 8000 / len(tone) - hz) < 10
        assert np.abs(tone).max() > 2000


def test_the_texts_and_voice_come_from_the_default_scenarios_entry_agent() -> None:
    catalog = AgentLibrary.load(FIXTURES / "cascade").current
    plain = apology_of(catalog, "desk")
    assert (plain.transfer_text, plain.goodbye_text, plain.locale) == (TRANSFER_TEXT, GOODBYE_TEXT, "en-US")
    assert apology_of(catalog, "no_such_scenario") == Apology(Voice())


def test_the_agents_replies_override_the_defaults(tmp_path: Path) -> None:
    source = FIXTURES / "cascade"
    target = tmp_path / "cascade"
    for path in source.rglob("*"):
        if path.is_file():
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (target / path.relative_to(source)).write_text(path.read_text())
    front = target / "desk" / "agents" / "front.yaml"
    front.write_text(front.read_text() + 'replies:\n  unavailable: "Sorry, transferring you."\n'
                     '  unavailable_goodbye: "Sorry, goodbye."\n')
    apology = apology_of(AgentLibrary.load(target).current, "desk")
    assert (apology.transfer_text, apology.goodbye_text) == ("Sorry, transferring you.", "Sorry, goodbye.")


def test_uses_and_readiness_are_exported() -> None:
    clips = LastResort.tone(16000)
    clips.used.inc(stage="stt", action="transfer")
    page = exposition(clips.render_metrics())
    assert 'switchboard_last_resort_total{action="transfer",stage="stt"} 1.0' in page
    assert 'switchboard_last_resort_ready{source="tone"} 1.0' in page
