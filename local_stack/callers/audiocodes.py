"""The AudioCodes VoiceAI Connect (VAIC) Bot API wire, from VAIC's side: the messages it sends a bot, and
the rules a bot's messages are held to (what VAIC would not understand or would ignore).

Names as AudioCodes documents them (techdocs.audiocodes.com/voice-ai-connect/Content/Bot-API/
ac-bot-api-streaming.htm; VAIG_Combined/receive-dtmf.htm for DTMF) and as AudioCodes' SDK types them
(github.com/audiocodes/ac-bot-api, src/websocket/types.ts); media_host/transports/audiocodes.py names the rest.
"""

from __future__ import annotations

import json
import re
from typing import Any

from media_host.audio import mulaw_decode, mulaw_encode

CALLER = "+14255550123"
RATES = {"raw/lpcm16_24": 24000, "raw/lpcm16": 16000, "raw/lpcm16_8": 8000, "raw/mulaw": 8000}
# How the media host's playStream.chunk reads (media_host/transports/audiocodes_models): a load client may
# find the audio by these instead of parsing every chunk.
CHUNK_PREFIX = b'{"type":"playStream.chunk"'
CHUNK_AUDIO_KEY = b'"audioChunk":"'
_MARK = "\x00"  # stands for the audio in a message template: JSON writes it as \u0000

# Bot -> VAIC message types: BotToVaicMessageName in AudioCodes' SDK (src/websocket/types.ts), and the
# answer to Live Hub's connection.validate.
BOT_MESSAGE_TYPES = frozenset({
    "session.accepted", "session.error", "activities", "userStream.started", "userStream.stopped",
    "userStream.speech.hypothesis", "userStream.speech.recognition", "userStream.speech.started",
    "userStream.speech.stopped", "userStream.speech.committed", "playStream.start", "playStream.chunk",
    "playStream.stop", "connection.validated"})
# BotActivityEventName in the same file, and `handover` (call-transfer.htm: a synonym of transfer).
BOT_EVENT_NAMES = frozenset({
    "hangup", "transfer", "handover", "config", "playUrl", "startRecognition", "stopRecognition", "sendMetaData",
    "startCallRecording", "stopCallRecording", "pauseCallRecording", "resumeCallRecording", "abortPrompts",
    "expectAnotherBotMessage", "sendDtmf", "speakerVerificationCreateSpeaker",
    "speakerVerificationGetSpeakerStatus", "speakerVerificationDeleteSpeaker", "speakerVerificationEnroll",
    "speakerVerificationVerify"})
# sending_dtmf_digits.htm: "only digits, *, and/or #, ... up to 20 characters", else the event is ignored.
SEND_DTMF_DIGITS = re.compile(r"[0-9*#]{1,20}")


def violations_in(doc: dict[str, Any]) -> list[str]:
    """What in one bot message VAIC would not understand or would ignore."""
    kind = doc.get("type")
    if kind not in BOT_MESSAGE_TYPES:
        return [f"unknown message type {kind!r}"]
    found = []
    for activity in doc.get("activities", []) if kind == "activities" else []:
        if activity.get("type") != "event":
            continue
        name, params = activity.get("name"), activity.get("activityParams") or {}
        if name not in BOT_EVENT_NAMES:
            found.append(f"unknown event {name!r}")
        elif name == "sendDtmf" and not SEND_DTMF_DIGITS.fullmatch(str(params.get("dtmfDigits", ""))):
            found.append("sendDtmf without valid activityParams.dtmfDigits (VAIC ignores it)")
        elif name in ("transfer", "handover") and not params.get("transferTarget"):
            found.append(f"{name} without activityParams.transferTarget")
    return found


# --- VAIC -> bot -----------------------------------------------------------------------------------------
def message(kind: str, conversation_id: str, **fields: Any) -> str:
    return json.dumps({"type": kind, "conversationId": conversation_id, **fields})


def session_initiate(conversation_id: str, formats: list[str], bot_name: str, caller: str = CALLER) -> str:
    return message("session.initiate", conversation_id, expectAudioMessages=True, supportedMediaFormats=formats,
                   caller=caller, botName=bot_name)


def session_end(conversation_id: str, reason: str) -> str:
    return message("session.end", conversation_id, reasonCode="client-disconnected", reason=reason)


def dtmf(conversation_id: str, digits: str) -> str:
    """Keys pressed: an `activities` message with a `DTMF` event, the digits in `value` (receive-dtmf.htm)."""
    return message("activities", conversation_id, activities=[{"type": "event", "name": "DTMF", "value": digits}])


def chunk_template(conversation_id: str) -> tuple[bytes, bytes]:
    """userStream.chunk split around its base64 audio (compact JSON): prefix + base64 + suffix is one message,
    for a sender that splices pre-encoded audio in."""
    text = json.dumps({"type": "userStream.chunk", "conversationId": conversation_id, "audioChunk": _MARK},
                      separators=(",", ":"))
    prefix, _, suffix = text.partition(json.dumps(_MARK)[1:-1])
    return prefix.encode(), suffix.encode()


# --- audio -----------------------------------------------------------------------------------------------
def encode(pcm: bytes, media_format: str | None) -> bytes:
    """PCM16 as the negotiated format carries it (µ-law for raw/mulaw)."""
    return mulaw_encode(pcm) if media_format == "raw/mulaw" else pcm


def decode(data: bytes | bytearray, media_format: str | None) -> bytes:
    return mulaw_decode(bytes(data)) if media_format == "raw/mulaw" else bytes(data)
