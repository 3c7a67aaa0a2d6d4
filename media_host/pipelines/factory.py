"""Choose the pipeline for each call from settings."""

from __future__ import annotations

from agents import AgentLibrary
from media_host.channel import CallInfo
from media_host.pipelines.base import Pipeline, PipelineFactory
from media_host.pipelines.echo import EchoPipeline
from switchboard.settings import Pipeline as PipelineSetting
from switchboard.settings import Settings, SettingsError


def pipeline_factory(settings: Settings, agents: AgentLibrary) -> PipelineFactory:
    """Raises SettingsError at start if the configured pipeline cannot be built."""
    if settings.pipeline is PipelineSetting.ECHO:
        def echo(_info: CallInfo) -> Pipeline:
            return EchoPipeline(prompt_ms=settings.echo_prompt_ms)
        return echo
    raise SettingsError(f"Invalid setting PIPELINE: '{settings.pipeline.value}' is not available in this build")
