"""`python -m media_host`: read settings, load agents, connect shared services, serve until SIGTERM/SIGINT.

SIGHUP reloads the agent definitions; calls in progress keep the version they started with.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable

from redis.exceptions import RedisError

from agents import AgentLibrary, AgentLoadError
from media_host.channel import CallInfo
from media_host.control_plane import FunctionsControlPlane
from media_host.engines.factory import build_engines, check_engines
from media_host.engines.last_resort import last_resort_for
from media_host.engines.outcomes import EngineStats
from media_host.engines.resilient_chat import ChatRetryStats
from media_host.metrics import DerivedCounter, engine_source
from media_host.pipelines.base import Pipeline
from media_host.pipelines.factory import cascade_engines, check_pipeline, pipeline_factory
from media_host.server import MediaHost
from media_host.session_writer import SessionWriter
from media_host.telemetry import setup_tracing
from media_host.transports.acs import AcsAdapter
from media_host.transports.audiocodes import AudioCodesAdapter
from media_host.transports.browser import BrowserAdapter, register_routes
from switchboard.logs import configure_logging
from switchboard.redis_server import RedisServerError
from switchboard.services import open_services
from switchboard.settings import PipelineKind, Settings, SettingsError, load_settings

log = logging.getLogger("media_host")

ADAPTERS = [AcsAdapter, AudioCodesAdapter, BrowserAdapter]
CHAT_FAILURES = DerivedCounter("switchboard_chat_failures_total",
                               "Cloud chat model failures, by engine, kind and outcome (retried, gave_up...)", "")


def _not_ready(_info: CallInfo) -> Pipeline:
    raise RuntimeError("pipelines are set before the host serves")


async def serve(settings: Settings, library: AgentLibrary) -> None:
    chat_stats = ChatRetryStats()
    engine_stats = EngineStats()  # every STT/chat/TTS request's outcome, per engine
    engines = await cascade_engines(settings, lambda: build_engines(settings, chat_stats, engine_stats))
    services = await open_services(settings)
    # With a Function App (CALLBACK_BASE_URL), handoffs and ACS transfer/hang-up requests reach its orchestration.
    writer = SessionWriter(services.store)  # calls' session writes, held through a Redis outage
    control_plane = (FunctionsControlPlane(services.store, settings.callback_base_url, writer=writer)
                     if settings.callback_base_url else None)
    host = MediaHost(settings, services, library, pipelines=_not_ready, adapters=ADAPTERS,
                     control_plane=control_plane, writer=writer)
    host.metrics.add_source(lambda: CHAT_FAILURES.render_from(chat_stats.samples()))
    health = engines.health if engines is not None else None
    host.metrics.add_source(engine_source(engine_stats.samples, health.samples if health is not None else dict))
    if engines is not None:  # spoken now, while the engines work: what a caller hears when none can answer
        engines.last_resort = await last_resort_for(engines.tts, library.current, settings.default_scenario)
        host.metrics.add_source(engines.last_resort.render_metrics)
    host.pipelines = pipeline_factory(settings, engines, host)
    register_routes(host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[None]] = set()

    def on_sighup() -> None:
        task = loop.create_task(host.reload_agents())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    try:
        await host.run(stop)
    finally:
        if engines is not None:
            await engines.aclose()  # the engine health probes
        if control_plane is not None:
            await control_plane.aclose()
        await services.close()


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (less CPU per frame: make bench-media, docs/performance.md); else the standard loop."""
    try:
        import uvloop  # noqa: PLC0415 - optional dependency
    except ImportError:
        return None
    return uvloop.new_event_loop


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"media_host: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    setup_tracing(settings)
    log.info("starting", extra=settings.selection())
    try:
        library = AgentLibrary.load(settings.agents_dir)
        check_pipeline(settings)  # fail at start, not on the first call
        if settings.pipeline is PipelineKind.CASCADE:
            check_engines(settings)
    except AgentLoadError as exc:
        print(f"media_host: cannot start: {exc}", file=sys.stderr)
        return 1
    except SettingsError as exc:
        print(f"media_host: {exc}", file=sys.stderr)
        return 2
    log.info("agents loaded", extra={"version": library.current.version,
                                     "scenarios": ",".join(library.current.scenarios)})
    # Everything loaded so far (modules, agents, models) lives for the whole process: keep it out of
    # the collector's scans, whose full passes otherwise pause every call at once.
    gc.collect()
    gc.freeze()
    loop_factory = _event_loop_factory()
    log.info("event loop", extra={"loop": "uvloop" if loop_factory else "asyncio"})
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve(settings, library))
    except (RedisServerError, RedisError, OSError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0
