"""The media host's server: plain HTTP routes and WebSocket routes on one asyncio listener.

Transports register WebSocket routes; health and metrics are HTTP routes. On stop, the host drains:
it refuses new connections, lets calls in progress finish up to the grace period, then closes the
rest with 1001 and a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from agents import AgentLibrary, AgentLoadError
from media_host.http import json_response
from switchboard import __version__
from switchboard.services import SharedServices
from switchboard.settings import Settings

log = logging.getLogger(__name__)

HttpHandler = Callable[[Request], Awaitable[Response]]
WsHandler = Callable[[ServerConnection], Awaitable[None]]


class MediaHost:
    def __init__(self, settings: Settings, services: SharedServices, agents: AgentLibrary) -> None:
        self.settings = settings
        self.services = services
        self.agents = agents
        self.agent_reload_failures = 0
        self.started_at = time.monotonic()
        self.draining = False
        self.port: int | None = None
        self._http: dict[str, HttpHandler] = {"/health": self._health}
        self._ws: dict[str, WsHandler] = {}
        self._server: Server | None = None
        self._active: set[ServerConnection] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    # --- routing -------------------------------------------------------------------------------
    def add_http_route(self, path: str, handler: HttpHandler) -> None:
        self._http[path] = handler

    def add_ws_route(self, path: str, handler: WsHandler) -> None:
        self._ws[path] = handler

    @property
    def active_connections(self) -> int:
        """WebSocket sessions currently inside a handler (calls, browser sessions)."""
        return len(self._active)

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path in self._ws:
            if self.draining:
                return json_response(503, {"error": "draining", "detail": "host is shutting down"})
            return None  # go on with the WebSocket upgrade
        handler = self._http.get(path)
        if handler is None:
            return json_response(404, {"error": "not_found", "path": path})
        return await handler(request)

    async def _dispatch(self, connection: ServerConnection) -> None:
        handler = self._ws[urlsplit(connection.request.path).path]  # type: ignore[union-attr]
        self._active.add(connection)
        self._idle.clear()
        try:
            await handler(connection)
        finally:
            self._active.discard(connection)
            if not self._active:
                self._idle.set()

    async def _health(self, _request: Request) -> Response:
        return json_response(200, {
            "status": "draining" if self.draining else "ok",
            "version": __version__,
            "active_calls": self.active_connections,
            "agents_version": self.agents.current.version,
            "agent_reload_failures": self.agent_reload_failures,
            "uptime_s": round(time.monotonic() - self.started_at, 1),
        })

    async def reload_agents(self) -> None:
        """Load the agent definitions again; calls in progress keep the version they started with."""
        try:
            catalog = await asyncio.to_thread(self.agents.reload)
        except AgentLoadError as exc:
            self.agent_reload_failures += 1
            log.error("agent reload failed; keeping version %s\n%s", self.agents.current.version, exc)
            return
        log.info("agents reloaded", extra={"version": catalog.version, "scenarios": ",".join(catalog.scenarios)})

    # --- lifecycle -----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, on_ready: Callable[[int], None] | None = None) -> None:
        async with serve(
            self._dispatch,
            self.settings.media_host_bind,
            self.settings.media_host_port,
            process_request=self._process_request,
            server_header=None,
            compression=None,  # audio does not compress; deflate only costs CPU per frame
        ) as server:
            self._server = server
            self.port = int(next(iter(server.sockets)).getsockname()[1])
            log.info("media host listening", extra={"bind": self.settings.media_host_bind, "port": self.port})
            if on_ready is not None:
                on_ready(self.port)
            await stop.wait()
            await self._drain(server)

    async def _drain(self, server: Server) -> None:
        self.draining = True
        server.close(close_connections=False)  # stop accepting; calls in progress carry on
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=self.settings.shutdown_grace_seconds)
        remaining = list(self._active)
        if remaining:
            log.warning("drain deadline reached, closing calls", extra={"calls": len(remaining)})
            await asyncio.gather(*(c.close(1001, "server shutting down") for c in remaining),
                                 return_exceptions=True)
        await server.wait_closed()
        log.info("media host stopped")
