"""What `make run` runs, end to end: one banking call through Redis, the function host, the media host
and the local ACS, each a real process or server, with the embedded engines.

The caller dials the bank; the answer request, the orchestration's final state, the call record in
the store, what the agent actually said (its audio, transcribed back) and a clean shutdown are checked.
Every log of the call (both hosts' files, the driver's output and log records) is audited for what
must never be logged (tests/support/log_audit.py): the banking call in text format, a short call in JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local_stack import phone_call
from local_stack.phone_call import CallResult
from local_stack.run import place, scenario_number
from local_stack.script import Script, ScriptLine, default_script, load_script
from local_stack.stack import LocalStack, StackOptions, listening
from media_host.engines.base import Engines
from switchboard.call_records.sqlite import SqliteRecordStore
from switchboard.settings import PROJECT_ROOT
from tests.e2e.conftest import digits, transcribe
from tests.support.log_audit import audit, formatted, url_secrets

pytestmark = pytest.mark.slow
BEARER = "e2e-audiocodes-bearer-0123456789abcdef"  # set, so the audit can look for it


def call_logs(out: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    """Every log of the call: both hosts' files, and the driver's output and log records (in both formats)."""
    return {"function host log": (out / "function_host.log").read_text(),
            "media host log": (out / "media_host.log").read_text(), "driver output": capsys.readouterr().out,
            **{f"driver log ({fmt})": text for fmt, text in formatted(caplog.records).items()}}


def leaks(logs: dict[str, str], stack: LocalStack, result: CallResult, caller: str) -> list[str]:
    assert result.answer is not None
    answer = result.answer.body
    tokens = url_secrets(answer["callbackUri"]) + url_secrets(answer["mediaStreamingOptions"]["transportUrl"])
    return audit(logs, caller=caller, secrets={
        "the signing secret": stack.secret, "the ACS access key": stack.acs.access_key,
        "the AudioCodes bearer token": BEARER, "the incomingCallContext": answer["incomingCallContext"],
        **{f"the call's token #{n}": token for n, token in enumerate(tokens)}})


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_make_run_places_the_banking_call_through_the_whole_stack(
        tmp_path: Path, engines: Engines, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    script = load_script(default_script("banking"))
    options = StackOptions(out=tmp_path, functions_port=0, media_port=0, extra_env={"AUDIOCODES_BOT_TOKEN": BEARER})
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
    # No caller number, audio, token or secret in any log; what the caller said (an account number) stays
    # out of the hosts' logs (the driver prints the transcript: that is what `make run` shows).
    logs = call_logs(tmp_path, capsys, caplog)
    assert leaks(logs, stack, result, script.caller) == []
    assert "4567" not in logs["function host log"] + logs["media host log"]

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


async def test_a_short_call_with_json_logs_leaks_nothing_either(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """LOG_FORMAT=json everywhere: the agent greets, the caller says goodbye, hears it back and hangs up."""
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(phone_call, "CALL_END_S", 0.5)  # the caller hangs up at once after the agent's goodbye
    script = Script(scenario="banking", caller="+12065550142", lines=[ScriptLine(say="Goodbye.")])
    options = StackOptions(out=tmp_path, functions_port=0, media_port=0, log_format="json",
                           extra_env={"AUDIOCODES_BOT_TOKEN": BEARER})
    result, problems, stack = await place(options, script, scenario_number("banking"))
    assert problems == []
    assert (result.status or {})["output"]["end_reason"] == "disconnected"
    logs = call_logs(tmp_path, capsys, caplog)
    for name in ("function host log", "media host log", "driver output"):
        lines = [json.loads(line) for line in logs[name].splitlines() if line.startswith("{")]
        assert lines, name
        assert any(line.get("call_id") == result.call_id for line in lines), name
    assert leaks(logs, stack, result, script.caller) == []


async def test_make_run_refuses_an_unknown_scenario_before_starting_anything() -> None:
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "local_stack", "--scenario", "nope"], cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "no script for scenario 'nope'" in proc.stderr
