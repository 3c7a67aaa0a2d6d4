"""A browser softphone: it speaks docs/browser-protocol.md.

`BrowserClient.create_session()` asks the media host for a call and a token (plain HTTP, in a thread),
`BrowserClient.connect()` opens the socket, sends `start` and waits for `ready`. From then on the reader
collects what the host sends: agent audio into `audio` (one bytearray), JSON events into `events`, each
tagged with `_at`, the length of `audio` when it arrived (so a test can tell which audio came before and
after an event). Waiting is on data, never on time: `wait_until(predicate)` wakes on every message and
fails when the socket closes or after `within` seconds.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from local_stack.callers.socket import HostSocket
from local_stack.callers.speech import send_paced


def http_request(method: str, url: str, body: bytes | None = None, within: float = 5.0,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """One blocking HTTP request with a JSON answer: (status, body). Run it in a thread from async code."""
    request = urllib.request.Request(url, data=body, method=method,  # noqa: S310 - a test's own loopback URL
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=within) as response:  # noqa: S310 - ditto
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def start_message(sample_rate: int = 16000, encoding: str = "pcm16", **extra: Any) -> str:
    return json.dumps({"type": "start", "format": {"encoding": encoding, "sample_rate": sample_rate, **extra}})


class BrowserClient(HostSocket):
    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.ready: dict[str, Any] = {}  # the host's answer to `start`
        self._answered = False
        self.audio = bytearray()
        self.events: list[dict[str, Any]] = []

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
        client = cls(sample_rate)
        ws = await client._open(url, max_size=2**20, compression="deflate", open_timeout=within)
        try:
            await ws.send(start_message(sample_rate, **format_extra))
            await client._until(lambda: client._answered, within, "ready")
            if client.ready.get("type") != "ready":
                raise AssertionError(f"expected ready, got {client.ready}")
        except BaseException:
            await client._close()
            raise
        return client

    # --- sending -------------------------------------------------------------------------------
    async def send_audio(self, pcm: bytes) -> None:
        assert self.ws is not None
        await self.ws.send(pcm)

    async def stream(self, pcm: bytes, frame_ms: int = 20) -> None:
        """Send audio in frames at real-time pace, as a microphone would (for benchmarks)."""
        await send_paced(pcm, self.sample_rate * frame_ms // 1000 * 2, self.send_audio, frame_ms / 1000)

    async def send_json(self, **message: Any) -> None:
        assert self.ws is not None
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
        await self._close()

    # --- receiving -----------------------------------------------------------------------------
    def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.audio += message
            return
        event = json.loads(message)
        if not self._answered:  # the first message answers `start` (`connect` checks it is `ready`)
            self.ready, self._answered = event, True
            return
        event["_at"] = len(self.audio)
        self.events.append(event)

    def _on_close(self) -> None:
        self.close_reason = self.close_reason or ""

    @property
    def is_closed(self) -> bool:
        return not self.open

    def of_type(self, kind: str, after: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.events[after:] if e.get("type") == kind]

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0, what: str = "condition") -> None:
        await self._until(predicate, within, what)

    async def wait_event(self, kind: str, after: int = 0, within: float = 5.0) -> dict[str, Any]:
        await self.wait_until(lambda: bool(self.of_type(kind, after)), within, f"a {kind!r} message")
        return self.of_type(kind, after)[0]

    async def wait_audio(self, total_bytes: int, within: float = 5.0) -> None:
        await self.wait_until(lambda: len(self.audio) >= total_bytes, within, f"{total_bytes} bytes of audio")

    async def wait_closed(self, within: float = 5.0) -> tuple[int | None, str]:
        code, reason = await self._until_closed(within)
        return code, reason or ""
