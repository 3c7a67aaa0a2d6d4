"""A simulated AudioCodes VoiceAI Connect (VAIC): opens the Bot API socket as VAIC does, starts a
session from the fixture payloads, streams caller audio, and collects what the bot sends back.

Used by the contract tests and the benchmarks. Every message the bot sends is kept in order in
`messages`, except `playStream.chunk`, whose audio is kept per stream in `streams` (wire bytes).

What VAIC sends is what AudioCodes documents (DTMF as an event named `DTMF`, receive-dtmf.htm; see
media_host/transports/audiocodes.py for the pages). What the bot sends is held to the same documents:
a message type or event name AudioCodes does not define, or a command VAIC would ignore, is recorded
in `violations`, and leaving the client with any fails the test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from media_host.audio import mulaw_decode, mulaw_encode
from tests.media_harness import AUDIOCODES_TOKEN

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "payloads"
RATES = {"raw/lpcm16_24": 24000, "raw/lpcm16": 16000, "raw/lpcm16_8": 8000, "raw/mulaw": 8000}


# Bot -> VAIC message types: BotToVaicMessageName in AudioCodes' SDK (github.com/audiocodes/ac-bot-api,
# src/websocket/types.ts), and the answer to Live Hub's connection.validate.
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


def payload(name: str, **overrides: Any) -> dict[str, Any]:
    """The fixture `audiocodes_<name>.json`, with top-level fields replaced."""
    doc: dict[str, Any] = json.loads((FIXTURES / f"audiocodes_{name}.json").read_text())
    return {**doc, **overrides}


@dataclass
class PlayStream:
    stream_id: str
    media_format: str
    audio: bytearray = field(default_factory=bytearray)  # wire bytes, as sent
    chunks: int = 0
    stopped: bool = False
    chunks_after_stop: int = 0


class AudioCodesClient:
    def __init__(self, port: int, *, token: str | None = AUDIOCODES_TOKEN, conversation_id: str | None = None,
                 path: str = "/ws") -> None:
        self.url = f"ws://127.0.0.1:{port}{path}"
        self.token = token
        self.conversation_id = conversation_id or f"conv-{uuid.uuid4()}"
        self.media_format: str | None = None
        self.messages: list[dict[str, Any]] = []
        self.violations: list[str] = []  # what the bot sent that VAIC would not act on
        self.streams: dict[str, PlayStream] = {}
        self.chunk_arrival: list[float] = []  # monotonic time of every playStream.chunk
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.ws: ClientConnection | None = None
        self._cursor = 0  # messages before it were consumed by expect()
        self._reader: asyncio.Task[None] | None = None
        self._new = asyncio.Event()

    # --- connection ----------------------------------------------------------------------------
    async def __aenter__(self) -> AudioCodesClient:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token is not None else {}
        self.ws = await connect(self.url, additional_headers=headers, max_size=None, compression=None)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, exc_type: object = None, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if exc_type is None and self.violations:
            raise AssertionError(f"the bot sent what VAIC would not act on: {self.violations}")

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                self._on_message(json.loads(raw))
                self._new.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_code, self.close_reason = self.ws.close_code, self.ws.close_reason
            self._new.set()

    def _on_message(self, doc: dict[str, Any]) -> None:
        kind = doc.get("type")
        if kind != "playStream.chunk":  # per frame: formatted by the bot from a fixed template
            self.violations += violations_in(doc)
        if kind == "playStream.chunk":
            stream = self.streams[doc["streamId"]]
            stream.audio += base64.b64decode(doc["audioChunk"])
            stream.chunks += 1
            stream.chunks_after_stop += stream.stopped
            self.chunk_arrival.append(time.monotonic())
            return
        if kind == "playStream.start":
            self.streams[doc["streamId"]] = PlayStream(doc["streamId"], doc["mediaFormat"])
        elif kind == "playStream.stop":
            self.streams[doc["streamId"]].stopped = True
        elif kind == "session.accepted" and doc.get("mediaFormat"):
            self.media_format = doc["mediaFormat"]
        self.messages.append(doc)

    @property
    def open(self) -> bool:
        return self._reader is not None and not self._reader.done()

    # --- sending -------------------------------------------------------------------------------
    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        """Send a message; a dict is JSON-encoded. A socket the host closed first is not an error."""
        assert self.ws is not None
        data = json.dumps(message) if isinstance(message, dict) else message
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(data)

    async def send_fixture(self, name: str, **overrides: Any) -> None:
        doc = payload(name, **overrides)
        if "conversationId" in doc:
            doc["conversationId"] = overrides.get("conversationId", self.conversation_id)
        await self.send(doc)

    async def initiate(self, formats: list[str] | None = None, **overrides: Any) -> dict[str, Any]:
        """session.initiate from the fixture; returns the reply (session.accepted or session.error)."""
        if formats is not None:
            overrides["supportedMediaFormats"] = formats
        await self.send_fixture("session_initiate", **overrides)
        return await self.expect("session.accepted", "session.error")

    async def resume(self) -> dict[str, Any]:
        await self.send_fixture("session_resume")
        return await self.expect("session.accepted", "session.error")

    async def start_stream(self) -> None:
        await self.send_fixture("user_stream_start")
        await self.expect("userStream.started")

    async def stop_stream(self) -> None:
        await self.send_fixture("user_stream_stop")
        await self.expect("userStream.stopped")

    async def send_audio(self, pcm: bytes) -> None:
        """One userStream.chunk of caller audio (PCM16 at the negotiated rate; µ-law encoded if negotiated)."""
        await self.send_fixture("user_stream_chunk", audioChunk=base64.b64encode(self.encode(pcm)).decode())

    async def stream_audio(self, pcm: bytes, frame_ms: int = 20) -> None:
        """Caller audio in real time, one chunk per `frame_ms` (for benchmarks and long calls)."""
        size = self.rate * frame_ms // 1000 * 2
        started = time.monotonic()
        for n, at in enumerate(range(0, len(pcm), size)):
            await self.send_audio(pcm[at:at + size])
            await asyncio.sleep(max(0.0, started + (n + 1) * frame_ms / 1000 - time.monotonic()))

    async def dtmf(self, digits: str) -> None:
        doc = payload("activities_dtmf", conversationId=self.conversation_id)
        doc["activities"] = [{**doc["activities"][0], "value": digits}]
        await self.send(doc)

    async def end(self) -> None:
        await self.send_fixture("session_end")

    # --- audio ---------------------------------------------------------------------------------
    @property
    def rate(self) -> int:
        return RATES[self.media_format or "raw/lpcm16"]

    def encode(self, pcm: bytes) -> bytes:
        return mulaw_encode(pcm) if self.media_format == "raw/mulaw" else pcm

    def decode(self, data: bytes | bytearray) -> bytes:
        return mulaw_decode(bytes(data)) if self.media_format == "raw/mulaw" else bytes(data)

    def played(self, stream_id: str | None = None) -> bytes:
        """What the bot played, as PCM16: one stream, or all of them in order."""
        streams = [self.streams[stream_id]] if stream_id else list(self.streams.values())
        return b"".join(self.decode(s.audio) for s in streams)

    # --- waiting -------------------------------------------------------------------------------
    async def wait_for(self, predicate: Callable[[AudioCodesClient], bool], limit: float = 5.0) -> None:
        """Wait until `predicate(self)` holds; fail if the socket closes first or after `limit` s."""
        async with asyncio.timeout(limit):
            while not predicate(self):
                if not self.open:
                    raise AssertionError(f"socket closed: {self.close_code} {self.close_reason}")
                self._new.clear()
                await self._new.wait()

    async def expect(self, *types: str, limit: float = 5.0) -> dict[str, Any]:
        """The next message (after those already expected) of one of `types`; earlier others are skipped."""
        found: list[dict[str, Any]] = []

        def seen(_: AudioCodesClient) -> bool:
            for i in range(self._cursor, len(self.messages)):
                if self.messages[i].get("type") in types:
                    self._cursor = i + 1
                    found.append(self.messages[i])
                    return True
            return False

        await self.wait_for(seen, limit)
        return found[0]

    def received(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    async def closed(self, limit: float = 5.0) -> tuple[int | None, str | None]:
        """Wait for the socket to close (the host closes it); returns the close code and reason."""
        assert self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), limit)
        return self.close_code, self.close_reason
