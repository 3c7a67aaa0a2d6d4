"""Prometheus metrics for the media host, in the text exposition format.

A deliberately small implementation: the media host is one asyncio thread, so counters need no locks,
and a per-frame increment is one dict update. Gauges that describe live calls are computed at scrape
time from callbacks, so nothing is kept in sync on the hot path.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{v}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Counter:
    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self.values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for key, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(key)} {value:g}"


class Gauge:
    """A gauge computed at scrape time: `collect()` returns {labels: value}."""

    def __init__(self, name: str, help_text: str, collect: Callable[[], dict[Labels, float]]) -> None:
        self.name, self.help, self.collect = name, help_text, collect

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        for key, value in sorted(self.collect().items()):
            yield f"{self.name}{_labels(key)} {value:g}"


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: Iterable[float]) -> None:
        self.name, self.help = name, help_text
        self.buckets = sorted(buckets)
        self.series: dict[Labels, tuple[list[int], list[float]]] = {}  # bucket counts; [sum, count]

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        counts, totals = self.series.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0, 0.0]))
        counts[bisect.bisect_left(self.buckets, value)] += 1
        totals[0] += value
        totals[1] += 1

    def count(self, **labels: str) -> int:
        series = self.series.get(tuple(sorted(labels.items())))
        return int(series[1][1]) if series else 0

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for key, (counts, (total, n)) in sorted(self.series.items()):
            running = 0
            for bound, c in zip([*self.buckets, math.inf], counts, strict=True):
                running += c
                le = "+Inf" if bound == math.inf else f"{bound:g}"
                bucket = 'le="' + le + '"'
                yield f"{self.name}_bucket{_labels(key, bucket)} {running}"
            yield f"{self.name}_sum{_labels(key)} {total:g}"
            yield f"{self.name}_count{_labels(key)} {n:g}"


class DerivedCounter:
    """A counter whose values are computed at scrape time (from per-call counters)."""

    def __init__(self, name: str, help_text: str, stat: str) -> None:
        self.name, self.help, self.stat = name, help_text, stat

    def render_from(self, values: dict[Labels, float]) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for key, value in sorted(values.items()):
            yield f"{self.name}{_labels(key)} {value:g}"


class MediaMetrics:
    """Every metric the media host exports."""

    def __init__(self, active_calls: Callable[[], dict[Labels, float]],
                 playout_depth: Callable[[], dict[Labels, float]]) -> None:
        self.calls = Counter("switchboard_calls_total", "Calls handled, by transport and outcome")
        self.errors = Counter("switchboard_errors_total", "Errors, by transport and kind")
        self.turn_latency = Histogram("switchboard_turn_latency_ms", "Per-turn latency marks, ms after end of speech",
                                      [50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000])
        self.active = Gauge("switchboard_active_calls", "Calls in progress, by transport", active_calls)
        self.playout = Gauge("switchboard_playout_queue_frames", "Outbound frames queued, summed over calls",
                             playout_depth)
        # Per-frame counts live on each call and are summed when scraped: nothing is counted per frame here.
        self.per_call = [
            DerivedCounter("switchboard_frames_in_total", "Audio messages received from callers", "frames_in"),
            DerivedCounter("switchboard_frames_out_total", "Audio frames sent to callers", "frames_out"),
            DerivedCounter("switchboard_late_frames_total", "Outbound frames sent later than due", "late_frames"),
            DerivedCounter("switchboard_dropped_frames_total", "Inbound frames dropped by an overloaded call",
                           "dropped_frames"),
            DerivedCounter("switchboard_barge_ins_total", "Times a caller interrupted the agent", "barge_ins"),
        ]
        # Engines and pipelines keep their own counts (chat retries, Realtime events): rendered when scraped.
        self.sources: list[Callable[[], Iterable[str]]] = []

    def add_source(self, render: Callable[[], Iterable[str]]) -> None:
        self.sources.append(render)

    def render(self, call_stat: Callable[[str], dict[Labels, float]]) -> str:
        lines = [*self.active.render(), *self.calls.render(), *self.playout.render()]
        for counter in self.per_call:
            lines.extend(counter.render_from(call_stat(counter.stat)))
        lines.extend([*self.errors.render(), *self.turn_latency.render()])
        for source in self.sources:
            lines.extend(source())
        return "\n".join(lines) + "\n"
