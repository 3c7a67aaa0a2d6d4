"""The media host the fuzz runner starts as a subprocess: `python -m tests.fuzz.host_process`.

It is the real `MediaHost` with every transport and the browser token route, on the echo pipeline with
no backlog dropping (so the healthy call beside the fuzzer can check every frame comes back), logging
JSON lines to stderr. It prints `{"port": N}` on stdout once listening and drains on SIGTERM.
Environment: REDIS_URL, SIGNING_SECRET, AUDIOCODES_BOT_TOKEN, FUZZ_STORE_PREFIX (and any setting).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys

from agents import AgentLibrary
from media_host.main import ADAPTERS
from media_host.server import MediaHost
from media_host.transports.browser import register_routes
from switchboard.logs import configure_logging
from switchboard.services import SharedServices, token_signer
from switchboard.session_store import SessionStore, connect_redis
from switchboard.settings import LogFormat, load_settings
from tests.support.media_harness import echo_pipelines


async def serve() -> None:
    settings = load_settings(pipeline="echo", log_format=LogFormat.JSON)
    configure_logging(settings.log_level, settings.log_format)
    assert settings.redis_url is not None, "REDIS_URL is required"
    store = SessionStore(connect_redis(settings.redis_url), token_signer(settings),
                         ttl_seconds=settings.session_ttl_seconds, prefix=os.environ["FUZZ_STORE_PREFIX"])
    host = MediaHost(settings, SharedServices(store), AgentLibrary.load(settings.agents_dir),
                     pipelines=echo_pipelines(), adapters=list(ADAPTERS))
    register_routes(host)
    gc.collect()  # as `python -m media_host` does: no collector pass over what lives all run
    gc.freeze()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    def ready(port: int) -> None:
        print(json.dumps({"port": port}), flush=True)

    try:
        await host.run(stop, on_ready=ready)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(serve())
    sys.exit(0)
