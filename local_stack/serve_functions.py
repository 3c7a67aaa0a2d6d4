"""`python -m local_stack.serve_functions [--port 7071] [--directory .]`: serve the app as `func start` would.

Settings come from the environment, as under the Functions host. The app is PYTHON_SCRIPT_FILE_NAME (default
function_app.py) in --directory (default: the working directory), indexed by the Python worker's own code
(local_stack/worker_index.py): if the worker refuses a function, nothing is served and the process exits
with status 3 and the worker's FunctionLoadError, as the worker's start-up fails in Azure. Orchestrations run
in this process (local_stack/durable); activities are the app's own activity functions, invoked through the
host. SIGTERM or SIGINT stops it: the listener closes, running orchestrations are dropped (they are in memory
only), connections close.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from local_stack import worker_index
from local_stack.durable import LocalDurable, add_durable_routes, binding
from local_stack.function_host import FunctionHost, index

log = logging.getLogger("local_stack.function_host")
TASK_HUB = "LocalHub"
REFUSED = 3  # the exit status when the worker refuses the app


async def serve(port: int, directory: Path) -> None:
    if str(directory) not in sys.path:  # the worker imports the script by its name from the app's directory
        sys.path.insert(0, str(directory))
    # Importing function_app validates settings and agents, as a worker start does.
    functions = index(worker_index.load(worker_index.script(directory)), directory)
    from callbacks import runtime  # noqa: PLC0415 - after function_app has configured it

    base_url = f"http://127.0.0.1:{port}/runtime/webhooks/durabletask/"
    host = FunctionHost(functions, binding(base_url, TASK_HUB))
    durable = LocalDurable(host.orchestrators(), host.activities())
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
    parser.add_argument("--directory", type=Path, default=Path.cwd(),
                        help="the function app's directory (default: the working directory, as under func start)")
    args = parser.parse_args(argv)
    from switchboard.logs import configure_logging  # noqa: PLC0415
    from switchboard.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(args.port, args.directory.resolve()))
    except worker_index.FunctionLoadError as exc:  # the worker's own message, unchanged
        log.error("the Python worker refused the function app: nothing is served", extra={"error": str(exc)})
        print(f"function host: {exc}", file=sys.stderr)  # the last line of its log, which the stack reports
        return REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main())
