"""A call produces an OpenTelemetry span with its ids (exporter swapped for an in-memory one)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from local_stack.callers.acs_client import AcsClient
from media_host.transports.acs import AcsAdapter
from switchboard.settings import load_settings
from tests.support.media_harness import running_host, seed_call

EXPORTER = InMemorySpanExporter()


def _install() -> None:
    # The global provider can be set once per process; tracing is otherwise a no-op in tests.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)


def test_tracing_is_off_by_default() -> None:
    assert load_settings().otel_traces_exporter == "none"


async def test_each_call_is_a_span(redis_url: str) -> None:
    _install()
    EXPORTER.clear()
    async with running_host(redis_url, adapters=[AcsAdapter]) as host:
        call_id, token = await seed_call(host)
        assert host.port is not None
        async with AcsClient(host.port, token) as acs:
            await acs.send_frame(bytes(960))
            await acs.wait_for(lambda r: len(r.audio) == 1)
    spans = [s for s in EXPORTER.get_finished_spans() if s.name == "call"]
    assert len(spans) == 1
    assert spans[0].attributes is not None
    assert spans[0].attributes["switchboard.call_id"] == call_id
    assert spans[0].attributes["switchboard.transport"] == "acs"
