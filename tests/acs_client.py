"""A simulated ACS media stream: connects as ACS does, sends caller frames, collects what comes back."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


@dataclass
class Received:
    audio: list[bytes] = field(default_factory=list)
    stops: list[int] = field(default_factory=list)  # index into `audio` at which each StopAudio arrived
    other: list[dict[str, Any]] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)  # monotonic time of each audio frame


def metadata(rate: int, **overrides: Any) -> str:
    body = {"subscriptionId": "sub-1", "encoding": "PCM", "sampleRate": rate, "channels": 1,
            "length": rate // 50 * 2, **overrides}
    return json.dumps({"kind": "AudioMetadata", "audioMetadata": body})


def audio(pcm: bytes, participant: str | None = "4:+14255550123", silent: bool = False) -> str:
    body: dict[str, Any] = {"data": base64.b64encode(pcm).decode(), "timestamp": "2026-01-01T00:00:00.000Z",
                            "silent": silent}
    if participant is not None:
        body["participantRawID"] = participant
    return json.dumps({"kind": "AudioData", "audioData": body})


def dtmf(digit: str) -> str:
    return json.dumps({"kind": "DtmfData", "dtmfData": {"data": digit}})


class AcsClient:
    def __init__(self, port: int, token: str | None, rate: int = 24000, headers: dict[str, str] | None = None,
                 send_metadata: bool = True) -> None:
        query = f"?token={token}" if token is not None else ""
        self.url = f"ws://127.0.0.1:{port}/api/v1/media/stream{query}"
        self.rate = rate
        self.frame_bytes = rate // 50 * 2
        self.headers = {"x-ms-call-connection-id": "conn-1", "x-ms-call-correlation-id": "corr-1", **(headers or {})}
        self.send_metadata = send_metadata
        self.received = Received()
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._new = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None

    async def __aenter__(self) -> AcsClient:
        self.ws = await connect(self.url, additional_headers=self.headers, max_size=None, compression=None)
        self._reader = asyncio.create_task(self._read())
        if self.send_metadata:
            with contextlib.suppress(ConnectionClosed):  # a refused call may already be closed
                await self.ws.send(metadata(self.rate))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                doc = json.loads(message)
                if doc.get("Kind") == "AudioData":
                    self.received.audio.append(base64.b64decode(doc["AudioData"]["Data"]))
                    self.received.arrival.append(time.monotonic())
                elif doc.get("Kind") == "StopAudio":
                    self.received.stops.append(len(self.received.audio))
                else:
                    self.received.other.append(doc)
                self._new.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            self._new.set()

    async def send(self, message: str | bytes) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):  # the host may close first; tests check the close code
            await self.ws.send(message)

    async def send_frame(self, pcm: bytes, participant: str | None = "4:+14255550123") -> None:
        await self.send(audio(pcm, participant))

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> None:
        """Wait until `predicate(received)` holds (or the socket closes), failing after `timeout`."""
        async with asyncio.timeout(timeout):
            while not predicate(self.received):
                if self._reader is not None and self._reader.done():
                    raise AssertionError(f"socket closed: {self.close_code} {self.close_reason}")
                self._new.clear()
                await self._new.wait()

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str | None]:
        assert self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.close_code, self.close_reason
