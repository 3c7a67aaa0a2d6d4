"""The media host's HTTP side from raw TCP: every route with mutated request lines, headers and bodies,
requests that are not HTTP at all, partial requests, connect-and-close, and slowloris-style upgrades
that trickle in a byte at a time (then finish, or are abandoned, within the host's open timeout).

The host has its own request parser (media_host/http.py: any method with a body), so it is fed bytes
rather than what an HTTP client library agrees to send.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from dataclasses import asdict, dataclass, field
from random import Random
from typing import Any

from tests.fuzz.mutate import WEIRD_TEXT, corrupt, dumps, frame, random_bytes, random_text
from tests.fuzz.report import Outcome, reason_head

ROUTES = ("/health", "/ready", "/metrics", "/api/v1/realtime/sessions", "/", "/static/index.html",
          "/api/v1/realtime/scenarios", "/api/v1/media/stream", "/ws", "/api/v1/realtime/conversation", "/nowhere")
METHODS = ("GET", "GET", "GET", "POST", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "get", "PATCH", "CONNECT",
           "G\x00T", "X" * 300, "")
PATH_TWISTS = ("", "", "", "?token=abc.def", "?a=%ff%fe&b", "//[", "//evil.example/health", "/../../etc/passwd",
               "%2e%2e/", "#frag", "?" + "q" * 9000, " HTTP/1.1 extra", "\x00", "/\u00e9\u00e8", "*")
ANSWER_TIMEOUT_S = 5.0
WAIT_S = 0.3  # an incomplete request: the host may wait for the rest (up to its open timeout); we do not


@dataclass
class RawInput:
    target: str
    index: int
    request: bytes = b""
    pieces: int = 1  # >1: the request trickles in, this many pieces, `delay_s` apart
    delay_s: float = 0.0
    keep: float = 1.0  # the share of the request sent before the fuzzer gives up (1: all of it)
    complete: bool = True  # False: the host may rightly wait for more (a body shorter than its length)
    half_close: bool = False  # send EOF right after the request: a client gone before the answer
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "request": base64.b64encode(self.request).decode()}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RawInput:
        return cls(**{**doc, "request": base64.b64decode(doc["request"])})


def _upgrade_headers(rng: Random) -> list[str]:
    key = base64.b64encode(rng.randbytes(16)).decode()
    headers = ["Connection: Upgrade", "Upgrade: websocket", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if rng.random() < 0.3:
        headers.pop(rng.randrange(len(headers)))
    if rng.random() < 0.1:
        headers.append(rng.choice(("Sec-WebSocket-Version: 8", "Sec-WebSocket-Key: short", "Upgrade: h2c")))
    return headers


def _body(rng: Random) -> bytes:
    doc = {"scenario": rng.choice(("banking", "clinic", "nope", ""))}
    roll = rng.random()
    if roll < 0.3:
        return dumps(doc).encode()
    if roll < 0.8:
        text = frame(doc, rng, ("scenario", "type"))
        return text if isinstance(text, bytes) else text.encode()
    return rng.choice((b"", random_bytes(rng, 600), b"x" * 5000, b"{}" * 40_000))


def request(rng: Random) -> tuple[bytes, bool, list[str]]:
    """One HTTP/1.1 request with something wrong in it (or nothing), whether it is complete (the host
    should answer at once), and notes on what is wrong."""
    method = rng.choice(METHODS) if rng.random() < 0.4 else ("POST" if rng.random() < 0.3 else "GET")
    route = rng.choice(ROUTES)
    twist = rng.choice(PATH_TWISTS) if rng.random() < 0.4 else ""
    path = twist + route if twist.startswith("//") and rng.random() < 0.5 else route + twist
    version = "HTTP/1.1" if rng.random() < 0.92 else rng.choice(("HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x", "", "http/1.1"))
    body = _body(rng) if method == "POST" or rng.random() < 0.05 else b""
    headers = ["Host: 127.0.0.1"] if rng.random() < 0.95 else []
    if route in ("/api/v1/media/stream", "/ws", "/api/v1/realtime/conversation") and rng.random() < 0.7:
        headers += _upgrade_headers(rng)
    if route == "/ws" and rng.random() < 0.5:
        headers.append(rng.choice(("Authorization: Bearer test-audiocodes-bot-token-0123456789",
                                   "Authorization: Bearer nope", "Authorization: Basic ???", "Authorization:")))
    length = len(body)
    twist_at = rng.random()
    notes = [f"{method[:12]} {route}"]
    complete = True
    if twist_at < 0.08:
        length = rng.choice((-1, length + 10, max(0, length - 3), 10**12))
        notes.append("wrong Content-Length")
        complete = False
    if body or twist_at < 0.08:
        if rng.random() < 0.9:
            headers.append(f"Content-Length: {length}")
        else:
            headers.append(f"Content-Length: {rng.choice(('abc', '5_0', ' 7 ', '+3', ''))}")
            complete = False
    if 0.08 <= twist_at < 0.14:
        headers.append(rng.choice(("Transfer-Encoding: chunked", "X-Long: " + "a" * 9000, "No colon here",
                                   "X-Bytes: \xff\xfe", f"X-Weird: {rng.choice(WEIRD_TEXT)}", "If-None-Match: *")))
        notes.append("odd header")
    if 0.14 <= twist_at < 0.17:
        headers += [f"X-H{i}: {i}" for i in range(rng.choice((100, 130, 300)))]
        notes.append("many headers")
    head = f"{method} {path} {version}".strip() + "\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    raw = head.encode("utf-8", errors="surrogateescape") + body
    if rng.random() < 0.05:
        damaged = corrupt(raw.decode("latin-1"), rng)
        raw = damaged if isinstance(damaged, bytes) else damaged.encode("latin-1", errors="replace")
        notes.append("corrupted")
        complete = False
    elif rng.random() < 0.04:
        raw = (random_text(rng, 400).encode() if rng.random() < 0.5 else random_bytes(rng, 400))
        notes, complete = ["not HTTP"], False
    return raw, complete, notes


def raw_input(rng: Random, index: int) -> RawInput:
    raw, complete, notes = request(rng)
    item = RawInput("media_http", index, raw, complete=complete, notes=notes)
    roll = rng.random()
    if roll < 0.06:
        item.keep = rng.choice((0.0, 0.1, 0.5, 0.9))  # a partial request, or a bare connect, then gone
        item.notes.append("partial" if item.keep else "connect and close")
    elif roll < 0.12:
        item.pieces, item.delay_s = rng.choice((3, 8, 20)), rng.choice((0.005, 0.02))
        item.notes.append("trickled")
    elif roll < 0.17:
        item.half_close = True
        item.notes.append("half-closed")
    return item


def slowloris_input(rng: Random, index: int, seconds: float) -> RawInput:
    """A valid upgrade to the browser socket sent a few bytes at a time over `seconds` (mostly within the
    host's 10 s open timeout); then finished, or abandoned before the end."""
    path = rng.choice(("/api/v1/realtime/conversation?token=abc.def", "/ws", "/api/v1/media/stream?token=x.y"))
    head = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(h + "\r\n" for h in _upgrade_headers(rng))
            + "\r\n").encode()
    pieces = rng.randrange(5, 40)
    keep = 1.0 if rng.random() < 0.5 else rng.choice((0.2, 0.6, 0.95))
    return RawInput("slowloris", index, head, pieces, seconds / pieces, keep,
                    notes=[f"GET {path.split('?')[0]} slowly"])


