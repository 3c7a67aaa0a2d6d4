"""The passthrough pipeline: proves the plumbing without any engine.

It plays a prompt (a tone) when the call starts, stops it the moment the caller speaks over it
(barge-in on frame energy), and from then on echoes the caller's audio back. DTMF `#` hangs up and
`0` asks for a transfer, so every control path can be exercised from a test or a benchmark.
"""

from __future__ import annotations

import math

import numpy as np

from media_host.audio import pcm16_to_float
from media_host.channel import CallChannel
from media_host.events import (
    AudioFrame,
    CallerHungUp,
    DtmfReceived,
    HangUp,
    SpeechStarted,
    TranscriptLine,
    Transfer,
)


def tone(rate: int, ms: int, hz: float = 440.0, level: float = 0.2) -> bytes:
    t = np.arange(int(rate * ms / 1000)) / rate
    return (np.sin(2 * math.pi * hz * t) * level * 32767).astype("<i2").tobytes()


class EchoPipeline:
    inbound_rate: int | None = None
    outbound_rate: int | None = None

    def __init__(self, prompt_ms: int = 0, barge_in_rms: float = 0.02, transfer_target: str = "+18005550199",
                 max_backlog_ms: float | None = 40.0) -> None:
        """`max_backlog_ms`: drop caller audio while this much is already queued (None: never drop)."""
        self.prompt_ms = prompt_ms
        self.max_backlog_ms = max_backlog_ms
        self.barge_in_rms = barge_in_rms
        self.transfer_target = transfer_target

    async def run(self, call: CallChannel) -> None:
        prompting = self.prompt_ms > 0
        if prompting:
            call.start_utterance()
            call.play(tone(call.outbound_rate, self.prompt_ms))
            call.end_utterance()
        else:
            call.start_utterance()
        while True:
            item = await call.receive()
            if isinstance(item, AudioFrame):
                if prompting:
                    if not call.playing:
                        prompting = False
                    elif float(np.sqrt(np.mean(pcm16_to_float(item.pcm) ** 2))) > self.barge_in_rms:
                        call.send(SpeechStarted())
                        heard = call.stop_playback()
                        call.send(TranscriptLine("agent", f"[prompt, {heard:.0f} ms heard]", interrupted=True))
                        prompting = False
                        call.start_utterance()
                    continue
                # A live source arrives at exactly real time, so a backlog left by a stall would never
                # drain: it would be added latency for the rest of the call. Drop instead.
                if self.max_backlog_ms is None or call.queued_ms < self.max_backlog_ms:
                    call.play(item.pcm)
            elif isinstance(item, DtmfReceived):
                if "#" in item.digits:
                    call.send(HangUp("caller pressed #"))
                    return
                if "0" in item.digits:
                    call.send(Transfer(self.transfer_target, "caller pressed 0"))
            elif isinstance(item, CallerHungUp):
                return
