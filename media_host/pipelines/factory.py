"""Choose the pipeline for each call from settings."""

from __future__ import annotations

from media_host.channel import CallInfo
from media_host.engines.base import Engines
from media_host.pipelines.base import Pipeline, PipelineFactory
from media_host.pipelines.cascade import CascadePipeline
from media_host.pipelines.echo import EchoPipeline
from media_host.transports.base import HostServices
from switchboard.settings import Pipeline as PipelineSetting
from switchboard.settings import Settings, SettingsError


def check_pipeline(settings: Settings) -> None:
    """Fail at start, not on the first call, when the configured pipeline cannot be built."""
    if settings.pipeline is PipelineSetting.REALTIME:
        raise SettingsError("Invalid setting PIPELINE: 'realtime' is not available in this build")


def pipeline_factory(settings: Settings, engines: Engines | None, host: HostServices) -> PipelineFactory:
    check_pipeline(settings)
    if settings.pipeline is PipelineSetting.ECHO:
        echo = EchoPipeline(prompt_ms=settings.echo_prompt_ms)
        return lambda _info: echo
    if engines is None:
        raise SettingsError("Invalid setting PIPELINE: the cascade needs its engines")

    def observe(latency: dict[str, float]) -> None:
        for mark, ms in latency.items():
            host.metrics.turn_latency.observe(ms, mark=mark)

    cascade = CascadePipeline(engines, host.control_plane, on_latency=observe)

    def make(_info: CallInfo) -> Pipeline:
        return cascade
    return make
