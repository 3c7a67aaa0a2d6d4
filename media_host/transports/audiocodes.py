"""The AudioCodes VoiceAI Connect Bot API adapter (streaming mode) at /ws.

VAIC opens this socket per conversation with `Authorization: Bearer <shared token>`. It starts the
call with `session.initiate` (or `session.resume` after a dropped socket), streams the caller as
base64 `userStream.chunk`s and reports DTMF, transfer outcomes and the call start as `activities`.
We answer with `session.accepted`, play the agent as one `playStream` per utterance, and send
hang-ups, transfers and the pipeline's speech events back on the same socket: AudioCodes calls have
no separate control plane.

The session is created here (there is no incoming-call webhook for AudioCodes): the conversation id
is the call id, the scenario is the one `botName` names, else the default. A `session.resume` while the
conversation's old socket is still open on this host closes the old one (audiocodes_sockets.py).

Names as AudioCodes documents them, under techdocs.audiocodes.com/voice-ai-connect/Content/: message
types in Bot-API/ac-bot-api-streaming.htm and AudioCodes' SDK (github.com/audiocodes/ac-bot-api,
src/websocket/types.ts); events in VAIG_Combined/: call-initiation.htm (`start`), receive-dtmf.htm
(`DTMF`, digits in `value`), transfer-status.htm, hangup.htm (`hangupReason`), call-transfer.htm,
sending_dtmf_digits.htm (`sendDtmf`, `dtmfDigits`). `connection.validate` is in neither: as answered by
github.com/deepgram/deepgram-audiocodes-bridge (audiocodes_handler.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import re
import time
from typing import Any, ClassVar, Final, NoReturn

from pydantic import ValidationError
from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request

from media_host.audio import mulaw_decode, mulaw_encode
from media_host.channel import CallChannel, CallInfo
from media_host.events import (
    CallerHungUp,
    DtmfReceived,
    HangUp,
    Hypothesis,
    Outbound,
    Recognition,
    SendDtmf,
    SpeechStarted,
    SpeechStopped,
    StopPlayback,
    Transfer,
    TransferStatusReceived,
    TurnCommitted,
)
from media_host.playout import UtteranceEnd
from media_host.transports import audiocodes_models as wire
from media_host.transports.audiocodes_sockets import Attached, conversations, supersede
from media_host.transports.base import (
    Admission,
    CloseCode,
    HostServices,
    NotACall,
    ProtocolViolation,
    Rejected,
    WireAdapter,
    close_reason,
)
from switchboard.logs import mask_phone
from switchboard.session_models import CallPhase, CallSession, CallState

log = logging.getLogger(__name__)

CONVERSATION_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")  # it becomes a Redis key
REFUSE_WAIT_S: Final = 2.0  # over capacity: how long to wait for session.initiate to answer it


def _parse(message: str | bytes) -> wire.InboundMessage:
    if isinstance(message, bytes):
        raise ProtocolViolation(CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted: send JSON text",
                                "binary_frame")
    try:
        return wire.INBOUND.validate_json(message)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        if first["type"] == "json_invalid":
            raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, "malformed JSON", "malformed_json") from None
        where = ".".join(str(p) for p in first["loc"][1:])  # loc[0] is the union tag
        detail = f"{where}: {first['msg']}" if where else first["msg"]
        raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, f"invalid message: {detail}", "invalid_message") from None


class AudioCodesAdapter(WireAdapter):
    transport: ClassVar[str] = "audiocodes"
    path: ClassVar[str] = "/ws"

    def idle_timeout(self) -> float:
        # VAIC sends nothing while a transfer target rings or a prompt plays without barge-in;
        # websockets' keepalive pings still catch a dead connection.
        return self.host.settings.audiocodes_idle_timeout_seconds

    def __init__(self, ws: ServerConnection, host: HostServices, admission: Admission) -> None:
        super().__init__(ws, host, admission)
        self._format = wire.MEDIA_FORMATS["raw/lpcm16"]
        self._call_id = ""
        self._error_sent = False  # one session.error per socket
        self._streaming = False  # between userStream.start and userStream.stop
        self._out_of_order_logged = False
        self._ended = False  # session.end received
        self._stream_id: str | None = None  # the play stream in progress
        self._streams = 0
        self._send_lock = asyncio.Lock()  # keeps playStream start/chunk/stop of two sender tasks in order
        self._bad_transfer_status_logged = False
        self._attached = Attached(ws)  # this socket, once it carries an accepted conversation

    # --- upgrade -------------------------------------------------------------------------------
    @classmethod
    async def authorize(cls, request: Request, host: HostServices) -> Admission:
        expected = host.settings.audiocodes_bot_token
        if expected is None or not expected.get_secret_value():
            raise Rejected(503, "not_configured", "the AudioCodes endpoint is not configured")
        scheme, _, token = (request.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Rejected(401, "unauthorized", "missing bearer token")
        if not hmac.compare_digest(token.strip().encode(), expected.get_secret_value().encode()):
            raise Rejected(401, "unauthorized", "invalid bearer token")
        return Admission()

    # --- opening -------------------------------------------------------------------------------
    async def open(self) -> CallInfo:
        message = _parse(await self.ws.recv())
        if isinstance(message, wire.ConnectionValidate):
            await self._answer_probe()
        if isinstance(message, wire.SessionInitiate):
            return await self._initiate(message)
        if isinstance(message, wire.SessionResume):
            return await self._resume(message)
        raise ProtocolViolation(CloseCode.POLICY, f"expected session.initiate first, not {message.type[:40]}",
                                "not_initiated")

    async def _answer_probe(self) -> NoReturn:
        """`connection.validate` is a connectivity check, not a call: answer it and close normally.

        Raising NotACall ends the socket without a call and without an error.
        """
        await self.ws.send(wire.CONNECTION_VALIDATED)
        await self.ws.close(CloseCode.NORMAL, "connection validated")
        log.info("connection validated", extra={"transport": self.transport})
        raise NotACall

    def _check_conversation_id(self, conversation_id: str) -> str:
        if not CONVERSATION_ID.fullmatch(conversation_id):
            raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, "invalid conversationId", "bad_conversation_id")
        return conversation_id

    def _choose_format(self, offered: list[str]) -> wire.MediaFormat:
        chosen = wire.choose_format(offered)
        if chosen is None:
            listed = ", ".join(offered)[:200] or "none"
            raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, f"no supported media format; offered {listed}",
                                    "unsupported_format")
        return chosen

    async def _initiate(self, message: wire.SessionInitiate) -> CallInfo:
        call_id = self._check_conversation_id(message.conversation_id)
        self._format = self._choose_format(message.supported_media_formats)
        catalog = self.host.agents.current
        bot_name = message.bot_name or ""
        scenario_name = bot_name if bot_name in catalog.scenarios else self.host.settings.default_scenario
        if scenario_name not in catalog.scenarios:
            raise ProtocolViolation(CloseCode.INTERNAL, "no scenario for this bot", "no_scenario")
        scenario = catalog.scenario(scenario_name)
        session = CallSession(
            call_id=call_id, scenario=scenario_name, current_agent=scenario.entry_agent.name,
            caller=message.caller or None, status=CallPhase.CONNECTED,
            context={"audiocodes": {"mediaFormat": self._format.name, "botName": bot_name,
                                    "expectAudioMessages": message.expect_audio_messages}},
        )
        try:
            created = await self.host.store.create(session)
        except RedisError:
            log.exception("session store unavailable", extra={"transport": self.transport})
            raise ProtocolViolation(CloseCode.INTERNAL, "session store unavailable", "store_unavailable") from None
        if not created:
            raise ProtocolViolation(CloseCode.POLICY, "conversation already exists", "duplicate_conversation")
        if not message.expect_audio_messages:
            log.warning("VAIC does not expect audio messages; the agent's audio may not be played",
                        extra={"transport": self.transport})
        await self._accept(call_id)
        log.info("session initiated", extra={"transport": self.transport, "media_format": self._format.name,
                                             "scenario": scenario_name, "caller": mask_phone(message.caller)})
        return CallInfo(call_id=call_id, transport=self.transport, wire_rate=self._format.rate,
                        state=CallState(session=session),
                        parameters={"bot_name": bot_name, "media_format": self._format.name,
                                    "expect_audio_messages": message.expect_audio_messages})

    async def _resume(self, message: wire.SessionResume) -> CallInfo:
        call_id = self._check_conversation_id(message.conversation_id)
        stale = conversations(self.host).get(call_id)  # its old socket, if still attached on this host
        if stale is not None and await supersede(stale, call_id, self.host.writer):
            self.host.metrics.errors.inc(transport=self.transport, kind="stale_socket")
            log.warning("session.resume while the old socket was open: closed it", extra={"transport": self.transport})
        try:
            state = await self.host.store.load(call_id)
        except RedisError:
            log.exception("session store unavailable", extra={"transport": self.transport})
            raise ProtocolViolation(CloseCode.INTERNAL, "session store unavailable", "store_unavailable") from None
        stored: dict[str, Any] | None = state.session.context.get("audiocodes") if state is not None else None
        if state is None or not isinstance(stored, dict):  # never ours: another transport's call is not resumable here
            raise ProtocolViolation(CloseCode.POLICY, "conversation not found", "unknown_call")
        if state.session.status is CallPhase.ENDED:
            raise ProtocolViolation(CloseCode.POLICY, "conversation has ended", "conversation_ended")
        known = wire.MEDIA_FORMATS.get(str(stored.get("mediaFormat")))
        offered = message.supported_media_formats or []
        if known is None or (offered and known.name not in {o.strip().lower() for o in offered}):
            known = self._choose_format(offered)  # VAIC offers others: negotiate again
            await self._store_context(call_id, {"mediaFormat": known.name})
        self._format = known
        await self._accept(call_id)
        log.info("session resumed", extra={"transport": self.transport, "media_format": known.name})
        return CallInfo(call_id=call_id, transport=self.transport, wire_rate=known.rate, state=state, resumed=True,
                        parameters={"bot_name": stored.get("botName", ""), "media_format": known.name})

    async def _accept(self, call_id: str) -> None:
        self._call_id = call_id
        conversations(self.host).attach(call_id, self._attached)
        await self.ws.send(wire.session_accepted(self._format.name))

    def call_finished(self) -> None:
        conversations(self.host).detach(self._call_id, self._attached)

    # --- inbound -------------------------------------------------------------------------------
    async def on_message(self, message: str | bytes, channel: CallChannel) -> None:
        parsed = _parse(message)
        conversation_id = getattr(parsed, "conversation_id", None)
        if conversation_id is not None and conversation_id != self._call_id:
            raise ProtocolViolation(CloseCode.POLICY, "conversationId does not match this session",
                                    "conversation_mismatch")
        channel.touch()  # any valid message is life, even while VAIC pauses the user stream
        if isinstance(parsed, wire.UserStreamChunk):
            self._on_chunk(parsed.audio_chunk, channel)
        elif isinstance(parsed, wire.UserStreamStart):
            self._streaming, self._out_of_order_logged = True, False
            await self.ws.send(wire.USER_STREAM_STARTED)
        elif isinstance(parsed, wire.UserStreamStop):
            self._streaming = False
            await self.ws.send(wire.USER_STREAM_STOPPED)
        elif isinstance(parsed, wire.Activities):
            for activity in parsed.activities:
                await self._on_activity(activity, channel)
        elif isinstance(parsed, wire.SessionEnd):
            if not self._ended:
                self._ended = True
                reason = parsed.reason or parsed.reason_code or "session.end"
                log.info("session ended by VAIC", extra={"transport": self.transport,
                                                         "reason_code": parsed.reason_code})
                channel.feed_event(CallerHungUp(reason[:200]))
        elif isinstance(parsed, wire.ConnectionValidate):
            await self.ws.send(wire.CONNECTION_VALIDATED)
        elif isinstance(parsed, wire.SessionInitiate | wire.SessionResume):
            raise ProtocolViolation(CloseCode.POLICY, "session already started on this socket", "duplicate_session")
        else:
            self.ignore_unknown(parsed.type)

    def _on_chunk(self, chunk: str, channel: CallChannel) -> None:
        if not self._streaming:
            self.host.metrics.errors.inc(transport=self.transport, kind="out_of_order")
            if not self._out_of_order_logged:  # one line per stop, not one per 20 ms chunk
                self._out_of_order_logged = True
                log.warning("ignoring userStream.chunk outside userStream.start/stop",
                            extra={"transport": self.transport})
            return
        channel.feed_audio(self._decode(chunk), time.monotonic())

    def _decode(self, chunk: str) -> bytes:
        fmt = self._format
        limit = fmt.bytes_per_second
        if len(chunk) > (limit + 2) // 3 * 4:
            raise ProtocolViolation(CloseCode.TOO_BIG, "audio chunk longer than 1 s", "frame_too_large")
        try:
            data = binascii.a2b_base64(chunk, strict_mode=True)
        except (binascii.Error, ValueError):
            raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, "audioChunk is not valid base64", "bad_base64") from None
        if len(data) > limit:
            raise ProtocolViolation(CloseCode.TOO_BIG, "audio chunk longer than 1 s", "frame_too_large")
        if fmt.mulaw:
            return mulaw_decode(data)
        if len(data) % 2:
            raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, "audioChunk has an odd number of bytes", "odd_length")
        return data

    async def _on_activity(self, activity: wire.Activity, channel: CallChannel) -> None:
        name = wire.event_name(activity)
        if name is None:
            self.ignore_unknown(activity.type, "activity type")
        elif name == wire.EVENT_DTMF.casefold():
            digits = str(activity.value or "").strip()[:32]
            if digits:
                channel.feed_event(DtmfReceived(digits))
        elif name == wire.EVENT_TRANSFER_STATUS.casefold():
            try:
                status = wire.TransferStatusValue.model_validate(activity.value)
            except ValidationError:
                if not self._bad_transfer_status_logged:  # once per call: VAIC may repeat it
                    self._bad_transfer_status_logged = True
                    log.info("ignoring a transferStatus without a status", extra={"transport": self.transport})
                return
            detail = ": ".join(x for x in (status.reason_code, status.reason) if x)
            channel.feed_event(TransferStatusReceived(status.status, detail[:200]))
        elif name == wire.EVENT_START.casefold():
            await self._on_start(activity, channel)
        else:
            self.ignore_unknown(name, "activity event")

    async def _on_start(self, activity: wire.Activity, channel: CallChannel) -> None:
        """The call's extras go into the session (locale, callee), not into a second CallStarted."""
        params = dict(activity.parameters or {})
        locale = params.get("locale") or activity.language
        callee = params.get("callee")

        def apply(session: CallSession) -> None:
            session.context.setdefault("audiocodes", {})["start"] = params
            if isinstance(locale, str) and locale:
                session.locale = locale[:35]
            if isinstance(callee, str) and callee and session.callee is None:
                session.callee = callee[:200]

        # Written behind (never raises, never holds the reader up while Redis is down).
        await channel.update_session(apply)

    async def _store_context(self, call_id: str, values: dict[str, Any]) -> None:
        """While the call opens (no channel yet): through the host's writer, as the channel's own writes."""
        def apply(session: CallSession) -> None:
            session.context.setdefault("audiocodes", {}).update(values)

        await self.host.writer.update(call_id, apply)

    # --- outbound ------------------------------------------------------------------------------
    async def send_audio(self, frame: bytes) -> None:
        payload = mulaw_encode(frame) if self._format.mulaw else frame
        b64 = base64.b64encode(payload).decode("ascii")
        async with self._send_lock:
            if self._stream_id is None:
                self._streams += 1
                self._stream_id = str(self._streams)
                await self.ws.send(wire.play_stream_start(self._stream_id, self._format.name))
            await self.ws.send(wire.play_stream_chunk(self._stream_id, b64))

    async def send_utterance_end(self, marker: UtteranceEnd) -> None:
        await self._stop_stream()

    async def _stop_stream(self) -> None:
        async with self._send_lock:
            if self._stream_id is not None:
                stream_id, self._stream_id = self._stream_id, None
                await self.ws.send(wire.play_stream_stop(stream_id))

    async def send_control(self, event: Outbound, channel: CallChannel) -> None:
        if isinstance(event, StopPlayback):
            await self._stop_stream()
        elif isinstance(event, SpeechStarted):
            await self.ws.send(wire.SPEECH_STARTED)
        elif isinstance(event, SpeechStopped):
            await self.ws.send(wire.SPEECH_STOPPED)
        elif isinstance(event, TurnCommitted):
            await self.ws.send(wire.SPEECH_COMMITTED)
        elif isinstance(event, Hypothesis):
            await self.ws.send(wire.hypothesis(event.text))
        elif isinstance(event, Recognition):
            await self.ws.send(wire.recognition(event.text, event.confidence))
        elif isinstance(event, HangUp):
            log.info("hanging up", extra={"transport": self.transport, "reason": event.reason})
            await self.ws.send(wire.hangup_activity(event.reason))
        elif isinstance(event, Transfer):
            target = wire.transfer_target(event.target)
            if not target.lower().startswith(("tel:", "sip:", "sips:")):
                log.warning("transfer target is neither E.164 nor a URI; sent as is",
                            extra={"transport": self.transport})
            log.info("transferring", extra={"transport": self.transport, "target": mask_phone(event.target)})
            await self.ws.send(wire.transfer_activity(event.target, event.reason))
        elif isinstance(event, SendDtmf):
            try:
                await self.ws.send(wire.send_dtmf_activity(event.digits))
            except ValueError:  # VAIC would ignore it without a word: say so here
                log.warning("not sending DTMF digits VAIC would ignore", extra={"transport": self.transport})

    # --- ending --------------------------------------------------------------------------------
    async def _send_error(self, reason: str) -> None:
        if not self._error_sent:
            self._error_sent = True
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(wire.session_error(reason))

    async def refuse(self, reason: str) -> None:
        """Over capacity: answer VAIC's session.initiate with session.error, then close 1013."""
        first: str | bytes | None = None
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            first = await asyncio.wait_for(self.ws.recv(), timeout=REFUSE_WAIT_S)
        probe = False
        if first is not None:
            with contextlib.suppress(ProtocolViolation):
                probe = isinstance(_parse(first), wire.ConnectionValidate)
        if probe:  # a connectivity probe is answered whatever the load: it is not a call
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(wire.CONNECTION_VALIDATED)
            await self.ws.close(CloseCode.NORMAL, "connection validated")
            return
        await self._send_error(reason)
        await self.ws.close(CloseCode.TRY_AGAIN_LATER, close_reason(reason))

    async def finish(self, code: CloseCode, reason: str) -> None:
        """A normal end needs no message (the hang-up activity went first, or VAIC ended the session);
        any other end tells VAIC why with session.error before the close."""
        if code != CloseCode.NORMAL:
            await self._send_error(reason)
        await self.ws.close(code, close_reason(reason))
