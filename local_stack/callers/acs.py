"""The ACS media-streaming wire, from ACS's side: what it sends the app, and reading what the app sends back.

As the ACS audio streaming quickstart documents them
(learn.microsoft.com/azure/communication-services/how-tos/call-automation/audio-streaming-quickstart):
AudioMetadata first, then AudioData (base64 PCM16 mono) and DtmfData, keys in camelCase; the app's
messages (AudioData to play, StopAudio) come with `Kind` and PascalCase keys.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

CALLER = "4:+14255550123"  # participantRawID of the simulated caller
FIXED_TIME = "2026-01-01T00:00:00.000Z"
# How the media host's AudioData starts (media_host/transports/acs_models.audio_message): a load client may
# find the audio by this prefix instead of parsing every frame.
AGENT_AUDIO_PREFIX = b'{"Kind":"AudioData","AudioData":{"Data":"'
_MARK = "\x00"  # stands for the audio in a message template: JSON writes it as \u0000


def metadata(rate: int, subscription_id: str = "sub-1", **overrides: Any) -> str:
    body = {"subscriptionId": subscription_id, "encoding": "PCM", "sampleRate": rate, "channels": 1,
            "length": rate // 50 * 2, **overrides}
    return json.dumps({"kind": "AudioMetadata", "audioMetadata": body})


def _audio_doc(data: str, participant: str | None, silent: bool, timestamp: str) -> dict[str, Any]:
    body: dict[str, Any] = {"data": data, "timestamp": timestamp}
    if participant is not None:
        body["participantRawID"] = participant
    body["silent"] = silent
    return {"kind": "AudioData", "audioData": body}


def audio(pcm: bytes, participant: str | None = CALLER, silent: bool = False, timestamp: str = FIXED_TIME) -> str:
    """One AudioData message of the caller's PCM16 (`participant` None: a message without participantRawID)."""
    return json.dumps(_audio_doc(base64.b64encode(pcm).decode(), participant, silent, timestamp))


def audio_template(participant: str = CALLER, timestamp: str = FIXED_TIME) -> tuple[bytes, bytes]:
    """AudioData split around its base64 audio (compact JSON): prefix + base64 + suffix is one message, for a
    sender that splices pre-encoded audio in."""
    text = json.dumps(_audio_doc(_MARK, participant, False, timestamp), separators=(",", ":"))
    prefix, _, suffix = text.partition(json.dumps(_MARK)[1:-1])
    return prefix.encode(), suffix.encode()


def dtmf(digit: str) -> str:
    return json.dumps({"kind": "DtmfData", "dtmfData": {"data": digit}})


@dataclass(frozen=True)
class FromApp:
    """One message the app sent: `kind` is AudioData (with `audio`), StopAudio, or anything else (`doc`)."""

    kind: str
    doc: dict[str, Any]
    audio: bytes = b""


def from_app(message: str | bytes) -> FromApp:
    doc = json.loads(message)
    kind = str(doc.get("Kind"))
    if kind == "AudioData":
        return FromApp(kind, doc, base64.b64decode(doc["AudioData"]["Data"]))
    return FromApp(kind, doc)
