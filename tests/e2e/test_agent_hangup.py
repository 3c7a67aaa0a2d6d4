"""An agent's hang-up reaches ACS, for each pipeline, through the whole local stack.

Redis, the function host (the local Durable runtime running call_session), a media host process and the
local ACS, one stack per pipeline (the pipeline is a setting of the media host process). The agent hangs
up the moment its pipeline returns: the control plane's HangupRequested must still reach the
orchestration, which hangs up through ACS (`:terminate`) and ends with the agent's hang-up as its reason.

- echo: the caller presses `#` (DtmfData on the ACS media socket);
- cascade: the caller says goodbye, the embedded brain picks the desk's hang-up tool (embedded Whisper/TTS);
- Realtime: the local Realtime server (tests/support/realtime_server.py) calls the hang-up tool after the turn.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from local_stack.callers.scripted import Line, Voiced
from local_stack.phone_call import CallResult, PhoneCall
from local_stack.run import caller_voice, scenario_number
from local_stack.stack import LocalStack, StackOptions
from media_host.pipelines.echo import tone
from orchestrations.models import EndReason
from switchboard.settings import PROJECT_ROOT
from tests.support.realtime_server import CallTool, RealtimeServer, Speak

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

DESK = PROJECT_ROOT / "tests" / "fixtures" / "cascade"  # the desk scenario: its front agent has desk_goodbye
DESK_NUMBER = "+15550000100"
HANGUPS = ("hang_up", "terminate")  # DELETE the call connection, or POST :terminate (hang up for everyone)
WIRE_RATE = 24000


async def call_through_stack(tmp_path: Path, env: dict[str, str], line: Line, voice: Voiced, to: str) -> CallResult:
    """Start a stack with `env`, place one call in which the caller says or keys `line`, stop the stack."""
    began = time.monotonic()
    async with LocalStack(StackOptions(out=tmp_path, functions_port=0, media_port=0, extra_env=env)) as stack:
        up = time.monotonic()
        result = await PhoneCall(stack, [line], voice, to=to, printer=lambda _line: None).run(timeout=90)
        ended = time.monotonic()
        assert result.answer is not None
        connection = result.answer.call_connection_id
        hangups = [r for r in stack.acs.requests if r.operation in HANGUPS and r.call_connection_id == connection]
    print(f"\nstack up in {up - began:.1f} s, call {ended - up:.1f} s, stack down in {time.monotonic() - ended:.1f} s")
    assert [r.status for r in hangups] == [204]  # the local ACS got the hang-up request, once
    assert not result.caller_hung_up  # the agent's hang-up ended the call, not the caller tiring of it
    status = result.status or {}
    assert status.get("runtime_status") == "Completed", status
    assert status["output"]["end_reason"] == EndReason.AGENT_HANGUP
    return result


async def silent(_text: str) -> bytes:
    return b""


async def test_echo_the_caller_presses_hash(tmp_path: Path) -> None:
    env = {"PIPELINE": "echo", "ECHO_PROMPT_MS": "300"}
    # Keyed as soon as the prompt starts: the echo never falls quiet, so the caller does not wait for it to.
    result = await call_through_stack(tmp_path, env, Line("", interrupt_after_s=0.0, dtmf="#"), silent,
                                      scenario_number("banking"))
    assert (result.status or {})["output"]["end_detail"] == "caller pressed #"


async def test_cascade_the_caller_says_goodbye_and_the_agent_hangs_up(tmp_path: Path) -> None:
    line = Line("Goodbye, please end the call now.")
    result = await call_through_stack(tmp_path, {"AGENTS_DIR": str(DESK)}, line, await caller_voice([line]),
                                      DESK_NUMBER)
    assert [e["name"] for e in result.of("tool")] == ["desk_goodbye"]
    assert (result.status or {})["output"]["end_detail"] == "caller is done"


async def test_realtime_the_model_calls_the_hang_up_tool(tmp_path: Path) -> None:
    script: list[Speak | CallTool] = [Speak("Hello, front desk.", 300), CallTool("desk_goodbye"),
                                      Speak("Goodbye.", 300)]

    async def loud(_text: str) -> bytes:  # speech to the server's VAD: it needs no words
        return tone(WIRE_RATE, 600)

    async with RealtimeServer("ga", script, heard=["that's all, goodbye"]) as server:
        env = {"PIPELINE": "realtime", "REALTIME_WEBSOCKET_URL": server.url, "REALTIME_FLAVOR": "ga",
               "AGENTS_DIR": str(DESK)}
        result = await call_through_stack(tmp_path, env, Line("that's all, goodbye"), loud, DESK_NUMBER)
    assert [e["name"] for e in result.of("tool")] == ["desk_goodbye"]
    assert (result.status or {})["output"]["end_detail"] == "caller is done"
    assert server.problems == []
    assert not server.script  # the greeting, the call and the goodbye were all asked for
