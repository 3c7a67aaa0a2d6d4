"""Valid messages of every protocol, to mutate from: the captured payloads (tests/fixtures/payloads, copies
of ../shared/reference/payloads) with the fields a real peer varies drawn from a seeded generator."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from functools import cache
from pathlib import Path
from random import Random
from typing import Any

from media_host.transports.acs_models import SUPPORTED_RATES
from media_host.transports.audiocodes_models import MEDIA_FORMATS
from media_host.transports.browser_models import WIRE_RATES

PAYLOADS = Path(__file__).resolve().parent.parent / "fixtures" / "payloads"
Json = Any

ACS_KINDS = ("AudioMetadata", "AudioData", "DtmfData", "TranscriptionMetadata", "TranscriptionData", "StopAudio")
AUDIOCODES_TYPES = ("session.initiate", "session.resume", "session.end", "connection.validate", "userStream.start",
                    "userStream.chunk", "userStream.stop", "activities", "session.accepted", "playStream.start")
ACTIVITY_NAMES = ("start", "dtmf", "transferStatus", "hangup", "transfer", "unknownEvent")
BROWSER_TYPES = ("start", "dtmf", "hangup", "ping", "ready", "error", "stop_audio")
AUDIOCODES_FORMATS = (*MEDIA_FORMATS, "wav/lpcm16", "raw/alaw", "RAW/LPCM16", " raw/mulaw ", "", "raw/lpcm16_48")
DTMF_DIGITS = "0123456789*#ABCD"
CALLBACK_FILES = tuple(sorted(p.stem for p in PAYLOADS.glob("acs_callback_*.json")))
CALLBACK_TYPES = tuple(f"Microsoft.Communication.{n}" for n in (
    "CallConnected", "CallDisconnected", "MediaStreamingStarted", "MediaStreamingStopped", "MediaStreamingFailed",
    "CallTransferAccepted", "CallTransferFailed", "ParticipantsUpdated", "PlayCompleted", "RecognizeFailed"))
GRID_TYPES = ("Microsoft.Communication.IncomingCall", "Microsoft.EventGrid.SubscriptionValidationEvent",
              "Microsoft.Communication.CallEnded", "")


@cache
def _payload_text(name: str) -> str:
    return (PAYLOADS / f"{name}.json").read_text()


def payload(name: str) -> Json:
    """A fresh copy of the captured payload `name` (safe to change)."""
    return json.loads(_payload_text(name))


def uuid_from(rng: Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def pcm(rng: Random, samples: int) -> bytes:
    """PCM16 that is not silence (a random level per chunk), cheap to make."""
    return rng.randrange(-30000, 30000).to_bytes(2, "little", signed=True) * samples


# --- ACS media -----------------------------------------------------------------------------------------


def acs_metadata(rng: Random, rate: int | None = None) -> Json:
    doc = payload("acs_media_audio_metadata")
    rate = rate or rng.choice(SUPPORTED_RATES)
    doc["audioMetadata"].update(sampleRate=rate, length=rate // 50 * 2, subscriptionId=uuid_from(rng))
    return doc


def acs_audio(rng: Random, rate: int = 24000, *, silent: bool | None = None) -> Json:
    doc = payload("acs_media_audio_data")
    samples = rng.choice((rate // 50, rate // 50, rate // 100, rate // 5))
    silent = rng.random() < 0.1 if silent is None else silent
    doc["audioData"].update(data="" if silent and rng.random() < 0.5 else base64.b64encode(pcm(rng, samples)).decode(),
                            silent=silent)
    if rng.random() < 0.2:
        doc["audioData"]["participantRawID"] = rng.choice(("4:+14255550123", "8:acs:other", "4:+18005550100"))
    return doc


def acs_dtmf(rng: Random, digits: str | None = None) -> Json:
    doc = payload("acs_media_dtmf_data")
    doc["dtmfData"]["data"] = digits if digits is not None else rng.choice(DTMF_DIGITS.replace("#", ""))
    return doc


# --- AudioCodes Bot API --------------------------------------------------------------------------------


def audiocodes(name: str, conversation_id: str, **fields: Any) -> Json:
    doc = payload(f"audiocodes_{name}")
    if "conversationId" in doc:
        doc["conversationId"] = conversation_id
    doc.update(fields)
    return doc


def audiocodes_formats(rng: Random) -> list[str]:
    offered = rng.sample(AUDIOCODES_FORMATS, rng.randrange(1, 5))
    if rng.random() < 0.85 and not any(f in MEDIA_FORMATS for f in offered):
        offered.append(rng.choice(list(MEDIA_FORMATS)))  # most sessions can be accepted
    return offered


def audiocodes_initiate(rng: Random, conversation_id: str) -> Json:
    return audiocodes("session_initiate", conversation_id, supportedMediaFormats=audiocodes_formats(rng),
                      botName=rng.choice(("banking", "clinic", "my_bot_name", "")),
                      expectAudioMessages=rng.random() < 0.9)


def audiocodes_chunk(rng: Random, conversation_id: str, media_format: str) -> Json:
    fmt = MEDIA_FORMATS.get(media_format, MEDIA_FORMATS["raw/lpcm16"])
    samples = rng.choice((fmt.rate // 50, fmt.rate // 100, fmt.rate // 10))
    data = bytes(rng.randrange(256) for _ in range(8)) * (samples // 8) if fmt.mulaw else pcm(rng, samples)
    return audiocodes("user_stream_chunk", conversation_id, audioChunk=base64.b64encode(data).decode())


def audiocodes_activity(rng: Random, conversation_id: str) -> Json:
    name = rng.choice(("activities_start", "activities_dtmf", "activities_transfer_status", "activities_message"))
    doc = audiocodes(name, conversation_id)
    if name == "activities_dtmf":
        doc["activities"][0]["value"] = rng.choice(DTMF_DIGITS.replace("#", ""))
    return doc


# --- browser softphone ---------------------------------------------------------------------------------


def browser_start(rng: Random, rate: int | None = None) -> Json:
    fmt: dict[str, Any] = {"encoding": "pcm16", "sample_rate": rate or rng.choice(WIRE_RATES)}
    if rng.random() < 0.5:
        fmt["channels"] = 1
    if rng.random() < 0.5:
        fmt["frame_ms"] = rng.choice((10, 20, 100))
    return {"type": "start", "format": fmt}


def browser_control(rng: Random) -> Json:
    roll = rng.randrange(3)
    if roll == 0:
        return {"type": "dtmf", "digits": "".join(rng.choice(DTMF_DIGITS.replace("#", "")) for _ in range(3))}
    if roll == 1:
        return {"type": "ping", "id": uuid_from(rng)[:8]}
    return {"type": rng.choice(("subscribe", "mute", "x-new-feature")), "value": 1}


# --- Function App ingress ------------------------------------------------------------------------------


def callback_array(rng: Random, call_id: str, connection_id: str, server_call_id: str) -> Json:
    """A captured callback CloudEvents array, rewritten to one call's ids with fresh event ids."""
    events = payload(rng.choice(CALLBACK_FILES))
    source = f"calling/callConnections/{connection_id}"
    for event in events:
        event.update(id=uuid_from(rng), source=source, subject=source)
        event["data"].update(callConnectionId=connection_id, correlationId=call_id, serverCallId=server_call_id)
    return events


def validation_events(rng: Random) -> Json:
    events = payload("eventgrid_validation")
    events[0]["data"]["validationCode"] = uuid_from(rng)
    return events


def media_host_event(rng: Random) -> tuple[str, Json]:
    """A media-host event name and body, as the media host's control plane posts them."""
    name = rng.choice(("AgentHandoff", "Authenticated", "TransferRequested", "HangupRequested"))
    bodies: dict[str, Json] = {
        "AgentHandoff": {"from_agent": "auth", "to_agent": "account", "reason": "balance"},
        "Authenticated": {"customer": "ada"},
        "TransferRequested": {"target": "+18005550199", "reason": "asked for a person"},
        "HangupRequested": {"reason": "caller said goodbye"},
    }
    return name, copy.deepcopy(bodies[name])
