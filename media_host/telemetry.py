"""OpenTelemetry traces: one span per call and one per turn. Off unless OTEL_TRACES_EXPORTER is set.

With no exporter the API's no-op tracer is used, so spans cost next to nothing. `otlp` suits an
OpenTelemetry collector (Azure Container Apps' managed agent forwards it to Application Insights).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace

from switchboard import __version__
from switchboard.settings import Settings

_tracer = trace.get_tracer("switchboard.media_host", __version__)


def setup_tracing(settings: Settings) -> None:
    if settings.otel_traces_exporter == "none":
        return
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 - only loaded when tracing is on
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter  # noqa: PLC0415

    exporter: SpanExporter
    if settings.otel_traces_exporter == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

        exporter = OTLPSpanExporter(endpoint=settings.otel_exporter_otlp_endpoint)
    provider = TracerProvider(resource=Resource.create({"service.name": "switchboard-media-host",
                                                        "service.version": __version__}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


@contextlib.contextmanager
def call_span(info: Any) -> Iterator[trace.Span]:
    attributes: dict[str, str | bool | int] = {"switchboard.call_id": info.call_id,
                                               "switchboard.transport": info.transport,
                                               "switchboard.resumed": bool(info.resumed)}
    with _tracer.start_as_current_span("call", attributes=attributes) as span:
        yield span


@contextlib.contextmanager
def turn_span(call_id: str, agent: str, turn: int) -> Iterator[trace.Span]:
    attributes: dict[str, str | bool | int] = {"switchboard.call_id": call_id, "switchboard.agent": agent,
                                               "switchboard.turn": turn}
    with _tracer.start_as_current_span("turn", attributes=attributes) as span:
        yield span
