"""The main job: start the embedded stack, check it, and stop it cleanly.

Until the local-stack issue lands this starts the media host on the embedded default (its own
Redis, no Azure settings), checks its health and shuts it down with SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from local_stack.processes import Child, StackError
from switchboard.redis_server import free_port
from switchboard.settings import PROJECT_ROOT


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "out", help="where logs and results go")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    port = free_port()
    media = Child("media host", "media_host", env={"MEDIA_HOST_PORT": str(port)},
                  log_path=args.out / "media_host.log")
    print(f"starting the media host on 127.0.0.1:{port} (embedded default) ...")
    try:
        media.start()
        health = media.wait_healthy(f"http://127.0.0.1:{port}/health")
        print(f"media host healthy: {json.dumps(health)}")
    except StackError as exc:
        media.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    code = media.stop()
    print(f"media host stopped (exit code {code}); log: {media.log_path}")
    return 0 if code == 0 else 1
