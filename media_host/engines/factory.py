"""Build the process's engines from settings: loaded once, warmed up, shared by every call."""

from __future__ import annotations

import logging

from media_host.brain import OfflineBrain
from media_host.engines.base import ChatModel, Engines
from media_host.engines.embedded import describe, load_embedded
from media_host.engines.openai_chat import openai_chat_from_settings
from switchboard.settings import ChatEngine, Settings, SettingsError

log = logging.getLogger(__name__)


def check_engines(settings: Settings) -> None:
    """Fail at start (not on the first call) when the settings ask for an engine this build lacks."""
    if settings.resolved_stt != "embedded" or settings.resolved_tts != "embedded":
        raise SettingsError("Invalid setting STT_ENGINE/TTS_ENGINE: the Azure Speech engines are not "
                            "available in this build")
    if settings.resolved_chat == ChatEngine.AZURE_OPENAI.value:
        raise SettingsError("Invalid setting CHAT_ENGINE: azure_openai is not available in this build")


def _chat(settings: Settings, brain: OfflineBrain) -> ChatModel:
    if settings.resolved_chat == ChatEngine.OPENAI_COMPATIBLE.value:
        model = openai_chat_from_settings(settings, timeout_s=settings.chat_timeout_seconds)
        if model is None:
            raise SettingsError("Invalid setting OPENAI_BASE_URL: required for CHAT_ENGINE=openai_compatible")
        return model
    return brain


async def build_engines(settings: Settings) -> Engines:
    check_engines(settings)
    brain = OfflineBrain()
    vad, stt, tts = await load_embedded(settings.embedded_tts.value)
    chat = _chat(settings, brain)
    description = {**describe(settings.embedded_tts.value), "chat": chat.name, "fallback_chat": brain.name}
    log.info("engines ready", extra=description)
    # The offline brain answers whenever the chosen model fails mid-call, so a caller never hears silence.
    return Engines(vad=vad, stt=stt, chat=chat, tts=tts, fallback_chat=brain, description=description)
