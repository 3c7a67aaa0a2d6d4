"""The live fuzz run, short, in `make test`: every WebSocket protocol and HTTP endpoint of a real media host
and Function App gets `FUZZ_SMOKE_INPUTS` inputs (default 200; slowloris a tenth of that) beside a healthy
call, seed 0, so every run tries the same inputs. The long run is `make fuzz` (tests/fuzz/runner.py).

Every input must end in a handled outcome (accepted, or refused / closed with a reason), nothing may log
an unexpected ERROR, the healthy call must get every frame back in order and end normally, and after
the run every part must still answer and still answer a new call.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.fuzz.runner import TARGETS, Plan, Runner
from tests.fuzz.stack import checks_ok, open_stack

INPUTS = int(os.environ.get("FUZZ_SMOKE_INPUTS", "200"))
# The host shares this process (and the GIL) with the fuzzer here, so it pauses while the fuzzer works:
# the limit catches a stalled or dead call, not the jitter `make fuzz` (host in its own process) measures.
MAX_GAP_S = 1.0


async def test_every_input_is_handled_beside_an_unaffected_call(redis_url: str, tmp_path: Path) -> None:
    async with open_stack(redis_url, tmp_path) as stack:
        result = await Runner(stack, Plan(seed=0, inputs=INPUTS, slowloris_s=0.3, max_gap_s=MAX_GAP_S)).run()
    report = result.render()
    print(report)  # the figures, with `pytest -s`
    assert not result.tally.findings, report
    assert not result.tally.unattributed, report
    assert result.health is not None
    assert result.health.ok, result.health.render()
    assert checks_ok(result.checks), result.checks
    assert all(result.tally.inputs(t) >= INPUTS // 10 for t in TARGETS), report
