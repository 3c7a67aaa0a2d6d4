"""`python -m media_host`: read settings, connect shared services, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from redis.exceptions import RedisError

from media_host.server import MediaHost
from switchboard.logs import configure_logging
from switchboard.redis_server import RedisServerError
from switchboard.services import open_services
from switchboard.settings import Settings, SettingsError, load_settings

log = logging.getLogger("media_host")


async def serve(settings: Settings) -> None:
    services = await open_services(settings)
    host = MediaHost(settings, services)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await host.run(stop)
    finally:
        await services.close()


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"media_host: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    log.info("starting", extra=settings.selection())
    try:
        asyncio.run(serve(settings))
    except (RedisServerError, RedisError, OSError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0
