"""Per-turn latency: when each stage of a reply happened, and how much of it the engines spent.

All marks are milliseconds after the caller's speech ended (the last voiced audio). The pipeline's
own overhead is what is left of the time to first audio once the silence window and the engines'
time are taken out; the design budget for it is 30 ms.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

STAGES = ("eos_detected", "stt_done", "first_token", "first_tts_chunk", "first_audio_out")


@dataclass
class TurnClock:
    speech_end: float  # time.monotonic() of the caller's last voiced audio
    marks: dict[str, float] = field(default_factory=dict)
    engine_ms: dict[str, float] = field(default_factory=dict)  # stt, llm (to first token), tts (first chunk)

    def mark(self, stage: str, at: float | None = None) -> None:
        if stage not in self.marks:  # the first occurrence counts
            self.marks[stage] = round(((time.monotonic() if at is None else at) - self.speech_end) * 1000, 1)

    def engine(self, name: str, ms: float) -> None:
        self.engine_ms.setdefault(name, round(ms, 1))

    def summary(self) -> dict[str, float]:
        """The marks plus `total` (to first audio), engine times and `overhead` (the pipeline's own)."""
        out = dict(self.marks)
        out.update({f"{name}_engine": ms for name, ms in self.engine_ms.items()})
        total = self.marks.get("first_audio_out")
        if total is not None:
            eos = self.marks.get("eos_detected", 0.0)
            engines = dict(self.engine_ms)
            if "stt" in engines and "stt_done" in self.marks:
                # A transcript started during the caller's pause may be ready before the turn window
                # closed: only the part of its time after the window is waited for.
                engines["stt"] = min(engines["stt"], max(0.0, self.marks["stt_done"] - eos))
            out["total"] = total
            out["overhead"] = round(total - eos - sum(engines.values()), 1)
        return out
