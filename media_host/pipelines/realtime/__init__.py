"""The Realtime pipeline: speech to speech through the OpenAI / Azure OpenAI Realtime API."""

from media_host.pipelines.realtime.pipeline import RealtimePipeline, realtime_pipeline_from_settings

__all__ = ["RealtimePipeline", "realtime_pipeline_from_settings"]
