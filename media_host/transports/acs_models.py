"""The ACS bidirectional media-streaming messages (protocols.md section 3), parsed once at the edge.

Inbound keys are camelCase (`participantRawID` with a capital ID); outbound is the documented
PascalCase shape. Unknown fields are ignored: ACS adds fields over time.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

SUPPORTED_RATES = (16000, 24000)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AudioMetadata(_Wire):
    subscription_id: str | None = Field(None, alias="subscriptionId")
    encoding: str = "PCM"
    sample_rate: int = Field(alias="sampleRate")
    channels: int = 1
    length: int | None = None


class AudioData(_Wire):
    data: str | None = None
    timestamp: str | None = None
    participant: str | None = Field(None, alias="participantRawID")
    silent: bool = False


class DtmfData(_Wire):
    data: str


class InboundMessage(_Wire):
    kind: str
    audio_metadata: AudioMetadata | None = Field(None, alias="audioMetadata")
    audio_data: AudioData | None = Field(None, alias="audioData")
    dtmf_data: DtmfData | None = Field(None, alias="dtmfData")


# Outbound messages are tiny fixed shapes on the per-frame path: formatted, not serialised.
_AUDIO_PREFIX = '{"Kind":"AudioData","AudioData":{"Data":"'
_AUDIO_SUFFIX = '"},"StopAudio":null}'
STOP_AUDIO = '{"Kind":"StopAudio","AudioData":null,"StopAudio":{}}'


def audio_message(b64: str) -> str:
    return _AUDIO_PREFIX + b64 + _AUDIO_SUFFIX
