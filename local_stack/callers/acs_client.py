"""ACS's media socket under a test's control: it connects as ACS does and sends what the test says, frame by
frame, and keeps everything the app sends back (agent audio, StopAudio, anything else) in `received`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from local_stack.callers import acs
from local_stack.callers.socket import HostSocket


@dataclass
class Received:
    audio: list[bytes] = field(default_factory=list)
    stops: list[int] = field(default_factory=list)  # index into `audio` at which each StopAudio arrived
    other: list[dict[str, Any]] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)  # monotonic time of each audio frame


class AcsClient(HostSocket):
    def __init__(self, port: int, token: str | None, rate: int = 24000, headers: dict[str, str] | None = None,
                 send_metadata: bool = True) -> None:
        super().__init__()
        query = f"?token={token}" if token is not None else ""
        self.url = f"ws://127.0.0.1:{port}/api/v1/media/stream{query}"
        self.rate = rate
        self.frame_bytes = rate // 50 * 2
        self.headers = {"x-ms-call-connection-id": "conn-1", "x-ms-call-correlation-id": "corr-1", **(headers or {})}
        self.send_metadata = send_metadata
        self.received = Received()

    async def __aenter__(self) -> Self:
        await self._open(self.url, self.headers)
        if self.send_metadata:
            await self.send(acs.metadata(self.rate))  # a refused call may already be closed
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    def _on_message(self, message: str | bytes) -> None:
        got = acs.from_app(message)
        if got.kind == "AudioData":
            self.received.audio.append(got.audio)
            self.received.arrival.append(time.monotonic())
        elif got.kind == "StopAudio":
            self.received.stops.append(len(self.received.audio))
        else:
            self.received.other.append(got.doc)

    async def send(self, message: str | bytes) -> None:
        await self._send(message)

    async def send_frame(self, pcm: bytes, participant: str | None = acs.CALLER) -> None:
        await self.send(acs.audio(pcm, participant))

    async def wait_for(self, predicate: Callable[[Received], Any], timeout: float = 5.0) -> None:
        """Wait until `predicate(received)` holds (or the socket closes), failing after `timeout`."""
        await self._until(lambda: bool(predicate(self.received)), timeout)

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str | None]:
        return await self._until_closed(timeout)
