"""What `make run` runs, end to end: one banking call through Redis, the function host, the media host
and the local ACS, each a real process or server, with the embedded engines.

The caller dials the bank; the answer request, the orchestration's final state, the call record in
the store, what the agent actually said (its audio, transcribed back) and a clean shutdown are checked.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local_stack.run import place, scenario_number
from local_stack.script import default_script, load_script
from local_stack.stack import StackOptions, listening
from media_host.engines.base import Engines
from switchboard.call_records.sqlite import SqliteRecordStore
from switchboard.settings import PROJECT_ROOT
from tests.e2e.conftest import digits, transcribe

pytestmark = pytest.mark.slow


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_make_run_places_the_banking_call_through_the_whole_stack(tmp_path: Path, engines: Engines) -> None:
    script = load_script(default_script("banking"))
    options = StackOptions(out=tmp_path, functions_port=0, media_port=0)
    result, problems, stack = await place(options, script, scenario_number("banking"))
    assert problems == []

    # The answer: media to the media host's ACS endpoint, PCM 24 kHz, both ways; callbacks to the function host.
    assert result.answer is not None
    answer = result.answer.body
    streaming = answer["mediaStreamingOptions"]
    assert streaming["transportUrl"].startswith(f"ws://127.0.0.1:{stack.media_port}/api/v1/media/stream?token=")
    assert (streaming["audioFormat"], streaming["enableBidirectional"]) == ("pcm24KMono", True)
    assert answer["callbackUri"].startswith(f"{stack.functions_url}/api/callbacks/{result.call_id}")
    assert [o.call.correlation_id for o in stack.acs.media.offers] == [result.call_id]

    # The orchestration saw the call to its end: two handoffs, verified, transferred.
    status = result.status or {}
    assert status["runtime_status"] == "Completed"
    assert status["output"]["end_reason"] == "transferred"
    assert status["output"]["transfer"]["target"] == "+18005550199"
    assert status["custom_status"]["handoffs"] == 2
    assert status["custom_status"]["authenticated"] is True

    # The record, as the store holds it (and as the API returned it).
    records = SqliteRecordStore(tmp_path / "records.sqlite3")
    stored = await records.get(result.call_id)
    await records.close()
    assert stored is not None
    assert stored.model_dump(mode="json", by_alias=True) == result.record
    assert stored.agents_visited == ["auth", "account", "cards"]
    assert [t.name for t in stored.tool_calls] == ["verify_customer", "handoff_to_account", "get_balance",
                                                   "handoff_to_cards", "block_card", "transfer_to_human"]
    assert "4567" not in (tmp_path / "function_host.log").read_text()  # no caller data in the logs

    # What the caller heard: the balance, the block and the transfer, read back from the agent's audio.
    assert result.media is not None
    balance_asked, block_asked, human_asked = result.said[1], result.said[3], result.said[4]
    balance = await transcribe(engines, result.media.agent_audio_between(balance_asked.ended, result.said[2].started))
    assert "2345.67" in digits(balance), balance
    blocked = await transcribe(engines, result.media.agent_audio_between(block_asked.ended, human_asked.started))
    assert "blocked" in blocked.lower(), blocked
    transfer = await transcribe(engines, result.media.agent_audio_between(human_asked.ended, float("inf")))
    assert "transfer" in transfer.lower(), transfer
    assert [e["agent"] for e in result.of("handoff")] == ["account", "cards"]

    # A clean shutdown: every process exited 0, no port is left listening.
    assert stack.exit_codes() == {"function host": 0, "media host": 0}
    assert not alive(stack.redis.pid)
    assert not any(listening(port) for port in stack.ports)


async def test_make_run_refuses_an_unknown_scenario_before_starting_anything() -> None:
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "local_stack", "--scenario", "nope"], cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "no script for scenario 'nope'" in proc.stderr
