"""Choose the pipeline for each call from settings."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from media_host.channel import CallInfo
from media_host.engines.base import Engines
from media_host.pipelines.base import Pipeline, PipelineFactory
from media_host.pipelines.cascade import CascadePipeline
from media_host.pipelines.echo import EchoPipeline
from media_host.pipelines.realtime import realtime_pipeline_from_settings
from media_host.transports.base import HostServices
from switchboard.settings import PipelineKind, Settings, SettingsError


def check_pipeline(settings: Settings) -> None:
    """Fail at start, not on the first call, when the configured pipeline cannot be built."""
    if settings.pipeline is PipelineKind.REALTIME and settings.resolved_realtime is None:
        raise SettingsError("Invalid setting PIPELINE: 'realtime' needs AZURE_OPENAI_ENDPOINT and "
                            "AZURE_OPENAI_REALTIME_DEPLOYMENT, or OPENAI_API_KEY, or REALTIME_WEBSOCKET_URL")


log = logging.getLogger(__name__)


async def cascade_engines(settings: Settings, build: Callable[[], Awaitable[Engines]]) -> Engines | None:
    """The cascade's engines: a cascade host's own, and a Realtime host's fallback (realtime/fallback.py) when
    they are installed (embedded) or configured (Azure Speech). Built at start, not at the first fallback: that
    happens while a caller waits, and loading the engines takes seconds (docs/performance.md: 5-13 s for a host
    with the embedded ones). Without them a Realtime call the service drops goes to a person."""
    if settings.pipeline is PipelineKind.CASCADE:
        return await build()
    if settings.pipeline is not PipelineKind.REALTIME:
        return None
    try:
        return await build()
    except SettingsError as exc:
        log.warning("realtime calls cannot fall back to the cascade (they go to a person): %s", exc)
    except Exception:  # the Realtime calls need none of it: the host serves them anyway
        log.exception("realtime calls cannot fall back to the cascade: its engines failed to load")
    return None


def pipeline_factory(settings: Settings, engines: Engines | None, host: HostServices) -> PipelineFactory:
    check_pipeline(settings)
    if settings.pipeline is PipelineKind.ECHO:
        echo = EchoPipeline(prompt_ms=settings.echo_prompt_ms)
        return lambda _info: echo

    def observe(latency: dict[str, float]) -> None:
        for mark, ms in latency.items():
            host.metrics.turn_latency.observe(ms, mark=mark)

    pipeline: Pipeline
    if settings.pipeline is PipelineKind.REALTIME:
        fallback = CascadePipeline(engines, host.control_plane, on_latency=observe) if engines is not None else None
        realtime = realtime_pipeline_from_settings(settings, host.control_plane, observe, metrics=host.metrics,
                                                   fallback=fallback)
        host.metrics.add_source(realtime.events.render)
        host.metrics.add_source(realtime.fallbacks.render)
        pipeline = realtime
    elif engines is None:
        raise SettingsError("Invalid setting PIPELINE: the cascade needs its engines")
    else:
        pipeline = CascadePipeline(engines, host.control_plane, on_latency=observe)

    def make(_info: CallInfo) -> Pipeline:
        return pipeline
    return make
