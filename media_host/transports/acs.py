"""The ACS media-streaming adapter at /api/v1/media/stream.

ACS opens this socket when a call connects, with the per-call media token we put in `transport_url`
and (when ACS_RESOURCE_ID is set) its own JWT. Inbound: AudioMetadata first, then AudioData and
DtmfData. Outbound: AudioData frames and StopAudio. Hang-ups and transfers of ACS calls are Call
Automation requests, so they go to the control plane rather than onto this socket.
"""

from __future__ import annotations

import base64
import binascii
import functools
import time
from typing import ClassVar

from pydantic import ValidationError
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request

from media_host.channel import CallChannel, CallInfo
from media_host.events import DtmfReceived, HangUp, Outbound, StopPlayback, Transfer
from media_host.transports.acs_models import STOP_AUDIO, SUPPORTED_RATES, InboundMessage, audio_message
from media_host.transports.base import (
    Admission,
    CloseCode,
    HostServices,
    ProtocolViolation,
    Rejected,
    WireAdapter,
    query_token_claims,
)
from switchboard.acs_auth import AcsAuthError, AcsJwtVerifier
from switchboard.tokens import Purpose


@functools.cache
def _verifier(jwks_url: str, issuer: str, audience: str, lifespan: int) -> AcsJwtVerifier:
    return AcsJwtVerifier(jwks_url, issuer, audience, lifespan_seconds=lifespan)


def _parse(message: str | bytes) -> InboundMessage:
    if isinstance(message, bytes):
        raise ProtocolViolation(CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted: ACS sends JSON text",
                                "binary_frame")
    try:
        return InboundMessage.model_validate_json(message)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        if first["type"] == "json_invalid":
            raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, "malformed JSON", "malformed_json") from None
        where = ".".join(str(p) for p in first["loc"])
        raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, f"invalid message: {where}: {first['msg']}",
                                "invalid_message") from None


class AcsAdapter(WireAdapter):
    transport: ClassVar[str] = "acs"
    path: ClassVar[str] = "/api/v1/media/stream"

    def __init__(self, ws: ServerConnection, host: HostServices, admission: Admission) -> None:
        super().__init__(ws, host, admission)
        self._rate = 0
        self._max_bytes = 0
        self._silence = b""
        self._speaker: str | None = None  # unmixed audio: the caller's participant id

    @classmethod
    async def authorize(cls, request: Request, host: HostServices) -> Admission:
        claims = query_token_claims(request, host, Purpose.MEDIA)
        settings = host.settings
        if settings.acs_resource_id:
            verifier = _verifier(settings.acs_jwks_url, settings.acs_jwt_issuer, settings.acs_resource_id,
                                 settings.acs_jwks_lifespan_seconds)
            try:
                await verifier.verify(request.headers.get("Authorization"))
            except AcsAuthError as exc:
                raise Rejected(401, "unauthorized", f"ACS token: {exc}") from None
        return Admission(claims={
            "call_id": claims.call_id,
            "call_connection_id": request.headers.get("x-ms-call-connection-id"),
            "correlation_id": request.headers.get("x-ms-call-correlation-id"),
        })

    async def open(self) -> CallInfo:
        while True:  # AudioMetadata comes first; anything we do not know before it is skipped
            message = _parse(await self.ws.recv())
            if message.kind == "AudioMetadata":
                break
            if message.kind == "AudioData":
                raise ProtocolViolation(CloseCode.POLICY, "AudioData before AudioMetadata", "out_of_order")
            self.ignore_unknown(message.kind, "message kind")
        metadata = message.audio_metadata
        if metadata is None:
            raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, "AudioMetadata without audioMetadata", "invalid_message")
        if metadata.sample_rate not in SUPPORTED_RATES or metadata.encoding.upper() != "PCM" or metadata.channels != 1:
            raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, f"unsupported audio format: {metadata.encoding} "
                                    f"{metadata.sample_rate} Hz x{metadata.channels}", "unsupported_format")
        self._rate = metadata.sample_rate
        self._silence = bytes(self._rate // 50 * 2)  # one 20 ms frame, allocated once per call
        self._max_bytes = self._rate * 2  # one second: far more than any real frame
        call_id = str(self.admission.claims["call_id"])
        state = await self.host.store.load(call_id)
        if state is None:
            raise ProtocolViolation(CloseCode.POLICY, "unknown call", "unknown_call")
        session = state.session
        return CallInfo(call_id=call_id, transport=self.transport, wire_rate=self._rate,
                        correlation_id=self.admission.claims.get("correlation_id") or session.correlation_id,
                        state=state, resumed=session.greeted,
                        parameters={"call_connection_id": self.admission.claims.get("call_connection_id")})

    async def on_message(self, message: str | bytes, channel: CallChannel) -> None:
        parsed = _parse(message)
        if parsed.kind == "AudioData" and parsed.audio_data is not None:
            audio = parsed.audio_data
            if audio.participant is not None:
                if self._speaker is None:
                    self._speaker = audio.participant
                elif audio.participant != self._speaker:  # unmixed: other participants are not the caller
                    channel.touch()
                    return
            channel.feed_audio(self._decode(audio.data, audio.silent), time.monotonic())
        elif parsed.kind == "DtmfData" and parsed.dtmf_data is not None:
            channel.feed_event(DtmfReceived(parsed.dtmf_data.data[:32]))
        elif parsed.kind == "AudioMetadata":
            if parsed.audio_metadata is not None and parsed.audio_metadata.sample_rate != self._rate:
                raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, "sample rate changed mid-call", "format_changed")
            channel.touch()
        else:
            self.ignore_unknown(parsed.kind, "message kind")
            channel.touch()

    def _decode(self, data: str | None, silent: bool) -> bytes:
        if not data:
            if silent:
                return self._silence
            raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, "AudioData without data", "missing_audio")
        if len(data) > self._max_bytes * 4 // 3 + 4:
            raise ProtocolViolation(CloseCode.TOO_BIG, "audio frame too large", "frame_too_large")
        try:
            # Strict validation in C: b64decode(validate=True) runs a Python regex over every frame.
            pcm = binascii.a2b_base64(data, strict_mode=True)
        except (binascii.Error, ValueError):
            raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, "audio data is not valid base64", "bad_base64") from None
        if len(pcm) % 2:
            raise ProtocolViolation(CloseCode.INVALID_PAYLOAD, "audio data has an odd number of bytes", "odd_length")
        return pcm

    async def send_audio(self, frame: bytes) -> None:
        await self.ws.send(audio_message(base64.b64encode(frame).decode("ascii")))

    async def send_control(self, event: Outbound, channel: CallChannel) -> None:
        if isinstance(event, StopPlayback):
            await self.ws.send(STOP_AUDIO)
        elif isinstance(event, Transfer):
            await self.host.control_plane.request_transfer(channel.call_id, event.target, event.reason)
        elif isinstance(event, HangUp):
            await self.host.control_plane.request_hangup(channel.call_id, event.reason)
