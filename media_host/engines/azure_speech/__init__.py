"""Azure AI Speech behind the cascade's engine interfaces: `AzureSpeechToText` and `AzureTextToSpeech`.

What runs where: connecting, recognizing and synthesizing only happen against the real Azure Speech
service (with a key, or Entra ID on a custom domain) and are not exercised by the unit tests, which
use no network. Tested locally (tests/unit/test_azure_speech.py): building the SDK configuration for
each way of authenticating, the SSML, and everything between the SDK's events and the interfaces:
partial and final text, joining and confidence, cancellations and time-outs, the hand-off from SDK
threads to the event loop, audio chunks in order with any WAV header stripped, and the pools' lending,
refilling and releasing (with stand-in recognizers and synthesizers).

    stt, tts = azure_speech_engines(settings)               # no network yet; None where not selected
    stt, tts = await load_azure_speech(settings, languages=["en-US"])   # the same, pre-warmed

Modules: `config` (SpeechConfig from settings), `ssml`, `events` (SDK events to plain values, and the
pure logic over them), `recognizer` and `synthesizer` (SDK objects, pooled and pre-warmed), `stt`
and `tts` (the interfaces).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from media_host.engines.azure_speech.config import auth_mode, speech_config
from media_host.engines.azure_speech.events import SpeechServiceError, SpeechTimeout
from media_host.engines.azure_speech.ssml import build_ssml
from media_host.engines.azure_speech.stt import DEFAULT_POOL_SIZE, AzureSpeechToText, AzureSttStream
from media_host.engines.azure_speech.tts import AzureTextToSpeech
from switchboard.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

AZURE = "azure"


def azure_speech_engines(settings: Settings, *, credential: TokenCredential | None = None,
                         pool_size: int = DEFAULT_POOL_SIZE) -> tuple[AzureSpeechToText | None,
                                                                      AzureTextToSpeech | None]:
    """The Azure STT and TTS that the settings select (`resolved_stt`/`resolved_tts` == "azure"), None
    for the others. Contacts nothing: pools fill on first use, or with `load_azure_speech`.
    `credential`: for Entra ID (default `DefaultAzureCredential`), kept for the process's lifetime.
    Raises `SettingsError` when Azure is selected but Speech is not configured."""
    want_stt = settings.resolved_stt == AZURE
    want_tts = settings.resolved_tts == AZURE
    if not (want_stt or want_tts):
        return None, None
    config = speech_config(settings, credential=credential)  # one config: the SDK copies it per object
    stt = AzureSpeechToText(config, pool_size=pool_size) if want_stt else None
    tts = AzureTextToSpeech.from_config(config, pool_size=pool_size) if want_tts else None
    return stt, tts


async def load_azure_speech(settings: Settings, *, languages: Sequence[str] = ("en-US",),
                            credential: TokenCredential | None = None,
                            pool_size: int = DEFAULT_POOL_SIZE) -> tuple[AzureSpeechToText | None,
                                                                         AzureTextToSpeech | None]:
    """`azure_speech_engines`, then pre-warmed: recognizers for `languages` (the agents' locales) and
    synthesizers, with their connections opening. Pre-warm failures are logged, not raised: a call
    then pays the set-up itself, or reports the service's error."""
    stt, tts = azure_speech_engines(settings, credential=credential, pool_size=pool_size)
    await asyncio.gather(*([stt.warm_up(tuple(languages))] if stt else []), *([tts.warm_up()] if tts else []))
    return stt, tts


def describe_azure_speech(settings: Settings) -> dict[str, str]:
    """For `Engines.description` and the health page (no secrets)."""
    described: dict[str, str] = {}
    if AZURE not in (settings.resolved_stt, settings.resolved_tts):
        return described
    where = settings.speech_endpoint or settings.speech_region or "?"
    auth = auth_mode(settings)
    if settings.resolved_stt == AZURE:
        described["stt"] = f"azure speech 16 kHz ({auth}, {where})"
    if settings.resolved_tts == AZURE:
        described["tts"] = f"azure speech 24 kHz ({auth}, {where})"
    return described


__all__ = [
    "AzureSpeechToText",
    "AzureSttStream",
    "AzureTextToSpeech",
    "SpeechServiceError",
    "SpeechTimeout",
    "auth_mode",
    "azure_speech_engines",
    "build_ssml",
    "describe_azure_speech",
    "load_azure_speech",
    "speech_config",
]
