"""Conversation pipelines. Each consumes a CallChannel and knows nothing of wire formats."""

from media_host.pipelines.base import Pipeline, PipelineFactory

__all__ = ["Pipeline", "PipelineFactory"]
