"""`make serve`: the whole stack kept up, with the browser softphone at http://127.0.0.1:8765/.

Redis, the function host (port 7071) and the media host (port 8765) log structured JSON to this
console. The softphone calls over the browser transport; the function host and the local ACS are up
too, so an Event Grid delivery or a `POST /api/calls` reaches the same code as in Azure. Ctrl-C stops
everything.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from local_stack.processes import StackError
from local_stack.stack import LocalStack, StackOptions
from switchboard.settings import PROJECT_ROOT


async def serve(options: StackOptions) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with LocalStack(options) as stack:
        print(f"softphone: {stack.media_url}/  (Call, then speak; Ctrl-C stops the stack)\n"
              f"function host: {stack.functions_url}  local ACS: {stack.acs.endpoint}\n"
              f"ring it through Event Grid: POST {stack.functions_url}/runtime/webhooks/eventgrid"
              "?functionName=on_incoming_call (aeg-event-type: Notification)", flush=True)
        await stop.wait()
        print("stopping the stack ...", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.serve", description=__doc__)
    parser.add_argument("--engines", choices=["embedded", "azure"], default="embedded")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "out")
    parser.add_argument("--functions-port", type=int, default=7071)
    parser.add_argument("--media-port", type=int, default=8765)
    args = parser.parse_args(argv)
    options = StackOptions(out=args.out, engines=args.engines, functions_port=args.functions_port,
                           media_port=args.media_port, log_format="json", console_logs=True)
    try:
        asyncio.run(serve(options))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
