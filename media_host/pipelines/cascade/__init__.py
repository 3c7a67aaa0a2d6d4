"""The SpeechCascade pipeline: VAD, speech-to-text, chat model with tools, text-to-speech."""

from media_host.pipelines.cascade.pipeline import CascadePipeline

__all__ = ["CascadePipeline"]
