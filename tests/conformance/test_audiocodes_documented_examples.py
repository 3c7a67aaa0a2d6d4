"""AudioCodes VoiceAI Connect: the documented Bot API messages, read and written by the adapter's models.

Grounded in (techdocs.audiocodes.com/voice-ai-connect/Content/...):
- VAIG_Combined/receive-dtmf.htm: DTMF as `{"type": "event", "name": "DTMF", "value": "123"}`.
- VAIG_Combined/transfer-status.htm: the transferStatus event and its `value`.
- VAIG_Combined/hangup.htm, call-transfer.htm, sending_dtmf_digits.htm: the bot's hangup, transfer and
  sendDtmf events (`activityParams.dtmfDigits`, 1-20 of 0-9 * #).
- VAIG_Combined/call-disconnect.htm: the reasonCode values a conversation ends with.
- Bot-API/ac-bot-api-streaming.htm: the streaming mode's message types; their fields as AudioCodes' own
  SDK types and sends them (github.com/audiocodes/ac-bot-api, src/websocket/types.ts ProtocolMessage,
  VaicToBotMessageName, BotToVaicMessageName, BotActivityEventName; bot-conversation.ts).
The pages' examples show an activity on its own; on the streaming socket it arrives in an `activities`
message with the conversationId (ac-bot-api-streaming.htm, "Messages").

Not checkable without VAIC: whether a live VAIC compares event names case-sensitively (the docs do not
say; we accept any case), and the exact fields of session.initiate beyond those AudioCodes' SDK types.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from media_host.transports import audiocodes_models as wire
from tests.support.audiocodes_client import BOT_EVENT_NAMES, BOT_MESSAGE_TYPES, violations_in

CONVERSATION = "4a5b4b9d-dab7-42d0-a977-6740c9349588"

# receive-dtmf.htm, "AudioCodes Bot API".
DTMF: dict[str, Any] = {"type": "event", "name": "DTMF", "value": "123"}
# transfer-status.htm, "AudioCodes Bot API".
TRANSFER_STATUS: dict[str, Any] = {"type": "event", "name": "transferStatus", "value": {
    "status": "failed", "reasonCode": "declined", "reason": 'SIP ;cause=603 ;text="{603 Decline}"'}}
# sending_dtmf_digits.htm, "AudioCodes Bot API".
SEND_DTMF: dict[str, Any] = {"type": "event", "name": "sendDtmf", "activityParams": {"dtmfDigits": "12345*#"}}
# hangup.htm, "AudioCodes Bot API" (hangupReason: "Event parameters"; also AudioCodes' mock bot,
# github.com/ac-voice-ai/ac-api-samples ac-bot-api/src/mock-ac-bot.ts).
HANGUP: dict[str, Any] = {"type": "event", "name": "hangup"}

# AudioCodes' SDK, types.ts: the message types VAIC sends (VaicToBotMessageName).
VAIC_TYPES = ("session.initiate", "session.resume", "session.end", "activities", "userStream.start",
              "userStream.chunk", "userStream.stop")


def in_activities(*activities: dict[str, Any]) -> str:
    return json.dumps({"type": "activities", "conversationId": CONVERSATION, "activities": list(activities)})


def test_the_documented_dtmf_event_is_read_as_dtmf() -> None:
    message = wire.INBOUND.validate_json(in_activities(DTMF))
    assert isinstance(message, wire.Activities)
    [activity] = message.activities
    assert wire.event_name(activity) == wire.EVENT_DTMF.casefold()
    assert activity.value == "123"


def test_the_documented_transfer_status_is_read() -> None:
    message = wire.INBOUND.validate_json(in_activities(TRANSFER_STATUS))
    assert isinstance(message, wire.Activities)
    [activity] = message.activities
    assert wire.event_name(activity) == wire.EVENT_TRANSFER_STATUS.casefold()
    status = wire.TransferStatusValue.model_validate(activity.value)
    assert (status.status, status.reason_code, status.reason) == ("failed", "declined", TRANSFER_STATUS["value"]
                                                                  ["reason"])


@pytest.mark.parametrize("reason_code", ["error", "bot-disconnected", "client-disconnected", "transferred",
                                         "machine-detected", "no-answer", "busy", "declined"])
def test_session_end_with_every_documented_reason_code_is_read(reason_code: str) -> None:
    message = wire.INBOUND.validate_json(json.dumps({"type": "session.end", "conversationId": CONVERSATION,
                                                     "reasonCode": reason_code, "reason": "Client Side"}))
    assert isinstance(message, wire.SessionEnd)
    assert message.reason_code == reason_code


def test_every_message_type_vaic_sends_is_one_the_adapter_reads() -> None:
    # The fields AudioCodes' SDK types for each (ProtocolMessage): conversationId on all, and the rest.
    samples: dict[str, dict[str, Any]] = {
        "session.initiate": {"expectAudioMessages": True, "supportedMediaFormats": ["raw/lpcm16"],
                             "caller": "+14255550123"},
        "activities": {"activities": [DTMF]},
        "userStream.chunk": {"audioChunk": "AAAA"},
    }
    for kind in VAIC_TYPES:
        message = wire.INBOUND.validate_json(json.dumps({"type": kind, "conversationId": CONVERSATION,
                                                         **samples.get(kind, {})}))
        assert not isinstance(message, wire.UnknownMessage), kind
        assert message.type == kind


def activity_of(sent: str) -> dict[str, Any]:
    doc = json.loads(sent)
    assert doc["type"] == "activities"
    [activity] = doc["activities"]
    assert isinstance(activity, dict)
    return activity


def test_the_bots_send_dtmf_is_the_documented_one() -> None:
    activity = activity_of(wire.send_dtmf_activity("12345*#"))
    assert {k: activity[k] for k in SEND_DTMF} == SEND_DTMF
    for digits in ("", "12A", "1" * 21, "1 2"):  # "If empty or illegal characters are received ... ignored"
        with pytest.raises(ValueError, match="DTMF digits"):
            wire.send_dtmf_activity(digits)


def test_the_bots_hangup_and_transfer_are_the_documented_ones() -> None:
    hangup = activity_of(wire.hangup_activity("done"))
    assert {k: hangup[k] for k in HANGUP} == HANGUP
    assert hangup["activityParams"] == {"hangupReason": "done"}
    transfer = activity_of(wire.transfer_activity("+15551230000", "caller asked"))
    assert (transfer["name"], transfer["activityParams"]) == (
        "transfer", {"transferTarget": "tel:+15551230000", "handoverReason": "caller asked"})


def test_every_message_the_adapter_builds_is_one_audiocodes_defines() -> None:
    sent = [wire.CONNECTION_VALIDATED, wire.USER_STREAM_STARTED, wire.USER_STREAM_STOPPED, wire.SPEECH_STARTED,
            wire.SPEECH_STOPPED, wire.SPEECH_COMMITTED, wire.session_accepted("raw/lpcm16"),
            wire.session_error("conversation not found"), wire.hypothesis("how are"),
            wire.recognition("how are you", 0.83), wire.play_stream_start("1", "raw/lpcm16"),
            wire.play_stream_chunk("1", "AAAA"), wire.play_stream_stop("1"), wire.hangup_activity("done"),
            wire.transfer_activity("sip:agent@example.com", ""), wire.send_dtmf_activity("1")]
    for text in sent:
        doc = json.loads(text)
        assert doc["type"] in BOT_MESSAGE_TYPES
        assert violations_in(doc) == [], doc
    assert {"hangup", "transfer", "sendDtmf"} <= BOT_EVENT_NAMES
    # As AudioCodes' SDK sends them (bot-conversation.ts sendHypothesis / sendRecognition / playAudio).
    assert json.loads(wire.hypothesis("how are")) == {"type": "userStream.speech.hypothesis",
                                                      "alternatives": [{"text": "how are"}]}
    assert json.loads(wire.recognition("how are you", 0.83)) == {
        "type": "userStream.speech.recognition", "alternatives": [{"text": "how are you", "confidence": 0.83}]}
    assert json.loads(wire.play_stream_start("1", "raw/lpcm16_24")) == {
        "type": "playStream.start", "streamId": "1", "mediaFormat": "raw/lpcm16_24"}
