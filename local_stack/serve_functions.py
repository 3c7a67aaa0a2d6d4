"""`python -m local_stack.serve_functions [--port 7071]`: serve function_app.py as `func start` would.

Settings come from the environment, as under the Functions host. Orchestrations run in this process
(local_stack/durable); activities are the app's own activity functions. SIGTERM or SIGINT stops it:
the listener closes, running orchestrations are dropped (they are in memory only), connections close.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
from typing import Any

from aiohttp import web

from local_stack.durable import LocalDurable, add_durable_routes, binding
from local_stack.function_host import Function, FunctionHost, index

log = logging.getLogger("local_stack.function_host")
TASK_HUB = "LocalHub"


def _durable(functions: dict[str, Function], host: list[FunctionHost]) -> LocalDurable:
    """Orchestrators and activities as the app registered them; activities are invoked through the host."""
    orchestrators = {name: f.user for name, f in functions.items() if f.kind == "orchestrationTrigger"}

    def activity(name: str, arg: str) -> Any:
        async def run(payload: Any) -> Any:
            return await host[0].invoke(name, **{arg: payload})
        return run

    activities = {name: activity(name, f.trigger["name"]) for name, f in functions.items()
                  if f.kind == "activityTrigger"}
    return LocalDurable(orchestrators, activities)


async def serve(port: int) -> None:
    app_module = importlib.import_module("function_app")  # validates settings and agents, as a worker start does
    from callbacks import runtime  # noqa: PLC0415 - after function_app has configured it

    functions = index(app_module.app.get_functions())
    base_url = f"http://127.0.0.1:{port}/runtime/webhooks/durabletask/"
    holder: list[FunctionHost] = []
    durable = _durable(functions, holder)
    host = FunctionHost(functions, binding(base_url, TASK_HUB))
    holder.append(host)
    app = web.Application()
    host.add_routes(app)
    add_durable_routes(app, durable)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    log.info("function host listening", extra={"port": port, "functions": ",".join(sorted(functions))})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("function host stopping")
        await runner.cleanup()
        await durable.close()
        await runtime.shutdown()
        from azure.durable_functions.models.utils.http_utils import _close_session  # noqa: PLC0415

        await _close_session()  # the Durable client's process-wide aiohttp session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.serve_functions", description=__doc__)
    parser.add_argument("--port", type=int, default=7071)
    args = parser.parse_args(argv)
    from switchboard.logs import configure_logging  # noqa: PLC0415
    from switchboard.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
