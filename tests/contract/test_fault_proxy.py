"""The fault-injecting proxy itself (tests/support/fault_proxy.py), in front of a loopback echo server: bytes pass
intact both ways, `drop` resets open connections and accepts new ones, `latency` holds every chunk, and a
blackhole forwards nothing (holding new connections) until it resumes or drops."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

import pytest

from tests.support.fault_proxy import FaultProxy


class Echo:
    """An upstream that echoes, and counts the connections that reached it."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def __aenter__(self) -> Echo:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


@contextlib.asynccontextmanager
async def proxied() -> AsyncIterator[tuple[Echo, FaultProxy]]:
    async with Echo() as echo, FaultProxy("127.0.0.1", echo.port) as proxy:
        yield echo, proxy


async def connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await reader.readexactly(len(data))


async def nothing_arrives(reader: asyncio.StreamReader, seconds: float = 0.3) -> bool:
    """True if nothing can be read for `seconds` (a blackholed path delivers nothing: no race)."""
    try:
        await asyncio.wait_for(reader.read(1), seconds)
    except TimeoutError:
        return True
    return False


async def until(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_pass_through_carries_bytes_both_ways_intact() -> None:
    payload = os.urandom(1 << 20)
    async with proxied() as (echo, proxy):
        reader, writer = await connect(proxy)
        assert await round_trip(reader, writer, payload) == payload
        writer.close()
        await until(lambda: proxy.open_connections == 0)
    assert (proxy.stats.accepted, proxy.stats.connected, echo.connections) == (1, 1, 1)
    assert proxy.stats.bytes_up == proxy.stats.bytes_down == len(payload)


async def test_drop_resets_open_connections_and_accepts_new_ones() -> None:
    async with proxied() as (echo, proxy):
        connections = [await connect(proxy) for _ in range(3)]
        for reader, writer in connections:
            assert await round_trip(reader, writer, b"ping") == b"ping"
        assert proxy.drop() == 3
        for reader, _writer in connections:
            with contextlib.suppress(ConnectionError):
                assert await reader.read() == b""  # closed (a reset may surface as an error instead)
        reader, writer = await connect(proxy)
        assert await round_trip(reader, writer, b"again") == b"again"
        writer.close()
    assert proxy.stats.dropped == 3
    assert echo.connections == 4


async def test_latency_holds_every_chunk_each_way() -> None:
    async with proxied() as (_echo, proxy):
        reader, writer = await connect(proxy)
        assert await round_trip(reader, writer, b"warm") == b"warm"
        proxy.latency(150)
        started = time.monotonic()
        assert await round_trip(reader, writer, b"slow") == b"slow"
        took = time.monotonic() - started
        print(f"round trip with 150 ms each way: {took * 1000:.0f} ms")
        assert took >= 0.3  # a lower bound only: the delay line never delivers early
        # Chunks in flight are pipelined, not queued behind each other's delay.
        started = time.monotonic()
        for n in range(5):
            writer.write(b"%d" % n)
            await writer.drain()
            await asyncio.sleep(0.02)
        assert await reader.readexactly(5) == b"01234"
        print(f"five chunks 20 ms apart: {(time.monotonic() - started) * 1000:.0f} ms")
        await proxy.pass_through()
        assert await round_trip(reader, writer, b"fast") == b"fast"
        writer.close()


@pytest.mark.parametrize("then", ["resume", "drop"])
async def test_a_blackhole_forwards_nothing_holds_new_connections_then_resumes_or_drops(then: str) -> None:
    async with proxied() as (echo, proxy):
        reader, writer = await connect(proxy)
        assert await round_trip(reader, writer, b"before") == b"before"
        proxy.blackhole(0.6, then=then)  # type: ignore[arg-type]
        writer.write(b"during")
        await writer.drain()
        late_reader, late_writer = await connect(proxy)  # accepted by the proxy...
        late_writer.write(b"new")
        await late_writer.drain()
        assert await nothing_arrives(reader)
        assert await nothing_arrives(late_reader, 0.05)
        assert echo.connections == 1  # ...but held: not connected upstream
        assert proxy.blackholed
        await until(lambda: not proxy.blackholed)
        if then == "resume":  # nothing was lost: the held bytes flow on, the held connection connects
            assert await reader.readexactly(6) == b"during"
            assert await late_reader.readexactly(3) == b"new"
            assert echo.connections == 2
        else:
            for r in (reader, late_reader):
                with contextlib.suppress(ConnectionError):
                    assert await r.read() == b""
            assert proxy.stats.dropped == 2
        fresh_reader, fresh_writer = await connect(proxy)
        assert await round_trip(fresh_reader, fresh_writer, b"after") == b"after"
        for w in (writer, late_writer, fresh_writer):
            w.close()


async def test_a_blackhole_without_a_duration_lasts_until_pass_through() -> None:
    async with proxied() as (_echo, proxy):
        reader, writer = await connect(proxy)
        proxy.blackhole()
        writer.write(b"held")
        await writer.drain()
        assert await nothing_arrives(reader)
        await proxy.pass_through()
        assert await reader.readexactly(4) == b"held"
        writer.close()


async def test_refuse_drops_and_refuses_until_pass_through() -> None:
    async with proxied() as (echo, proxy):
        reader, writer = await connect(proxy)
        assert await round_trip(reader, writer, b"up") == b"up"
        await proxy.refuse()
        with contextlib.suppress(ConnectionError):
            assert await reader.read() == b""
        with pytest.raises(ConnectionRefusedError):
            await connect(proxy)
        await proxy.pass_through()
        reader, writer = await connect(proxy)  # the same port again
        assert await round_trip(reader, writer, b"back") == b"back"
        writer.close()
    assert echo.connections == 2
