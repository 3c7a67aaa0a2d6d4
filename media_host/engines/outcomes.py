"""What each engine request came to, counted per stage, engine and outcome for the metrics page.

`EngineStats` is passed to the chains by the factory (as `ChatRetryStats` is to the chat model) and
rendered at scrape time as `switchboard_engine_outcomes_total{stage,engine,outcome}` (media_host/metrics.py):
counting is one dict update, on the event loop.

Outcomes, one per engine asked (or skipped) per request:

- `ok`: the chain's first engine answered.
- `fallback`: a later engine answered, in place of one that failed or was down.
- `timeout`: no answer within the stage's deadline (or the engine's own time-out).
- `error`: the engine raised.
- `skipped`: not asked: it is down (media_host/engines/health.py), or the server asked for a pause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from media_host.engines.base import Stage

OK: Final = "ok"
FALLBACK: Final = "fallback"
TIMEOUT: Final = "timeout"
ERROR: Final = "error"
SKIPPED: Final = "skipped"


def failure_outcome(exc: BaseException) -> str:
    """`timeout` for a deadline or an engine's own time-out (asyncio's, Azure Speech's `SpeechTimeout` and the
    chat model's `ChatDeadlineExceeded` all subclass TimeoutError), else `error`."""
    return TIMEOUT if isinstance(exc, TimeoutError) else ERROR


@dataclass
class EngineStats:
    """Counts by (stage, engine, outcome)."""

    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def record(self, stage: Stage, engine: str, outcome: str) -> None:
        key = (stage, engine, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1

    def get(self, *, stage: str | None = None, engine: str | None = None, outcome: str | None = None) -> int:
        """The total over the counts that match every given label."""
        return sum(n for (s, e, o), n in self.counts.items()
                   if stage in (None, s) and engine in (None, e) and outcome in (None, o))

    def samples(self) -> dict[tuple[tuple[str, str], ...], float]:
        """{labels: value}, the shape `media_host.metrics.DerivedCounter.render_from` takes."""
        return {(("engine", e), ("outcome", o), ("stage", s)): float(n) for (s, e, o), n in self.counts.items()}
