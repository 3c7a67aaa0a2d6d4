"""A fault-injecting TCP proxy on loopback, for testing what the media host does when an upstream fails.

    async with FaultProxy("127.0.0.1", redis_port) as proxy:   # clients connect to proxy.port
        proxy.latency(200)                # every chunk, each way, arrives 200 ms late (pipelined)
        proxy.blackhole(3.0)              # forward nothing for 3 s (new connections are held), then resume
        proxy.blackhole(3.0, then="drop") # ... then close every connection instead
        proxy.drop()                      # close every open connection now (a reset); new ones are accepted
        await proxy.refuse()              # drop, and refuse new connections (the upstream is down)
        await proxy.pass_through()        # no latency, nothing held, accepting again

Modes switch at runtime and apply to connections already open. A blackhole stops reading from both
sides (so the senders' socket buffers fill, as on a dead path) and holds data already read; it never
loses or reorders bytes, so what resumes is a valid stream. The proxy knows nothing of the protocols.
It lives in tests/ because only tests inject faults; the benches may import it from here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

CHUNK = 65536
Then = Literal["resume", "drop"]


@dataclass
class ProxyStats:
    accepted: int = 0  # client connections accepted
    connected: int = 0  # of them, connected upstream
    dropped: int = 0  # connections closed by drop()
    bytes_up: int = 0  # client -> upstream, forwarded
    bytes_down: int = 0  # upstream -> client, forwarded


class _Link:
    """One proxied connection: the client side, the upstream side, and a pump each way."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[Any]] = []

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()  # a reset, not an orderly close: what a dropped path looks like
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.listen = (host, port)
        self.port = 0
        self.stats = ProxyStats()
        self._latency_s = 0.0
        self._flowing = asyncio.Event()  # clear while blackholed
        self._flowing.set()
        self._timer: asyncio.TimerHandle | None = None
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, *self.listen)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.close()
        links = list(self._links)
        for link in links:
            link.abort()
        await asyncio.gather(*(t for link in links for t in link.tasks), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def url(self, scheme: str, path: str = "") -> str:
        """The proxied address as a URL (`redis`, `http`, `ws`...)."""
        return f"{scheme}://{self.listen[0]}:{self.port}{path}"

    @property
    def open_connections(self) -> int:
        return len(self._links)

    @property
    def blackholed(self) -> bool:
        return not self._flowing.is_set()

    # --- modes ---------------------------------------------------------------------------------
    async def pass_through(self) -> None:
        self._latency_s = 0.0
        self._resume()
        if self._server is None:  # refusing: listen again, on the same port
            self._server = await asyncio.start_server(self._accept, self.listen[0], self.port)

    async def refuse(self) -> None:
        """Drop every connection and refuse new ones (connection refused) until `pass_through()`."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self.drop()

    def latency(self, ms: float) -> None:
        """Deliver every chunk, each way, `ms` later than it arrived (0: none)."""
        self._latency_s = max(0.0, ms / 1000)

    def drop(self) -> int:
        """Close (reset) every open connection now; new ones are accepted. Returns how many were closed."""
        links = list(self._links)
        for link in links:
            link.abort()
        self._links.difference_update(links)
        self.stats.dropped += len(links)
        return len(links)

    def blackhole(self, seconds: float | None = None, then: Then = "resume") -> None:
        """Forward nothing and hold new connections for `seconds` (None: until `pass_through()`), then
        resume (held bytes flow on) or drop every connection, the held ones included."""
        self._flowing.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if seconds is not None:
            self._timer = asyncio.get_running_loop().call_later(seconds, self._end_blackhole, then)

    def _end_blackhole(self, then: Then) -> None:
        self._timer = None
        if then == "drop":
            self.drop()
        self._flowing.set()

    def _resume(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._flowing.set()

    # --- connections ---------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.accepted += 1
        link = _Link(writer)
        self._links.add(link)
        task = asyncio.current_task()
        assert task is not None
        link.tasks.append(task)  # a drop while it is held (or connecting) cancels it
        try:
            await self._flowing.wait()  # accept-but-hold during a blackhole
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except (OSError, asyncio.CancelledError):
            self._links.discard(link)
            writer.transport.abort()
            return
        link.upstream = up_writer
        self.stats.connected += 1
        pumps = [asyncio.create_task(self._pump(reader, up_writer, up=True)),
                 asyncio.create_task(self._pump(up_reader, writer, up=False))]
        link.tasks = pumps
        try:
            # An end of stream is passed on and the other way may go on (a half-close); an error on
            # either side resets both, as a broken path would.
            for finished in asyncio.as_completed(pumps):
                if not await finished:
                    break
        except asyncio.CancelledError:
            pass
        finally:
            link.abort()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._links.discard(link)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool) -> bool:
        """Copy one direction; with latency, through a delay line so chunks are late but not serialised.
        True when the stream ended cleanly, False on an error."""
        line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        deliver = asyncio.create_task(self._deliver(line, writer, up=up))
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(CHUNK)
                if not data:
                    break
                line.put_nowait((loop.time() + self._latency_s, data))
            line.put_nowait((0.0, b""))  # end of stream, after what is in the line
            await deliver
            return True
        except OSError:
            return False
        finally:
            deliver.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await deliver

    async def _deliver(self, line: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter, *,
                       up: bool) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await line.get()
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._flowing.wait()  # held, not lost, during a blackhole
            writer.write(data)
            await writer.drain()
            if up:
                self.stats.bytes_up += len(data)
            else:
                self.stats.bytes_down += len(data)
