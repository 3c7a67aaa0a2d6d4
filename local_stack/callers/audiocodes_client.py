"""VAIC's side of the Bot API socket under a test's control: it sends AudioCodes' documented example
messages as the test says, and keeps everything the bot sends.

Every bot message is kept in order in `messages`, except `playStream.chunk`, whose audio is kept per stream
in `streams` (wire bytes). A bot message VAIC would not act on (audiocodes.violations_in) is recorded in
`violations`, and leaving the client with any fails the test.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from local_stack.callers import audiocodes
from local_stack.callers.socket import HostSocket
from local_stack.callers.speech import send_paced

Examples = Callable[[str], dict[str, Any]]  # AudioCodes' example message by name, e.g. "session_initiate"


@dataclass
class PlayStream:
    stream_id: str
    media_format: str
    audio: bytearray = field(default_factory=bytearray)  # wire bytes, as sent
    chunks: int = 0
    stopped: bool = False
    chunks_after_stop: int = 0


class AudioCodesClient(HostSocket):
    def __init__(self, port: int, *, token: str | None, examples: Examples, conversation_id: str | None = None,
                 path: str = "/ws") -> None:
        super().__init__()
        self.url = f"ws://127.0.0.1:{port}{path}"
        self.token = token
        self.examples = examples
        self.conversation_id = conversation_id or f"conv-{uuid.uuid4()}"
        self.media_format: str | None = None
        self.messages: list[dict[str, Any]] = []
        self.violations: list[str] = []  # what the bot sent that VAIC would not act on
        self.streams: dict[str, PlayStream] = {}
        self.chunk_arrival: list[float] = []  # monotonic time of every playStream.chunk
        self._cursor = 0  # messages before it were consumed by expect()

    # --- connection ----------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token is not None else {}
        await self._open(self.url, headers)
        return self

    async def __aexit__(self, exc_type: object = None, *exc: object) -> None:
        await self._close()
        if exc_type is None and self.violations:
            raise AssertionError(f"the bot sent what VAIC would not act on: {self.violations}")

    def _on_message(self, message: str | bytes) -> None:
        doc = json.loads(message)
        kind = doc.get("type")
        if kind == "playStream.chunk":  # per frame: formatted by the bot from a fixed template
            stream = self.streams[doc["streamId"]]
            stream.audio += base64.b64decode(doc["audioChunk"])
            stream.chunks += 1
            stream.chunks_after_stop += stream.stopped
            self.chunk_arrival.append(time.monotonic())
            return
        self.violations += audiocodes.violations_in(doc)
        if kind == "playStream.start":
            self.streams[doc["streamId"]] = PlayStream(doc["streamId"], doc["mediaFormat"])
        elif kind == "playStream.stop":
            self.streams[doc["streamId"]].stopped = True
        elif kind == "session.accepted" and doc.get("mediaFormat"):
            self.media_format = doc["mediaFormat"]
        self.messages.append(doc)

    # --- sending -------------------------------------------------------------------------------
    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        """Send a message; a dict is JSON-encoded. A socket the host closed first is not an error."""
        await self._send(json.dumps(message) if isinstance(message, dict) else message)

    async def send_fixture(self, name: str, **overrides: Any) -> None:
        """AudioCodes' example message `name`, top-level fields replaced, in this conversation."""
        doc = {**self.examples(name), **overrides}
        if "conversationId" in doc:
            doc["conversationId"] = overrides.get("conversationId", self.conversation_id)
        await self.send(doc)

    async def initiate(self, formats: list[str] | None = None, **overrides: Any) -> dict[str, Any]:
        """session.initiate from the example; returns the reply (session.accepted or session.error)."""
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
        await send_paced(pcm, self.rate * frame_ms // 1000 * 2, self.send_audio, frame_ms / 1000)

    async def dtmf(self, digits: str) -> None:
        doc = {**self.examples("activities_dtmf"), "conversationId": self.conversation_id}
        doc["activities"] = [{**doc["activities"][0], "value": digits}]
        await self.send(doc)

    async def end(self) -> None:
        await self.send_fixture("session_end")

    # --- audio ---------------------------------------------------------------------------------
    @property
    def rate(self) -> int:
        return audiocodes.RATES[self.media_format or "raw/lpcm16"]

    def encode(self, pcm: bytes) -> bytes:
        return audiocodes.encode(pcm, self.media_format)

    def decode(self, data: bytes | bytearray) -> bytes:
        return audiocodes.decode(data, self.media_format)

    def played(self, stream_id: str | None = None) -> bytes:
        """What the bot played, as PCM16: one stream, or all of them in order."""
        streams = [self.streams[stream_id]] if stream_id else list(self.streams.values())
        return b"".join(self.decode(s.audio) for s in streams)

    # --- waiting -------------------------------------------------------------------------------
    async def wait_for(self, predicate: Callable[[AudioCodesClient], bool], limit: float = 5.0) -> None:
        """Wait until `predicate(self)` holds; fail if the socket closes first or after `limit` s."""
        await self._until(lambda: predicate(self), limit)

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
        return await self._until_closed(limit)