def _status(answer: bytes) -> Outcome:
    line, _, rest = answer.partition(b"\r\n")
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return Outcome("dropped", "no HTTP answer") if not answer else Outcome("crash", f"not HTTP: {line[:40]!r}")
    status = int(parts[1])
    body = rest.partition(b"\r\n\r\n")[2]
    detail = ""
    with contextlib.suppress(ValueError):
        doc = json.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            detail = f"{doc['error']}: {reason_head(str(doc.get('detail', '')))}".rstrip(": ")
    if status >= 500 and status != 503:
        return Outcome("crash", f"{status} {detail or body[:60].decode(errors='replace').strip()}")
    return Outcome("accepted" if status < 400 else "refused", f"{status} {detail}".strip())


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """The response: its head and, by Content-Length, its body; the head only for a 101 (the socket stays)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await reader.read(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if b" 101 " in head.split(b"\r\n", 1)[0]:
        return data
    length = next((int(v) for k, _, v in (h.partition(b":") for h in head.split(b"\r\n")[1:])
                   if k.strip().lower() == b"content-length" and v.strip().isdigit()), 0)
    while len(body) < length and (chunk := await reader.read(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


async def send_raw(item: RawInput, port: int) -> Outcome:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        data = item.request[: int(len(item.request) * item.keep)]
        size = max(1, -(-len(data) // item.pieces))
        for at in range(0, len(data), size):
            writer.write(data[at:at + size])
            await writer.drain()
            if item.pieces > 1:
                await asyncio.sleep(item.delay_s)
                if reader.at_eof():
                    return Outcome("closed", "by the host while the request trickled in")
        if item.keep < 1.0:
            return Outcome("left", "after part of the request" if data else "right after connecting")
        if item.half_close:
            writer.write_eof()  # the host may still answer, or see the client gone and close: both are fine
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT_S if item.complete else WAIT_S):
                answer = await _answer(reader)
        except TimeoutError:
            if item.complete:
                return Outcome("hang", f"no answer within {ANSWER_TIMEOUT_S:g} s")
            return Outcome("left", "the host waits for the rest of the request")
        return _status(answer)
    except (ConnectionError, OSError) as exc:
        return Outcome("dropped", type(exc).__name__)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
