"""Prometheus metrics for the media host: our cheap counters, exposed through prometheus_client.

Counting stays ours: the media host is one asyncio thread, so a counter needs no lock and a
per-frame or per-event increment is one dict update (`Counter.inc`, `Histogram.observe`), where
prometheus_client's own metrics take a lock and a `.labels()` lookup. Gauges and per-call counts
are computed from callbacks at scrape time, so nothing is kept in sync on the hot path.

At scrape time every value becomes a prometheus_client metric family (custom collectors on a
private registry) and `generate_latest` writes the text page: it escapes label values, one of
which (a Realtime error code) comes from the remote service. No `_created` series are written:
the families are built without creation times.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric, Sample

Labels = tuple[tuple[str, str], ...]
Values = dict[Labels, float]
Source = Callable[[], Iterable[Metric]]  # metric families, built when scraped
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format Prometheus scrapes (the page's content type since day one)


def counter_family(name: str, help_text: str, values: Iterable[tuple[Labels, float]]) -> Metric:
    """A counter family from (labels, value) pairs. Series may have different label names (a Realtime
    error carries a `code`, a reconnect does not), so samples are added one by one."""
    family = CounterMetricFamily(name, help_text)  # its name drops `_total`; the samples carry it
    family.samples.extend(Sample(family.name + "_total", dict(key), value) for key, value in values)
    return family


def gauge_family(name: str, help_text: str, values: Iterable[tuple[Labels, float]]) -> Metric:
    family = GaugeMetricFamily(name, help_text)
    family.samples.extend(Sample(name, dict(key), value) for key, value in values)
    return family


def exposition(families: Iterable[Metric]) -> str:
    """Families as Prometheus text (for a source's own tests; the host renders through its registry)."""
    return generate_latest(_Families(families)).decode()


class _Families:
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


class Counter:
    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self.values: Values = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> Iterable[Metric]:
        """This counter as a metric family (a `Source` for `MediaMetrics.add_source`)."""
        yield counter_family(self.name, self.help, sorted(self.values.items()))


class Gauge:
    """A gauge computed at scrape time: `collect()` returns {labels: value}."""

    def __init__(self, name: str, help_text: str, collect: Callable[[], Values]) -> None:
        self.name, self.help, self.collect = name, help_text, collect

    def render(self) -> Iterable[Metric]:
        yield gauge_family(self.name, self.help, sorted(self.collect().items()))


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: Iterable[float]) -> None:
        self.name, self.help = name, help_text
        self.buckets = sorted(buckets)
        self.series: dict[Labels, tuple[list[int], list[float]]] = {}  # bucket counts; [sum, count]
        # `le` as the page has always printed it ("50", not prometheus_client's "50.0"): dashboards match on it.
        self._le = [f"{bound:g}" for bound in self.buckets] + ["+Inf"]

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        counts, totals = self.series.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0, 0.0]))
        counts[bisect.bisect_left(self.buckets, value)] += 1
        totals[0] += value
        totals[1] += 1

    def count(self, **labels: str) -> int:
        series = self.series.get(tuple(sorted(labels.items())))
        return int(series[1][1]) if series else 0

    def render(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.help)
        for key, (counts, (total, n)) in sorted(self.series.items()):
            labels = dict(key)
            running = 0
            for le, c in zip(self._le, counts, strict=True):
                running += c
                family.samples.append(Sample(self.name + "_bucket", {**labels, "le": le}, running))
            family.samples.append(Sample(self.name + "_sum", labels, total))
            family.samples.append(Sample(self.name + "_count", labels, n))
        yield family


class DerivedCounter:
    """A counter whose values are computed at scrape time (from per-call counters)."""

    def __init__(self, name: str, help_text: str, stat: str) -> None:
        self.name, self.help, self.stat = name, help_text, stat

    def render_from(self, values: Values) -> Iterable[Metric]:
        yield counter_family(self.name, self.help, sorted(values.items()))


ENGINE_OUTCOMES = DerivedCounter(
    "switchboard_engine_outcomes_total",
    "Speech and chat engine requests, by stage, engine and outcome (ok, fallback, timeout, error, skipped)", "")
ENGINE_AVAILABLE = ("switchboard_engine_available", "1 while an engine is in use, 0 while it is down and probed")


def engine_source(outcomes: Callable[[], Values], available: Callable[[], Values]) -> Source:
    """The engines' outcome counts and availability (media_host/engines/outcomes.py, health.py), at scrape time."""

    def render() -> Iterable[Metric]:
        yield from ENGINE_OUTCOMES.render_from(outcomes())
        yield gauge_family(*ENGINE_AVAILABLE, sorted(available().items()))

    return render


class _Collector:
    """A prometheus_client collector around a `Source`. `describe` names the families without
    computing any value, so registering checks names before the host's state exists."""

    def __init__(self, collect: Source, describe: Source | None = None) -> None:
        self.collect, self._describe = collect, describe

    def describe(self) -> Iterable[Metric]:
        return (self._describe or self.collect)()


class MediaMetrics:
    """Every metric the media host exports, rendered on a private registry (never the global one:
    tests run many hosts in one process, and a library's own collectors stay off the page)."""

    def __init__(self, active_calls: Callable[[], Values], playout_depth: Callable[[], Values],
                 call_stat: Callable[[str], Values]) -> None:
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
        self.call_stat = call_stat
        # A name registered twice fails here, at start, not as a page Prometheus rejects.
        self._registry = CollectorRegistry(auto_describe=True)
        self._registry.register(_Collector(self._collect, self._describe))

    def add_source(self, render: Source) -> None:
        """Engines and pipelines keep their own counts (chat retries, Realtime events): rendered when scraped."""
        self._registry.register(_Collector(render))

    def _collect(self) -> Iterable[Metric]:
        yield from self.active.render()
        yield from self.calls.render()
        yield from self.playout.render()
        for counter in self.per_call:
            yield from counter.render_from(self.call_stat(counter.stat))
        yield from self.errors.render()
        yield from self.turn_latency.render()

    def _describe(self) -> Iterable[Metric]:
        yield gauge_family(self.active.name, self.active.help, ())
        yield counter_family(self.calls.name, self.calls.help, ())
        yield gauge_family(self.playout.name, self.playout.help, ())
        for counter in self.per_call:
            yield counter_family(counter.name, counter.help, ())
        yield counter_family(self.errors.name, self.errors.help, ())
        yield HistogramMetricFamily(self.turn_latency.name, self.turn_latency.help)

    def render(self) -> str:
        """The /metrics page, in the Prometheus text format (`CONTENT_TYPE`)."""
        return generate_latest(self._registry).decode()

