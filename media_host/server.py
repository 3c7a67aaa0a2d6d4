"""The media host's server: plain HTTP routes and WebSocket transports on one asyncio listener.

Each transport adapter authorizes its upgrade request here, so a missing or forged token is an HTTP
401 and never becomes a socket. Calls beyond MEDIA_MAX_CALLS are turned away the way their protocol
expects. On stop the host drains: it refuses new calls (503 "draining"), lets calls in progress finish
up to the grace period, then closes the rest with 1001 and a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from agents import AgentLibrary, AgentLoadError
from media_host.channel import CallChannel, CallInfo
from media_host.control_plane import ControlPlane, SessionControlPlane
from media_host.http import HttpCapableConnection, json_response, method_of, request_path, text_response
from media_host.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from media_host.metrics import Labels, MediaMetrics
from media_host.monitor import CallMonitor
from media_host.notices import NoticeBoard
from media_host.pipelines import Pipeline, PipelineFactory
from media_host.session_writer import SessionWriter
from media_host.softphone import add_softphone_routes
from media_host.transports.base import Admission, CloseCode, Rejected, WireAdapter
from media_host.transports.runner import open_call, run_call
from switchboard import __version__
from switchboard.services import SharedServices
from switchboard.session_store import SessionStore
from switchboard.settings import Settings

log = logging.getLogger(__name__)

HttpHandler = Callable[[Request], Awaitable[Response]]
WRITES_GRACE_S = 5.0  # at shutdown, the longest wait for session writes held through a Redis outage
CALL_STATS = ("frames_in", "frames_out", "late_frames", "dropped_frames", "barge_ins")
PROXIED = ("X-Forwarded-For", "X-Forwarded-Proto")  # what an ingress or reverse proxy adds to a request


class MediaHost:
    def __init__(self, settings: Settings, services: SharedServices, agents: AgentLibrary, *,
                 pipelines: PipelineFactory, adapters: list[type[WireAdapter]],
                 control_plane: ControlPlane | None = None, writer: SessionWriter | None = None) -> None:
        self.settings = settings
        self.services = services
        self.agents = agents
        self.pipelines = pipelines
        # Calls write their session through it, so a Redis outage never holds a call up (session_writer.py).
        self.writer = writer or SessionWriter(services.store)
        self.control_plane = control_plane or SessionControlPlane(services.store, self.writer)
        self.metrics = MediaMetrics(self._active_by_transport, self._playout_depth, self.call_stat)
        self.metrics.add_source(self.writer.render_metrics)
        self.notices = NoticeBoard(services.store)
        self.monitor = CallMonitor(services.store) if settings.monitor_calls else None
        self.started_at = time.monotonic()
        self.draining = False
        self.port: int | None = None
        self.agent_reload_failures = 0
        self._adapters = {adapter.path: adapter for adapter in adapters}
        self._http: dict[str, HttpHandler] = {"/health": self._health, "/ready": self._ready,
                                               "/metrics": self._metrics}
        add_softphone_routes(self)  # the browser softphone page: GET / and /static/<file>
        self._admissions: dict[ServerConnection, Admission] = {}
        self._sockets: set[ServerConnection] = set()
        self._calls: dict[CallChannel, str] = {}  # live calls and their transport
        self._finished: dict[str, dict[str, int]] = {}  # counters of calls that ended, by transport
        self._idle = asyncio.Event()
        self._idle.set()
        self._stop: asyncio.Event | None = None
        self.stopped = asyncio.Event()  # set once the host has drained and closed its listener

    # --- what adapters use (transports.base.HostServices) ----------------------------------------
    @property
    def store(self) -> SessionStore:
        return self.services.store

    def at_capacity(self) -> bool:
        return len(self._calls) >= self.settings.media_max_calls

    def pipeline_for(self, info: CallInfo) -> Pipeline:
        return self.pipelines(info)

    # --- routing -------------------------------------------------------------------------------
    def add_http_route(self, path: str, handler: HttpHandler) -> None:
        self._http[path] = handler

    @property
    def active_connections(self) -> int:
        return len(self._sockets)

    @property
    def routes(self) -> dict[str, str]:
        """Every path served, "http" or "websocket" (docs/security.md lists each with what protects it)."""
        return {**dict.fromkeys(self._http, "http"), **dict.fromkeys(self._adapters, "websocket")}

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request_path(request.path)
        adapter = self._adapters.get(path)
        if adapter is not None:
            if method_of(request) != "GET":
                return json_response(405, {"error": "method_not_allowed", "detail": "WebSocket upgrades are GET"})
            if self.draining:
                return json_response(503, {"error": "draining", "detail": "host is shutting down"})
            try:
                self._admissions[connection] = await adapter.authorize(request, self)
            except Rejected as exc:
                self.metrics.errors.inc(transport=adapter.transport, kind=exc.error)
                log.warning("upgrade refused: %s", exc.detail, extra={"transport": adapter.transport})
                return json_response(exc.status, {"error": exc.error, "detail": exc.detail})
            return None  # go on with the WebSocket upgrade
        handler = self._http.get(path)
        if handler is None:
            return json_response(404, {"error": "not_found", "path": path})
        return await handler(request)

    async def _dispatch(self, connection: ServerConnection) -> None:
        path = request_path(connection.request.path)  # type: ignore[union-attr]
        adapter = self._adapters[path](connection, self, self._admissions.pop(connection, Admission()))
        self._sockets.add(connection)
        self._idle.clear()
        try:
            if self.at_capacity():
                self.metrics.errors.inc(transport=adapter.transport, kind="over_capacity")
                log.warning("call refused: over capacity", extra={"transport": adapter.transport})
                await adapter.refuse("over capacity")
                return
            opened = await open_call(adapter, self)
            if opened is None:
                return
            channel, pipeline = opened
            self._calls[channel] = adapter.transport
            self.notices.attach(channel)
            channel.monitor = self.monitor
            try:
                await run_call(adapter, channel, pipeline, self, self._call_ended)
            finally:
                self.notices.detach(channel)
        finally:
            self._sockets.discard(connection)
            if not self._sockets:
                self._idle.set()

    def _call_ended(self, channel: CallChannel, outcome: str) -> None:
        transport = self._calls.pop(channel, channel.info.transport)
        totals = self._finished.setdefault(transport, dict.fromkeys(CALL_STATS, 0))
        for stat in CALL_STATS:
            totals[stat] += _stat(channel, stat)
        self.metrics.calls.inc(transport=transport, outcome=outcome)

    # --- metrics -------------------------------------------------------------------------------
    def _active_by_transport(self) -> dict[Labels, float]:
        counts: dict[Labels, float] = {(("transport", t),): 0 for t in {a.transport for a in self._adapters.values()}}
        for transport in self._calls.values():
            counts[(("transport", transport),)] += 1
        return counts

    def _playout_depth(self) -> dict[Labels, float]:
        return {(): float(sum(c.queued_frames for c in self._calls))}

    def call_stat(self, stat: str) -> dict[Labels, float]:
        """A per-call counter summed over finished and live calls, by transport (scraped, never pushed)."""
        totals: dict[Labels, float] = {}
        for transport, stats in self._finished.items():
            totals[(("transport", transport),)] = float(stats[stat])
        for channel, transport in self._calls.items():
            key = (("transport", transport),)
            totals[key] = totals.get(key, 0.0) + _stat(channel, stat)
        return totals

    async def _metrics(self, request: Request) -> Response:
        # The port is public (the Container Apps ingress forwards every path, adding X-Forwarded-*):
        # call volumes and error counts are for a scraper on the replica's own network, not the internet.
        if any(name in request.headers for name in PROXIED):
            return json_response(403, {"error": "forbidden", "detail": "metrics are not served through a proxy"})
        return text_response(200, self.metrics.render(), content_type=METRICS_CONTENT_TYPE)

    async def _health(self, _request: Request) -> Response:
        return json_response(200, {
            "status": "draining" if self.draining else "ok",
            "version": __version__,
            "active_calls": len(self._calls),
            "agents_version": self.agents.current.version,
            "agent_reload_failures": self.agent_reload_failures,
            "selection": self.settings.selection(),
            "uptime_s": round(time.monotonic() - self.started_at, 1),
        })

    async def _ready(self, _request: Request) -> Response:
        try:
            redis_ok = await asyncio.wait_for(self.store.ping(), timeout=1.0)
        except Exception:  # any failure to answer is "not ready"; the reason is logged, not returned
            log.warning("readiness: redis unreachable", exc_info=True)
            redis_ok = False
        ready = redis_ok and not self.draining
        return json_response(200 if ready else 503, {
            "status": "ready" if ready else "not_ready", "redis": "ok" if redis_ok else "unreachable",
            "agents_version": self.agents.current.version, "draining": self.draining,
        })

    # --- agents --------------------------------------------------------------------------------
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
    def request_stop(self) -> None:
        """Start the drain, as SIGTERM does."""
        if self._stop is not None:
            self._stop.set()

    async def run(self, stop: asyncio.Event, on_ready: Callable[[int], None] | None = None) -> None:
        self._stop = stop
        async with serve(
            self._dispatch,
            self.settings.media_host_bind,
            self.settings.media_host_port,
            process_request=self._process_request,
            server_header=None,
            compression=None,  # audio does not compress; deflate only costs CPU per frame
            max_size=self.settings.media_max_message_bytes,
            create_connection=HttpCapableConnection,  # HTTP routes may be POSTs with a body
        ) as server:
            self.port = int(next(iter(server.sockets)).getsockname()[1])
            log.info("media host listening", extra={"bind": self.settings.media_host_bind, "port": self.port,
                                                    "transports": ",".join(sorted(self._adapters))})
            self.notices.start()
            if self.monitor is not None:
                self.monitor.start()
            try:
                if on_ready is not None:
                    on_ready(self.port)
                await stop.wait()
                await self._drain(server)
            finally:
                await self.notices.stop()
                if self.monitor is not None:
                    await self.monitor.stop()
                # Writes held through a Redis outage get a last chance to land (briefly: SIGKILL follows).
                await self.writer.close(min(WRITES_GRACE_S, self.settings.shutdown_grace_seconds))

    async def _drain(self, server: Server) -> None:
        # The listener stays open until the calls are done: a new call's upgrade gets 503 "draining" (ACS
        # reports MediaStreamingFailed and the orchestration retries elsewhere) and /ready answers 503.
        self.draining = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=self.settings.shutdown_grace_seconds)
        remaining = list(self._sockets)
        if remaining:
            log.warning("drain deadline reached, closing calls", extra={"calls": len(remaining)})
            # 1001: ACS reports MediaStreamingFailed, the orchestration restarts streaming, and the host
            # that takes the new socket resumes the call from Redis (nothing said so far is lost).
            await asyncio.gather(*(c.close(CloseCode.GOING_AWAY, "server shutting down") for c in remaining),
                                 return_exceptions=True)
        server.close()
        await server.wait_closed()
        self.stopped.set()
        log.info("media host stopped")


def _stat(channel: CallChannel, stat: str) -> int:
    return int(getattr(channel, stat))  # each of CALL_STATS is a read-only counter of the channel
