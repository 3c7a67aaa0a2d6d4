"""The load side of bench.media_load: simulated ACS and AudioCodes calls, run in worker processes.

Each worker process runs one asyncio loop with a share of the calls. The clients are deliberately
thin, so that they are not what limits the result on a machine they share with the host:

- a minimal RFC 6455 client on a raw asyncio.Protocol (no per-message tasks or queues). Client frames
  carry the all-zero masking key, so the payload needs no masking here; the host still unmasks every
  frame, so its work is unchanged;
- one scheduler task per worker wakes every millisecond and sends the frames due in that
  millisecond. Every call has a fixed phase (its opening millisecond modulo 20) and its frame k is due
  at base + phase + 20 k ms: an absolute schedule that never drifts. How late each frame actually went
  out is recorded as the client's scheduling lag;
- per-frame JSON is built by concatenation from pre-encoded base64 and read back with prefix checks; the
  templates and every other message come from local_stack.callers (acs.py, audiocodes.py), as the other
  simulated callers build them.

Each outbound frame carries a 32-bit sequence number and a 16-bit call tag in its first three
samples. The echo pipeline returns the audio byte-exact, so the echo's first 8 base64 characters
identify the frame; latency is (arrival - send) per frame, from send and arrival times kept in
arrays preallocated per call.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import math
import os
import struct
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from local_stack.callers import acs, audiocodes

FRAME_MS = 20
GAP_S = 0.040  # an echo arriving later than this after the previous one is a gap the caller would hear
OPEN_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 3.0
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_HEAD = struct.Struct("<IH")  # sequence number, call tag: 6 bytes = the first 8 base64 characters
_ZERO_MASK = b"\x00\x00\x00\x00"

ACS_PATH = "/api/v1/media/stream"
AUDIOCODES_PATH = "/ws"


@dataclass(frozen=True)
class CallSpec:
    index: int  # global call number: its tag, its phase and its offset into the caller audio
    open_at_ms: int  # when it opens, in ms after the step's base time
    call_id: str
    token: str | None  # the ACS media token; None for AudioCodes


@dataclass(frozen=True)
class WorkerSpec:
    worker: int
    transport: str  # "acs" | "audiocodes"
    port: int
    rate: int  # wire sample rate
    calls: list[CallSpec]
    frames: list[bytes]  # the caller audio at the wire rate in 20 ms frames, looped
    window_start_s: float  # measured window, seconds after base
    window_end_s: float  # sending stops here
    drain_s: float  # how long to wait for the last echoes before closing
    bot_token: str
    media_format: str


class HandshakeError(Exception):
    pass


# --- a minimal WebSocket client ---------------------------------------------------------------------

MessageHandler = Callable[[bytearray, int, int, float], None]


def _frame_header(opcode: int, length: int) -> bytes:
    if length < 126:
        return bytes((0x80 | opcode, 0x80 | length)) + _ZERO_MASK
    if length < 65536:
        return bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big") + _ZERO_MASK
    return bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big") + _ZERO_MASK


class WsClient(asyncio.Protocol):
    """Text messages are handed to `on_message(buffer, start, end, arrival)` without copying; the
    handler must not keep the buffer. Pings are answered; a close is echoed."""

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str], on_message: MessageHandler) -> None:
        loop = asyncio.get_running_loop()
        self._request_line = f"GET {path} HTTP/1.1"
        self._host = f"{host}:{port}"
        self._headers = headers
        self._on_message = on_message
        self._buf = bytearray()
        self._open = False
        self._fragments: bytearray | None = None
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.close_code: int | None = None
        self.close_reason = ""
        self.close_sent = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        self._accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        lines = [self._request_line, f"Host: {self._host}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 *(f"{k}: {v}" for k, v in self._headers.items())]
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(HandshakeError(f"connection lost during handshake: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self._buf
        buf += data
        if not self._open and not self._read_handshake():
            return
        self._read_frames(now)

    def _read_handshake(self) -> bool:
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(buf[:end]).decode("latin-1")
        del buf[: end + 4]
        status, *fields = head.split("\r\n")
        parts = status.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
        if len(parts) < 2 or parts[1] != "101":
            self.handshake.set_exception(HandshakeError(f"upgrade refused: {status}"))
            assert self.transport is not None
            self.transport.close()
            return False
        if headers.get("sec-websocket-accept") != self._accept:
            self.handshake.set_exception(HandshakeError("bad Sec-WebSocket-Accept"))
            assert self.transport is not None
            self.transport.close()
            return False
        self._open = True
        self.handshake.set_result(None)
        return True

    def _read_frames(self, now: float) -> None:
        buf = self._buf
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, header = b1 & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, header = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if b1 & 0x80:
                raise HandshakeError("the server sent a masked frame")
            start, end = pos + header, pos + header + length
            if end > size:
                break
            pos = end
            if b0 == 0x81:  # a whole text message: the hot path
                self._on_message(buf, start, end, now)
            elif not self._on_frame(b0 & 0x0F, bool(b0 & 0x80), bytes(buf[start:end]), now):
                break
        if pos:
            del buf[:pos]

    def _on_frame(self, opcode: int, fin: bool, payload: bytes, now: float) -> bool:
        """Every frame but a whole text message. Returns False once the connection is closing."""
        if opcode == 0x1:  # the first fragment of a text message (the host does not fragment small ones)
            self._fragments = bytearray(payload)
        elif opcode == 0x0 and self._fragments is not None:
            self._fragments += payload
            if fin:
                whole, self._fragments = self._fragments, None
                self._on_message(whole, 0, len(whole), now)
        elif opcode == 0x9:
            self._send(0xA, payload)
        elif opcode == 0x8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.close_reason = payload[2:].decode(errors="replace")
            if not self.close_sent:
                self._send(0x8, payload[:2])
                self.close_sent = True
            assert self.transport is not None
            self.transport.close()
            return False
        return True

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame_header(opcode, len(payload)) + payload)

    def send_text(self, payload: bytes) -> None:
        self._send(0x1, payload)

    def send_parts(self, *parts: bytes) -> None:
        """One text message from pieces, written with a single write()."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_frame_header(0x1, sum(map(len, parts))) + b"".join(parts))

    async def close(self, code: int = 1000) -> None:
        if not self.close_sent:
            self.close_sent = True
            self._send(0x8, code.to_bytes(2, "big"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), CLOSE_TIMEOUT_S)
        if self.transport is not None and not self.closed.done():
            self.transport.abort()


