"""A small browser-softphone client for tests and benchmarks: it speaks docs/browser-protocol.md.

`BrowserClient.create_session()` asks the media host for a call and a token (plain HTTP, in a thread),
`BrowserClient.connect()` opens the socket, sends `start` and waits for `ready`. From then on a reader
task collects what the host sends: agent audio into `audio` (one bytearray), JSON events into
`events`, each tagged with `_at`, the length of `audio` when it arrived (so a test can tell which
audio came before and after an event). Waiting is on data, never on time: `wait_until(predicate)`
wakes on every message and fails when the socket closes or after `within` seconds.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


def http_request(method: str, url: str, body: bytes | None = None, within: float = 5.0,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """One blocking HTTP request with a JSON answer: (status, body). Run it in a thread from async code."""
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=within) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def start_message(sample_rate: int = 16000, encoding: str = "pcm16", **extra: Any) -> str:
    return json.dumps({"type": "start", "format": {"encoding": encoding, "sample_rate": sample_rate, **extra}})


class BrowserClient:
    def __init__(self, ws: ClientConnection, ready: dict[str, Any], sample_rate: int) -> None:
        self.ws = ws
        self.ready = ready
        self.sample_rate = sample_rate
        self.audio = bytearray()
        self.events: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="browser-client-reader")

    # --- getting a call ------------------------------------------------------------------------
    @staticmethod
    async def create_session(http_base: str, scenario: str | None = None) -> dict[str, Any]:
        """POST /api/v1/realtime/sessions; returns the 201 body (call_id, token, ws_url...)."""
        body = json.dumps({} if scenario is None else {"scenario": scenario}).encode()
        status, answer = await asyncio.to_thread(http_request, "POST", f"{http_base}/api/v1/realtime/sessions", body)
        if status != 201:
            raise AssertionError(f"session request answered {status}: {answer}")
        return answer

    @classmethod
    async def connect(cls, url: str, *, sample_rate: int = 16000, within: float = 5.0,
                      **format_extra: Any) -> BrowserClient:
        """Open the socket (`url` carries the token), send `start` and wait for `ready`."""
        ws = await connect(url, open_timeout=within, max_size=2**20)
        try:
            await ws.send(start_message(sample_rate, **format_extra))
            async with asyncio.timeout(within):
                first = await ws.recv()
            ready = json.loads(first)
            if ready.get("type") != "ready":
                raise AssertionError(f"expected ready, got {ready}")
        except BaseException:
            await ws.close()
            raise
        return cls(ws, ready, sample_rate)

    # --- sending -------------------------------------------------------------------------------
    async def send_audio(self, pcm: bytes) -> None:
        await self.ws.send(pcm)

    async def stream(self, pcm: bytes, frame_ms: int = 20) -> None:
        """Send audio in frames at real-time pace, as a microphone would (for benchmarks)."""
        size = self.sample_rate * frame_ms // 1000 * 2
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n, offset in enumerate(range(0, len(pcm), size)):
            await asyncio.sleep(max(0.0, start + n * frame_ms / 1000 - loop.time()))
            await self.ws.send(pcm[offset:offset + size])

    async def send_json(self, **message: Any) -> None:
        await self.ws.send(json.dumps(message))

    async def dtmf(self, digits: str) -> None:
        await self.send_json(type="dtmf", digits=digits)

    async def hangup(self) -> None:
        await self.send_json(type="hangup")

    async def ping(self, ping_id: str = "p", within: float = 5.0) -> dict[str, Any]:
        """Send a ping and wait for its pong."""
        after = len(self.events)
        await self.send_json(type="ping", id=ping_id)
        return await self.wait_event("pong", after=after, within=within)

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)

    # --- receiving -----------------------------------------------------------------------------
    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    self.audio += message
                else:
                    event = json.loads(message)
                    event["_at"] = len(self.audio)
                    self.events.append(event)
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_code, self.close_reason = self.ws.close_code, self.ws.close_reason or ""
            self._changed.set()

    @property
    def is_closed(self) -> bool:
        return self._reader.done()

    def of_type(self, kind: str, after: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.events[after:] if e.get("type") == kind]

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0, what: str = "condition") -> None:
        async with asyncio.timeout(within):
            while not predicate():
                if self._reader.done():
                    raise AssertionError(f"socket closed ({self.close_code} {self.close_reason!r}) waiting for {what}")
                self._changed.clear()
                await self._changed.wait()

    async def wait_event(self, kind: str, after: int = 0, within: float = 5.0) -> dict[str, Any]:
        await self.wait_until(lambda: bool(self.of_type(kind, after)), within, f"a {kind!r} message")
        return self.of_type(kind, after)[0]

    async def wait_audio(self, total_bytes: int, within: float = 5.0) -> None:
        await self.wait_until(lambda: len(self.audio) >= total_bytes, within, f"{total_bytes} bytes of audio")

    async def wait_closed(self, within: float = 5.0) -> tuple[int | None, str]:
        async with asyncio.timeout(within):
            await asyncio.shield(self._reader)
        return self.close_code, self.close_reason
