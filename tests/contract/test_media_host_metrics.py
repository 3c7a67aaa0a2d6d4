"""The media host's /metrics page: written by prometheus_client from our own counters (media_host/metrics.py),
read back here by prometheus_client's parser, as a Prometheus server would read it."""

from __future__ import annotations

import asyncio

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from media_host.engines.resilient_chat import ChatRetryStats
from media_host.main import CHAT_FAILURES
from media_host.metrics import Counter
from media_host.server import MediaHost
from media_host.transports.acs import AcsAdapter
from tests.support.media_harness import running_host

# What a remote service may put in a label (a Realtime error `code`): a quote, a backslash and a newline.
AWKWARD = 'rate "limit" \\ exceeded\nretry'

# Every family on the page, as dashboards and alerts know it: (name as printed, type, help).
CATALOGUE = [
    ("switchboard_active_calls", "gauge", "Calls in progress, by transport"),
    ("switchboard_calls_total", "counter", "Calls handled, by transport and outcome"),
    ("switchboard_playout_queue_frames", "gauge", "Outbound frames queued, summed over calls"),
    ("switchboard_frames_in_total", "counter", "Audio messages received from callers"),
    ("switchboard_frames_out_total", "counter", "Audio frames sent to callers"),
    ("switchboard_late_frames_total", "counter", "Outbound frames sent later than due"),
    ("switchboard_dropped_frames_total", "counter", "Inbound frames dropped by an overloaded call"),
    ("switchboard_barge_ins_total", "counter", "Times a caller interrupted the agent"),
    ("switchboard_errors_total", "counter", "Errors, by transport and kind"),
    ("switchboard_turn_latency_ms", "histogram", "Per-turn latency marks, ms after end of speech"),
    ("switchboard_session_writes_pending", "gauge", "Session writes waiting for Redis"),
    ("switchboard_session_write_faults_total", "counter", "Session writes held for a retry, dropped or refused"),
    ("switchboard_chat_failures_total", "counter",
     "Cloud chat model failures, by engine, kind and outcome (retried, gave_up...)"),
    ("switchboard_realtime_events_total", "counter", "Realtime API events, by kind"),
]


async def _scrape(host: MediaHost) -> tuple[str, str]:
    """GET /metrics as a scraper does: (Content-Type, body)."""
    assert host.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = (await reader.read()).decode()
    writer.close()
    head, body = data.split("\r\n\r\n", 1)
    assert head.split()[1] == "200"
    content_type = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                        if line.lower().startswith("content-type:"))
    return content_type, body


def _with_sources(host: MediaHost) -> Counter:
    """The sources `media_host.main` and the Realtime pipeline add; returns the Realtime events counter."""
    stats = ChatRetryStats()
    stats.record("azure_openai", "rate_limited", "retried")
    host.metrics.add_source(lambda: CHAT_FAILURES.render_from(stats.samples()))
    events = Counter("switchboard_realtime_events_total", "Realtime API events, by kind")
    host.metrics.add_source(events.render)
    return events


def _families(body: str) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(body)}


async def test_a_label_value_from_the_remote_service_keeps_the_page_valid(redis_url: str) -> None:
    async with running_host(redis_url, adapters=[AcsAdapter]) as host:
        events = _with_sources(host)
        events.inc(1.0, kind="error", code=AWKWARD)  # as the Realtime pipeline counts a server error
        host.metrics.errors.inc(transport="acs", kind=AWKWARD)
        _, body = await _scrape(host)
    families = _families(body)  # the parser raises on a broken line
    realtime = families["switchboard_realtime_events"].samples
    assert [(s.labels, s.value) for s in realtime] == [({"code": AWKWARD, "kind": "error"}, 1.0)]
    assert [s.labels["kind"] for s in families["switchboard_errors"].samples] == [AWKWARD]
    # The rest of the page is read too, not cut at the awkward line.
    assert families["switchboard_session_write_faults"].samples


async def test_the_page_keeps_its_names_types_and_help(redis_url: str) -> None:
    async with running_host(redis_url, adapters=[AcsAdapter]) as host:
        _with_sources(host)
        host.metrics.turn_latency.observe(120.0, mark="total")
        content_type, body = await _scrape(host)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    printed = [(line.split()[2], line.split()[3]) for line in body.splitlines() if line.startswith("# TYPE ")]
    helps = {line.split()[2]: line.split(" ", 3)[3] for line in body.splitlines() if line.startswith("# HELP ")}
    assert [(name, kind, helps[name]) for name, kind in printed] == CATALOGUE
    assert "_created" not in body  # counters carry no creation-time series
    # Buckets keep the `le` values dashboards match on ("50", not prometheus_client's "50.0").
    buckets = [s for s in _families(body)["switchboard_turn_latency_ms"].samples if s.name.endswith("_bucket")]
    assert [s.labels["le"] for s in buckets] == ["50", "100", "200", "300", "500", "750", "1000", "1500", "2000",
                                                 "3000", "5000", "+Inf"]
    assert [s.value for s in buckets][:2] == [0.0, 0.0]
    assert [s.value for s in buckets][2:] == [1.0] * 10
