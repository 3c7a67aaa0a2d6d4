"""The Speech SDK configuration, from settings: authentication, audio format, recognition options.

Authentication, in this order:

- `SPEECH_KEY` with `SPEECH_ENDPOINT`: the key against that endpoint (a custom domain, or a
  sovereign cloud's endpoint).
- `SPEECH_KEY` with `SPEECH_REGION`: the key against the region's standard endpoints.
- `SPEECH_ENDPOINT` without a key: Microsoft Entra ID. The endpoint must be the resource's custom
  domain (`https://<name>.cognitiveservices.azure.com`); the identity needs the "Cognitive Services
  Speech User" role. SDK 1.53 takes the credential itself (`SpeechConfig(token_credential=...)`): every
  recognizer and synthesizer asks it for a `https://cognitiveservices.azure.com/.default` token when
  its connection needs one, on the SDK's thread, and refreshes it before it expires. So no
  `aad#<resourceId>#<token>` authorization token is built and refreshed here by hand. The credential
  is the synchronous `DefaultAzureCredential` (a managed identity in Azure, `az login` locally),
  because the SDK calls it synchronously.

Constructing the configuration contacts nothing; the network is used when a connection opens.

Audio and recognition options, chosen for phone calls:

- Synthesis: raw 24 kHz 16-bit mono PCM, no WAV header (`Raw24Khz16BitMonoPcm`): the cascade's
  speaker takes PCM16, and 24 kHz is the highest rate any call channel plays (8/16/24 kHz).
- Recognition, detailed output: the per-phrase confidence (NBest[0].Confidence) becomes
  `Transcript.confidence`.
- Profanity raw: the transcript is for the agent's model, which must see what the caller said;
  masking would turn words into asterisks the model cannot read.
- Segmentation silence 300 ms: the media host's VAD decides when the caller's turn is over and then
  ends the audio; the service's own phrase end only splits the turn into phrases (joined again), so
  a short one makes phrases final sooner and leaves less to do once the audio ends.
- The SDK sends the first 5 s of pushed audio at once and then throttles to about real time. The
  cascade pushes a whole turn when the caller stops, so the burst is widened to cover a long turn
  (`SPEECH-TransmitLengthBeforThrottleMs`, the SDK's own (undocumented) property, spelling and all).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

import azure.cognitiveservices.speech as speechsdk

from switchboard.settings import Settings, SettingsError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

COGNITIVE_SERVICES_SCOPE: Final = "https://cognitiveservices.azure.com/.default"  # what the SDK asks for
SEGMENTATION_SILENCE_MS: Final = 300
BURST_MS: Final = 30000  # pushed audio sent unthrottled: a 30 s turn in one go
OUTPUT_FORMAT: Final = speechsdk.SpeechSynthesisOutputFormat.Raw24Khz16BitMonoPcm
OUTPUT_SAMPLE_RATE: Final = 24000  # must match OUTPUT_FORMAT

AuthMode = Literal["key+endpoint", "key+region", "entra"]


def auth_mode(settings: Settings) -> AuthMode:
    """How the service is reached with these settings (see the module docstring)."""
    if settings.speech_key is not None and settings.speech_key.get_secret_value():
        if settings.speech_endpoint:
            return "key+endpoint"
        if settings.speech_region:
            return "key+region"
        raise SettingsError("Invalid setting SPEECH_KEY: SPEECH_REGION or SPEECH_ENDPOINT is required with it")
    if settings.speech_endpoint:
        return "entra"
    raise SettingsError("Invalid setting SPEECH_ENDPOINT: Azure Speech needs SPEECH_KEY with SPEECH_REGION, "
                        "or SPEECH_ENDPOINT (a custom domain, for Entra ID)")


def default_credential() -> TokenCredential:
    """The synchronous DefaultAzureCredential (its constructor contacts nothing)."""
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only Entra ID needs it

    return DefaultAzureCredential()


def speech_config(settings: Settings, *, credential: TokenCredential | None = None) -> speechsdk.SpeechConfig:
    """A configuration for recognizers and synthesizers alike. `credential` is used for Entra ID
    (default: `DefaultAzureCredential`); the caller owns it and closes it at shutdown."""
    mode = auth_mode(settings)
    key = settings.speech_key.get_secret_value() if settings.speech_key is not None else None
    if mode == "key+endpoint":
        config = speechsdk.SpeechConfig(subscription=key, endpoint=settings.speech_endpoint)
    elif mode == "key+region":
        config = speechsdk.SpeechConfig(subscription=key, region=settings.speech_region)
    else:
        config = speechsdk.SpeechConfig(endpoint=settings.speech_endpoint,
                                        token_credential=credential or default_credential())
    apply_call_options(config)
    return config


def apply_call_options(config: speechsdk.SpeechConfig) -> None:
    """The phone-call options of the module docstring."""
    config.set_speech_synthesis_output_format(OUTPUT_FORMAT)
    config.output_format = speechsdk.OutputFormat.Detailed
    config.set_profanity(speechsdk.ProfanityOption.Raw)
    config.set_property(speechsdk.PropertyId.Speech_SegmentationSilenceTimeoutMs, str(SEGMENTATION_SILENCE_MS))
    config.set_property_by_name("SPEECH-TransmitLengthBeforThrottleMs", str(BURST_MS))
