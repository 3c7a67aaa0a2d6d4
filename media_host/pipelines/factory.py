"""Choose the pipeline for each call from settings."""

from __future__ import annotations

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
        realtime = realtime_pipeline_from_settings(settings, host.control_plane, observe, metrics=host.metrics)
        host.metrics.add_source(realtime.events.render)
        pipeline = realtime
    elif engines is None:
        raise SettingsError("Invalid setting PIPELINE: the cascade needs its engines")
    else:
        pipeline = CascadePipeline(engines, host.control_plane, on_latency=observe)

    def make(_info: CallInfo) -> Pipeline:
        return pipeline
    return make
