"""Build the process's engines from settings: loaded once, warmed up, shared by every call."""

from __future__ import annotations

import logging

from media_host.brain import OfflineBrain
from media_host.engines.azure_openai_chat import azure_openai_chat_from_settings
from media_host.engines.azure_speech import describe_azure_speech, load_azure_speech
from media_host.engines.base import ChatModel, Engines, SpeechToText, TextToSpeech
from media_host.engines.embedded import describe, load_embedded
from media_host.engines.openai_chat import openai_chat_from_settings
from media_host.engines.resilient_chat import ChatRetryStats, resilient
from switchboard.settings import ChatEngine, Settings, SettingsError

log = logging.getLogger(__name__)


def check_engines(settings: Settings) -> None:
    """Fail at start (not on the first call) when the settings ask for an engine they do not configure."""
    chat = settings.resolved_chat
    if chat == ChatEngine.AZURE_OPENAI.value and not (settings.azure_openai_endpoint
                                                      and settings.azure_openai_chat_deployment):
        raise SettingsError("Invalid setting CHAT_ENGINE: azure_openai needs AZURE_OPENAI_ENDPOINT and "
                            "AZURE_OPENAI_CHAT_DEPLOYMENT")
    if chat == ChatEngine.OPENAI_COMPATIBLE.value and not settings.openai_base_url:
        raise SettingsError("Invalid setting OPENAI_BASE_URL: required for CHAT_ENGINE=openai_compatible")


def cloud_chat(settings: Settings, stats: ChatRetryStats) -> ChatModel | None:
    """The cloud chat model of these settings behind the retry policy; None for the offline brain."""
    chat = settings.resolved_chat
    if chat == ChatEngine.AZURE_OPENAI.value:
        return azure_openai_chat_from_settings(settings, stats=stats)
    if chat == ChatEngine.OPENAI_COMPATIBLE.value:
        model = openai_chat_from_settings(settings, timeout_s=settings.chat_timeout_seconds)
        return None if model is None else resilient(model, settings, stats=stats)
    return None


async def build_engines(settings: Settings, stats: ChatRetryStats | None = None) -> Engines:
    """`stats` receives the cloud chat model's retries and give-ups (the host exports them)."""
    check_engines(settings)
    brain = OfflineBrain()
    # The embedded VAD always runs (turn-taking is ours); Azure Speech replaces STT and/or TTS when selected.
    vad, embedded_stt, embedded_tts = await load_embedded(settings.embedded_tts.value)
    azure_stt, azure_tts = await load_azure_speech(settings)
    stt: SpeechToText = azure_stt or embedded_stt
    tts: TextToSpeech = azure_tts or embedded_tts
    chat = cloud_chat(settings, stats if stats is not None else ChatRetryStats()) or brain
    description = {**describe(settings.embedded_tts.value), **describe_azure_speech(settings),
                   "chat": chat.name, "fallback_chat": brain.name}
    log.info("engines ready", extra=description)
    # The offline brain answers whenever the chosen model fails mid-call, so a caller never hears silence.
    return Engines(vad=vad, stt=stt, chat=chat, tts=tts, fallback_chat=brain, description=description)
