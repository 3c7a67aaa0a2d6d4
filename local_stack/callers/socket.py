"""What every simulated caller does with its WebSocket to the media host: connect with the platform's headers,
read in a task, keep the close code and reason, and let its owner wait on what arrives.

Waiting is on data, never on time: a wait wakes on every message and fails when the socket closes first or
its time is up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


class HostSocket:
    """One socket at a time (a caller that reconnects opens the next with `_open`). Subclasses parse what
    arrives in `_on_message` and may react to the close in `_on_close`."""

    def __init__(self) -> None:
        self.ws: ClientConnection | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()  # set on every message and on the close

    async def _open(self, url: str, headers: Mapping[str, str] | None = None, *, max_size: int | None = None,
                    compression: str | None = None, open_timeout: float = 10.0) -> ClientConnection:
        """Connect and start reading; raises what websockets' `connect` raises (refused, 4xx, timeout)."""
        ws = await connect(url, additional_headers=dict(headers or {}), max_size=max_size, compression=compression,
                           open_timeout=open_timeout)
        self.ws = ws
        self.close_code = self.close_reason = None
        self._reader = asyncio.create_task(self._read(ws))
        return ws

    def _on_message(self, message: str | bytes) -> None:
        raise NotImplementedError

    def _on_close(self) -> None:
        """The socket closed (or its reader was cancelled); `close_code` and `close_reason` are set."""

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                self._on_message(message)
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_code, self.close_reason = ws.close_code, ws.close_reason
            self._on_close()
            self._changed.set()

    @property
    def open(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def _send(self, message: str | bytes) -> None:
        """A socket the host closed first is not an error here: the caller (or test) checks the close code."""
        assert self.ws is not None, "not connected"
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(message)

    async def _until(self, predicate: Callable[[], bool], within: float, what: str = "") -> None:
        """Until `predicate()` holds; AssertionError if the socket closes first, TimeoutError after `within` s."""
        async with asyncio.timeout(within):
            while not predicate():
                if not self.open:
                    waiting = f" waiting for {what}" if what else ""
                    raise AssertionError(f"socket closed: {self.close_code} {self.close_reason}{waiting}")
                self._changed.clear()
                await self._changed.wait()

    async def _until_closed(self, within: float) -> tuple[int | None, str | None]:
        """Until the host closes the socket: its close code and reason."""
        assert self._reader is not None, "not connected"
        await asyncio.wait_for(asyncio.shield(self._reader), within)
        return self.close_code, self.close_reason

    async def _close(self) -> None:
        """Close the socket (a normal close) and wait for the reader to see it."""
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
