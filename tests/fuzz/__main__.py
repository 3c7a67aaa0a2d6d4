"""`python -m tests.fuzz`: the live fuzz run (`make fuzz`). See tests/fuzz/runner.py."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from switchboard.redis_server import EmbeddedRedis
from switchboard.settings import PROJECT_ROOT
from tests.fuzz.logwatch import lines
from tests.fuzz.report import OUT_DIR
from tests.fuzz.runner import TARGETS, Plan, Runner, replay, summary
from tests.fuzz.stack import Stack, open_stack

PROPERTY_TESTS = ("tests/fuzz/test_ws_edge_properties.py", "tests/fuzz/test_ingress_properties.py")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--inputs", type=int, help="inputs per target (default: run for --seconds)")
    parser.add_argument("--seconds", type=float, help="how long to fuzz (default 180 without --inputs)")
    parser.add_argument("--seed", default="0", help="the run's seed: the same seed tries the same inputs")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    parser.add_argument("--media-host", choices=("subprocess", "inprocess"), default="subprocess")
    parser.add_argument("--slowloris-seconds", type=float, default=12.0,
                        help="how long each slowloris upgrade trickles in (past the host's 10 s open timeout)")
    parser.add_argument("--max-gap", type=float, default=0.5, help="the healthy call's longest acceptable gap, s")
    parser.add_argument("--replay", type=Path, help="run one saved input (out/fuzz/<target>-<seed>-<n>.json)")
    parser.add_argument("--echo-logs", action="store_true", help="print the media host's log lines")
    parser.add_argument("--properties", type=int, default=500, metavar="N",
                        help="first run the parser properties with N new examples each (0: skip)")
    return parser.parse_args(argv)


@asynccontextmanager
async def stack_for(args: argparse.Namespace) -> AsyncIterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as work, EmbeddedRedis() as redis:
        url = os.environ.get("REDIS_URL") or redis.url
        async with open_stack(url, Path(work), media_host=args.media_host, echo_logs=args.echo_logs) as stack:
            yield stack


async def main_async(args: argparse.Namespace) -> int:
    if args.replay is not None:
        doc = json.loads(args.replay.read_text())
        async with stack_for(args) as stack:
            outcome, errors = await replay(stack, doc)
        print(f"{doc['target']} #{doc['index']} (found: {doc.get('found')}): now {outcome.label}")
        for line in lines(errors):
            print(f"  {line}")
        return 1 if outcome.finding or errors else 0
    seconds = args.seconds if args.seconds is not None else (None if args.inputs else 180.0)
    seed: int | str = int(args.seed) if args.seed.isdigit() else args.seed
    plan = Plan(seed=seed, inputs=args.inputs, seconds=seconds, slowloris_s=args.slowloris_seconds,
                targets=tuple(t for t in args.targets.split(",") if t), max_gap_s=args.max_gap)
    unknown = set(plan.targets) - set(TARGETS)
    if unknown:
        print(f"unknown targets: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    began = time.monotonic()
    async with stack_for(args) as stack:
        print(f"fuzzing {', '.join(plan.targets)}: seed {seed}, "
              + (f"{plan.inputs} inputs per target" if plan.inputs else f"{seconds:g} s")
              + f", media host {stack.mode} on port {stack.media_port}, functions {stack.harness.host_url}",
              flush=True)
        result = await Runner(stack, plan).run()
    print(result.render())
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"summary-{seed}.json").write_text(json.dumps(summary(result, plan, args.media_host,
                                                                     time.monotonic() - began), indent=1))
    return 0 if result.ok else 1


def properties(examples: int) -> int:
    """The hypothesis properties of every parser, with `examples` new (not derandomized) inputs each."""
    env = {**os.environ, "FUZZ_EXAMPLES": str(examples), "FUZZ_DERANDOMIZE": "0"}
    print(f"parser properties: {examples} examples each", flush=True)
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "0",
                            *PROPERTY_TESTS], env=env, cwd=PROJECT_ROOT)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    failed = properties(args.properties) if args.properties > 0 and args.replay is None else 0
    return asyncio.run(main_async(args)) or (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