# --- one simulated call -----------------------------------------------------------------------------


class Call:
    def __init__(self, spec: CallSpec, worker: WorkerSpec, tails: list[bytes], max_frames: int) -> None:
        self.spec = spec
        self.transport = worker.transport
        self.tag = spec.index & 0xFFFF
        self.slot = spec.index % FRAME_MS  # phases spread evenly over the 20 ms, whatever the ramp
        self.tails = tails  # base64 of each frame after its first 6 bytes, plus the message suffix
        self.offset = spec.index * 37  # calls do not all say the same thing at the same time
        self.max_frames = max_frames
        self.scheduled = array("d", bytes(8 * max_frames))
        self.sent = array("d", bytes(8 * max_frames))
        self.received = array("d", bytes(8 * max_frames))
        self.seq = 0
        self.ready = False
        self.setup_s = math.nan  # connect -> the first echo: the call is up end to end
        self._first_echo: asyncio.Future[None] | None = None
        self.ws: WsClient | None = None
        self.error: str | None = None
        self.mismatched = 0  # echoes of another call's audio, or not ours at all
        self.duplicates = 0
        self.other: list[str] = []  # other message types seen (first few)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        if self.transport == "acs":
            self.prefix = acs.audio_template()[0]
        else:
            self.prefix = audiocodes.chunk_template(spec.call_id)[0]

    # --- opening ----------------------------------------------------------------------------------
    async def open(self, port: int, worker: WorkerSpec) -> None:
        """Connect, start the call as the platform would, then send one probe frame and wait for its echo.

        The real-time schedule starts only once the probe came back. ACS starts streaming as soon as it
        connects, but a backlog that builds up while the host opens the call would stay in the echo's
        playout queue for the rest of the call (see the report), and that is call set-up time, reported
        on its own ("open p99"), not per-frame latency.
        """
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        if self.transport == "acs":
            path = f"{ACS_PATH}?token={self.spec.token}"
            headers = {"x-ms-call-connection-id": f"conn-{self.spec.index}",
                       "x-ms-call-correlation-id": f"corr-{self.spec.index}"}
        else:
            path, headers = AUDIOCODES_PATH, {"Authorization": f"Bearer {worker.bot_token}"}
        try:
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                _, ws = await loop.create_connection(
                    lambda: WsClient("127.0.0.1", port, path, headers, self._on_message), "127.0.0.1", port)
                self.ws = ws
                await ws.handshake
                if self.transport == "acs":
                    ws.send_text(acs.metadata(worker.rate, f"sub-{self.spec.index}").encode())
                else:
                    call_id = self.spec.call_id
                    await self._exchange(audiocodes.session_initiate(call_id, [worker.media_format], "bench"),
                                         "session.accepted")
                    await self._exchange(audiocodes.message("userStream.start", call_id), "userStream.started")
                self._first_echo = loop.create_future()
                self.send_frame(time.monotonic())
                waiters: set[asyncio.Future[Any]] = {self._first_echo, ws.closed}
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                if not self._first_echo.done():
                    raise HandshakeError(f"closed before the first echo: {ws.close_code} {ws.close_reason}")
            self.setup_s = time.monotonic() - started
            self.ready = True
        except Exception as exc:  # any failure to open is a result to report, not a crash of the worker
            ws_ = self.ws
            detail = f" (close {ws_.close_code} {ws_.close_reason})" if ws_ is not None and ws_.close_code else ""
            self.error = f"{type(exc).__name__}: {exc}{detail}"[:300]
            if ws_ is not None and ws_.transport is not None:
                ws_.transport.abort()

    async def _exchange(self, message: str, expect: str) -> dict[str, Any]:
        assert self.ws is not None
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[expect] = future
        self.ws.send_text(message.encode())
        pending: set[asyncio.Future[Any]] = {future, self.ws.closed}
        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if future not in done:
            raise HandshakeError(f"closed while waiting for {expect}: {self.ws.close_code} {self.ws.close_reason}")
        return future.result()

    # --- the hot path -------------------------------------------------------------------------------
    def send_frame(self, scheduled: float) -> None:
        seq = self.seq
        ws = self.ws
        if seq >= self.max_frames or ws is None or ws.close_sent or ws.closed.done():
            return
        head = binascii.b2a_base64(_HEAD.pack(seq, self.tag), newline=False)
        tail = self.tails[(self.offset + seq) % len(self.tails)]
        now = time.monotonic()
        ws.send_parts(self.prefix, head, tail)
        self.scheduled[seq] = scheduled
        self.sent[seq] = now
        self.seq = seq + 1

    def _on_message(self, buf: bytearray, start: int, end: int, now: float) -> None:
        if self.transport == "acs":
            if buf.startswith(acs.AGENT_AUDIO_PREFIX, start):
                at = start + len(acs.AGENT_AUDIO_PREFIX)
                self._on_echo(buf[at : at + 8], now)
                return
        elif buf.startswith(audiocodes.CHUNK_PREFIX, start):
            at = buf.find(audiocodes.CHUNK_AUDIO_KEY, start, end)
            if at >= 0:
                at += len(audiocodes.CHUNK_AUDIO_KEY)
                self._on_echo(buf[at : at + 8], now)
                return
        self._on_other(bytes(buf[start:end]))

    def _on_echo(self, head: bytearray, now: float) -> None:
        try:
            seq, tag = _HEAD.unpack(binascii.a2b_base64(head))
        except (binascii.Error, struct.error):
            self.mismatched += 1
            return
        if tag != self.tag or seq >= self.seq:
            self.mismatched += 1
        elif self.received[seq]:
            self.duplicates += 1
        else:
            self.received[seq] = now
            if seq == 0 and self._first_echo is not None and not self._first_echo.done():
                self._first_echo.set_result(None)

    def _on_other(self, message: bytes) -> None:
        try:
            doc = json.loads(message)
        except ValueError:
            doc = {}
        kind = str(doc.get("type") or doc.get("Kind") or "?") if isinstance(doc, dict) else "?"
        future = self._waiting.pop(kind, None)
        if future is not None and not future.done():
            future.set_result(doc)
        elif kind not in ("playStream.start", "playStream.stop") and len(self.other) < 5:
            self.other.append(kind)
        if kind == "session.error" and self.error is None:
            self.error = f"session.error: {doc.get('reason')}"[:300]

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed.done():
            if self.transport == "audiocodes":
                self.ws.send_text(audiocodes.message("userStream.stop", self.spec.call_id).encode())
                self.ws.send_text(audiocodes.session_end(self.spec.call_id, "bench done").encode())
            await self.ws.close()

    # --- results ------------------------------------------------------------------------------------
    def window(self, start: float, end: float) -> dict[str, Any]:
        n = self.seq
        scheduled = np.frombuffer(self.scheduled, dtype=np.float64)[:n]
        sent = np.frombuffer(self.sent, dtype=np.float64)[:n]
        received = np.frombuffer(self.received, dtype=np.float64)[:n]
        inside = (scheduled >= start) & (scheduled < end)
        got = inside & (received > 0)
        # A gap: the echo came > 40 ms after the previous one although this call sent them 20 ms apart, i.e.
        # the host stretched the spacing by more than a frame (a late client is its own column, not a gap).
        pairs = got[1:] & got[:-1]
        stretch = (np.diff(received) - np.diff(sent))[pairs]
        return {
            "latency": received[got] - sent[got],
            "lag": sent[inside] - scheduled[inside],
            "sent": int(inside.sum()),
            "received": int(got.sum()),
            "gaps": int((stretch > GAP_S - FRAME_MS / 1000).sum()),
            "closed_early": bool(self.ws is not None and self.ws.closed.done() and n and scheduled[n - 1] < end - 0.1),
        }


