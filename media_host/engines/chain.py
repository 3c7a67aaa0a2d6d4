"""An ordered list of engines for one stage, with the bookkeeping the fallback adapters share.

The chain decides which engines a request tries, and in what order: the healthy ones, in the chain's
order (the engines that are down, media_host/engines/health.py, are skipped). When every engine is down,
all are tried anyway, in order, rather than none: a cool-down is a guess, and a guess must not leave a
caller in silence (LiveKit Agents' FallbackAdapter does the same when all its instances are unavailable,
livekit-agents 1.x, livekit/agents/tts/fallback_adapter.py).

Each attempt's outcome is counted (media_host/engines/outcomes.py), fed to the health, logged once
(stage, engine, outcome, the exception's type; never the audio or text), and becomes an `EngineFallback`
note for the call's record when the request moves on to another engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from media_host.engines.base import EngineFallback, Stage
from media_host.engines.health import EngineHealth, Probe
from media_host.engines.outcomes import FALLBACK, OK, SKIPPED, EngineStats, failure_outcome

log = logging.getLogger(__name__)

E = TypeVar("E")

DOWN = "down"  # the reason an engine was skipped


def tried_detail(tried: Sequence[tuple[str, str]]) -> str:
    """`EnginesExhausted`'s detail: each engine tried and how it failed ("azure_speech error, whisper timeout")."""
    return ", ".join(f"{engine} {outcome}" for engine, outcome in tried)


@dataclass(frozen=True, slots=True)
class Link(Generic[E]):
    """One engine of a chain, by the name its metrics and the call record use ("azure_speech", "whisper")."""

    name: str
    engine: E


class EngineChain(Generic[E]):
    """`links` in order of preference (at least one). `deadline_s`: the stage's deadline, per engine
    attempt (the adapter applies it); also bounds each probe. `probe(engine)`: the engine kind's cheap
    request, run in the background while the engine is down."""

    def __init__(self, stage: Stage, links: Sequence[Link[E]], *, health: EngineHealth, stats: EngineStats,
                 deadline_s: float, probe: Callable[[E], Probe] | None = None) -> None:
        if not links:
            raise ValueError(f"a {stage} chain needs at least one engine")
        if len({link.name for link in links}) != len(links):
            raise ValueError(f"{stage} engine names must be unique")
        if deadline_s <= 0:
            raise ValueError("deadline_s must be positive")
        self.stage: Stage = stage
        self.links = tuple(links)
        self.health = health
        self.stats = stats
        self.deadline_s = deadline_s
        for link in self.links:
            health.watch(self.key(link), probe(link.engine) if probe is not None else None, timeout_s=deadline_s)

    @property
    def names(self) -> list[str]:
        return [link.name for link in self.links]

    def key(self, link: Link[E]) -> str:
        return f"{self.stage}:{link.name}"

    def plan(self) -> tuple[list[Link[E]], list[EngineFallback]]:
        """The engines to try, in order, and a note for each engine skipped before the first of them
        (counted as `skipped`)."""
        up = [link for link in self.links if self.health.available(self.key(link))]
        if not up:
            return list(self.links), []
        skipped = self.links[:self.links.index(up[0])]
        for link in skipped:
            self.stats.record(self.stage, link.name, SKIPPED)
        return up, [EngineFallback(self.stage, link.name, up[0].name, DOWN) for link in skipped]

    def next_up(self, after: Link[E]) -> Link[E] | None:
        """The engine the next request would start on, now that `after` failed (None: only `after`)."""
        up = [link for link in self.links if link is not after and self.health.available(self.key(link))]
        return up[0] if up else next((link for link in self.links if link is not after), None)

    def succeeded(self, link: Link[E]) -> None:
        self.stats.record(self.stage, link.name, OK if link is self.links[0] else FALLBACK)
        self.health.succeeded(self.key(link))

    def failed(self, link: Link[E], exc: BaseException, to: Link[E] | None, *,
               mid_sentence: bool = False) -> EngineFallback:
        """Count, log and mark down `link` after `exc`; the note for the call's record (`to` takes over)."""
        outcome = failure_outcome(exc)
        self.stats.record(self.stage, link.name, outcome)
        self.health.failed(self.key(link), outcome)
        log.warning("%s engine %s failed (%s: %s); %s", self.stage, link.name, outcome, type(exc).__name__,
                    f"{to.name} takes over" if to is not None else "no engine left",
                    extra={"stage": self.stage, "engine": link.name, "outcome": outcome,
                           "error": type(exc).__name__, "to": to.name if to is not None else None,
                           "mid_sentence": mid_sentence})
        return EngineFallback(self.stage, link.name, to.name if to is not None else None, outcome,
                              error=type(exc).__name__, mid_sentence=mid_sentence)
