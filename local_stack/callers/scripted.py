"""A scripted caller: says each line once the agent has finished talking (or interrupts it), over any live
caller (ACS or AudioCodes, live.py).

Lines are synthesized by the embedded TTS and passed through a telephone band (8 kHz) before being
streamed, so the agent hears what a phone call would carry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agents.schema import Voice
from local_stack.callers.live import LiveCaller
from media_host.audio import resample
from media_host.engines.base import TextToSpeech

Voiced = Callable[[str], Awaitable[bytes]]


@dataclass(frozen=True)
class Line:
    text: str
    interrupt_after_s: float | None = None  # barge in this long after the agent starts its next reply
    dtmf: str | None = None  # press keys instead of speaking


@dataclass
class Said:
    line: Line
    started: float  # time.monotonic() when the caller began
    ended: float


def telephone_voice(tts: TextToSpeech, rate: int, voice: Voice | None = None) -> Voiced:
    """Synthesize a line, band-limit it to 8 kHz as a phone line does, and return it at `rate`."""
    chosen = voice or Voice(embedded="af_heart")

    async def speak(text: str) -> bytes:
        chunks = [chunk async for chunk in tts.synthesize(text, chosen, "en-US")]
        narrow = resample(b"".join(chunks), tts.sample_rate, 8000)
        return resample(narrow, 8000, rate)

    return speak


class ScriptedCaller:
    def __init__(self, media: LiveCaller, voice: Voiced, quiet_s: float = 0.8) -> None:
        self.media = media
        self.voice = voice
        self.quiet_s = quiet_s
        self.last_said = 0.0  # when the caller last finished speaking: the agent answers after it

    async def say(self, line: Line) -> Said:
        if line.interrupt_after_s is None:
            await self.media.agent_finished(self.quiet_s, since=self.last_said)
        else:
            await self._agent_talking_for(line.interrupt_after_s)
        started = time.monotonic()
        if line.dtmf is not None:
            await self.media.send_dtmf(line.dtmf)
        else:
            pcm = await self.voice(line.text)
            started = time.monotonic()
            self.media.say(pcm)
            await self.media.spoken()
        self.last_said = time.monotonic()
        return Said(line, started, self.last_said)

    async def answered(self, timeout: float = 30.0) -> None:
        """Until the agent has answered the caller's last line and stopped talking."""
        await self.media.agent_finished(self.quiet_s, timeout=timeout, since=self.last_said)

    async def _agent_talking_for(self, seconds: float, timeout: float = 30.0) -> None:
        """Wait for the agent's reply to the caller's last line to start, then `seconds` into it."""
        await self.media.agent_speaking(after=self.last_said, timeout=timeout)
        await asyncio.sleep(seconds)
