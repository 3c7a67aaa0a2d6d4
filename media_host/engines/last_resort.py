"""The last resort: what a caller hears when no engine can answer (every STT, TTS or chat engine failed).

Two clips, synthesized once at start-up while the engines are known to work and kept in memory as PCM:
playing them needs no engine at all. One is said before the call goes to the scenario's human number,
the other before a polite hang-up when the scenario has none. They are spoken by the first TTS engine
that works, in the voice and locale of the default scenario's entry agent, whose `replies.unavailable`
and `replies.unavailable_goodbye` override the default texts.

If no TTS engine works at start-up, an error is logged and both clips are the special information tone
(three rising tones, about a second): the telephone network's own "this call cannot be completed",
understood whatever the caller's language. Never silence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client.core import Metric

from agents import Catalog
from agents.schema import Voice
from media_host.audio import resample
from media_host.engines.base import TextToSpeech
from media_host.metrics import Counter, gauge_family

log = logging.getLogger(__name__)

TRANSFER_TEXT = "I'm sorry, we're having technical difficulties. Let me transfer you to a colleague."
GOODBYE_TEXT = "I'm sorry, we're having technical difficulties. Please call again later. Goodbye."
SYNTHESIS_TIMEOUT_S = 20.0  # per engine at start-up: a hung engine must not hold the host's start for long
# The special information tone as ITU-T Rec. E.180 defines it: 950, 1400 and 1800 Hz, each 330 ms, up to
# 30 ms apart. Its level here is about that of speech (-21 dBFS peak): nothing amplifies it after us.
SIT_HZ = (950.0, 1400.0, 1800.0)
SIT_TONE_MS = 330
SIT_GAP_MS = 30
SIT_AMPLITUDE = 2900
FADE_MS = 5  # ramps at each edge, so the tone does not click


@dataclass(frozen=True, slots=True)
class Apology:
    """What the last resort says, and in which voice."""

    voice: Voice
    locale: str = "en-US"
    transfer_text: str = TRANSFER_TEXT
    goodbye_text: str = GOODBYE_TEXT


class LastResort:
    """The process's two apology clips (PCM16 mono at `sample_rate`) and the count of their use."""

    def __init__(self, sample_rate: int, transfer: bytes, goodbye: bytes, source: str,
                 apology: Apology | None = None) -> None:
        self.sample_rate = sample_rate
        self.transfer = transfer
        self.goodbye = goodbye
        self.source = source  # the engine that spoke them, or "tone"
        self.apology = apology  # what they say (None: the tone)
        self.used = Counter("switchboard_last_resort_total",
                            "Calls handed to the last resort, by failed stage and action (transfer, hangup)")

    def clip(self, *, transfer: bool, rate: int) -> bytes:
        """The clip said before a transfer (else before a hang-up), at `rate` (resampled once, if it differs)."""
        pcm = self.transfer if transfer else self.goodbye
        return pcm if rate == self.sample_rate else resample(pcm, self.sample_rate, rate)

    def text(self, *, transfer: bool) -> str:
        """What the clip says, for the call record."""
        if self.apology is None:
            return "(special information tone)"
        return self.apology.transfer_text if transfer else self.apology.goodbye_text

    def render_metrics(self) -> Iterable[Metric]:
        """A `Source` for MediaMetrics.add_source: uses, and which clip is ready (an alert can watch for "tone")."""
        yield from self.used.render()
        yield gauge_family("switchboard_last_resort_ready", "The last resort's clips are ready, by who spoke them",
                           [((("source", self.source),), 1.0)])

    @classmethod
    def tone(cls, sample_rate: int) -> LastResort:
        sit = special_information_tone(sample_rate)
        return cls(sample_rate, sit, sit, "tone")


def special_information_tone(sample_rate: int) -> bytes:
    ramp = max(1, sample_rate * FADE_MS // 1000)
    segments: list[np.ndarray] = []
    for hz in SIT_HZ:
        t = np.arange(sample_rate * SIT_TONE_MS // 1000) / sample_rate
        tone = np.sin(2 * np.pi * hz * t) * SIT_AMPLITUDE
        envelope = np.ones_like(tone)
        envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
        envelope[-ramp:] = np.linspace(1.0, 0.0, ramp)
        segments += [tone * envelope, np.zeros(sample_rate * SIT_GAP_MS // 1000)]
    return np.concatenate(segments).astype("<i2").tobytes()


def apology_of(catalog: Catalog, scenario: str) -> Apology:
    """The default scenario's entry agent's voice, locale and `replies.unavailable[_goodbye]`, if it has them."""
    try:
        agent = catalog.scenario(scenario).entry_agent
    except KeyError:
        return Apology(Voice())
    replies = agent.reply_templates
    transfer, goodbye = replies.get("unavailable"), replies.get("unavailable_goodbye")
    return Apology(agent.spec.voice, agent.spec.locale,
                   transfer.render().strip() if transfer is not None else TRANSFER_TEXT,
                   goodbye.render().strip() if goodbye is not None else GOODBYE_TEXT)


async def build_last_resort(tts_engines: Sequence[TextToSpeech], sample_rate: int, apology: Apology, *,
                            timeout_s: float = SYNTHESIS_TIMEOUT_S) -> LastResort:
    """The clips, spoken by the first of `tts_engines` that speaks both within `timeout_s`, at `sample_rate`."""
    for engine in tts_engines:
        name = type(engine).__name__
        try:
            async with asyncio.timeout(timeout_s):
                transfer = await _speak(engine, apology.transfer_text, apology, sample_rate)
                goodbye = await _speak(engine, apology.goodbye_text, apology, sample_rate)
        except Exception as exc:  # any failure: the next engine, else the tone
            log.warning("last resort: %s could not speak the apology", name, extra={"error": repr(exc)[:200]})
            continue
        log.info("last resort ready", extra={"engine": name, "transfer_ms": len(transfer) * 500 // sample_rate,
                                             "goodbye_ms": len(goodbye) * 500 // sample_rate})
        return LastResort(sample_rate, transfer, goodbye, name, apology)
    log.error("last resort: no TTS engine could speak the apology at start-up; a caller no engine can answer "
              "will hear the special information tone before the transfer or hang-up")
    return LastResort.tone(sample_rate)


async def _speak(engine: TextToSpeech, text: str, apology: Apology, rate: int) -> bytes:
    pcm = b"".join([chunk async for chunk in engine.synthesize(text, apology.voice, apology.locale)])
    if len(pcm) < 2:
        raise RuntimeError("no audio")
    return resample(pcm, engine.sample_rate, rate)


async def last_resort_for(tts: TextToSpeech, catalog: Catalog, scenario: str) -> LastResort:
    """The host's clips at start-up: spoken by its TTS (a fallback chain tries each of its engines), at the
    TTS's rate (the cascade's outbound rate), as the default scenario's entry agent would say them."""
    return await build_last_resort([tts], tts.sample_rate, apology_of(catalog, scenario))