# --- a worker process -------------------------------------------------------------------------------


def message_tails(frames: list[bytes], suffix: bytes) -> list[bytes]:
    """Per frame: base64 of bytes 6.. (6 is a multiple of 3, so base64 splits there) plus the suffix."""
    return [base64.b64encode(frame[6:]) + suffix for frame in frames]


def suffix_for(transport: str) -> bytes:
    return acs.audio_template()[1] if transport == "acs" else audiocodes.chunk_template("")[1]


async def run_worker(spec: WorkerSpec, base: float) -> dict[str, Any]:
    span_s = spec.window_end_s + 1.0
    max_frames = int(span_s * 1000 / FRAME_MS) + 10
    tails = message_tails(spec.frames, suffix_for(spec.transport))
    calls = [Call(c, spec, tails, max_frames) for c in spec.calls]
    pending = sorted(calls, key=lambda c: c.spec.open_at_ms)
    slots: list[list[Call]] = [[] for _ in range(FRAME_MS)]
    openers: set[asyncio.Task[None]] = set()
    end_tick = round(spec.window_end_s * 1000)
    start_tick = round(spec.window_start_s * 1000)
    cpu_start = cpu_end = time.process_time()
    next_open = 0
    tick = 0
    while tick < end_tick:
        slot = slots[tick % FRAME_MS]
        opening = next_open < len(pending) and pending[next_open].spec.open_at_ms <= tick
        if slot or opening or tick == start_tick:  # a millisecond with nothing to do costs no wake-up
            due = base + tick / 1000
            delay = due - time.monotonic()
            await asyncio.sleep(delay if delay > 0 else 0)  # always yield, so a late loop still reads echoes
            while next_open < len(pending) and pending[next_open].spec.open_at_ms <= tick:
                call = pending[next_open]
                next_open += 1
                task = asyncio.create_task(call.open(spec.port, spec))
                openers.add(task)
                task.add_done_callback(openers.discard)
                slots[call.slot].append(call)
            for call in slot:
                if call.ready:
                    call.send_frame(due)
            if tick == start_tick:
                cpu_start = time.process_time()
        tick += 1
    delay = base + spec.window_end_s - time.monotonic()
    await asyncio.sleep(delay if delay > 0 else 0)
    cpu_end = time.process_time()
    await asyncio.sleep(spec.drain_s)
    if openers:
        await asyncio.wait(openers, timeout=OPEN_TIMEOUT_S)
    await asyncio.gather(*(c.close() for c in calls), return_exceptions=True)

    w0, w1 = base + spec.window_start_s, base + spec.window_end_s
    parts = [c.window(w0, w1) for c in calls]
    errors = [c.error for c in calls if c.error]
    return {
        "worker": spec.worker,
        "calls": len(calls),
        "opened": sum(c.ready for c in calls),
        "errors": errors[:5],
        "failed": len(errors),
        "closed_early": sum(p["closed_early"] for p in parts),
        "latency": np.concatenate([p["latency"] for p in parts]) if parts else np.zeros(0),
        "lag": np.concatenate([p["lag"] for p in parts]) if parts else np.zeros(0),
        "sent": sum(p["sent"] for p in parts),
        "received": sum(p["received"] for p in parts),
        "gaps": sum(p["gaps"] for p in parts),
        "mismatched": sum(c.mismatched for c in calls),
        "duplicates": sum(c.duplicates for c in calls),
        "other": sorted({kind for c in calls for kind in c.other}),
        "setup": np.array([c.setup_s for c in calls if c.ready]),
        "cpu_s": cpu_end - cpu_start,
        "window_s": spec.window_end_s - spec.window_start_s,
    }


def worker_entry(conn: Connection, spec: WorkerSpec) -> None:
    """multiprocessing target: report ready, receive the base time, run, send the results back."""
    try:
        conn.send(("ready", spec.worker))
        base = conn.recv()
        result = asyncio.run(run_worker(spec, float(base)))
        conn.send(("result", result))
    except Exception as exc:  # the parent reports it; a traceback on stderr helps too
        import traceback  # noqa: PLC0415

        traceback.print_exc()
        conn.send(("error", f"worker {spec.worker}: {type(exc).__name__}: {exc}"))
    finally:
        conn.close()
