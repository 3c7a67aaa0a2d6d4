"""The media host goes away mid-call in the local stack, and a new one takes the call over.

Killed (SIGKILL): the local ACS sees the media socket break while the call is up and posts
MediaStreamingFailed; call_session restarts streaming with backoff until the new host (started on the
same port) listens; that host resumes the session from Redis: same agent, every turn kept, no second
greeting, an apology first. The caller stays on the line throughout and finishes the script.

Drained (SIGTERM, short SHUTDOWN_GRACE_SECONDS): a call placed during the drain is refused (503
"draining") and the orchestration keeps restarting its streaming until a host takes it; the call in
progress is closed at the deadline (1001) and handed over the same way; the old process exits 0.

The silence the caller hears after a kill is measured (kill to the first agent audio) and printed.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.exceptions import InvalidStatus

from local_stack.acs import INTERRUPTED, UNSUCCESSFUL, MediaLost, MediaOffer
from local_stack.callers.acs_caller import AcsMediaClient
from local_stack.callers.scripted import Line
from local_stack.phone_call import CallResult, PhoneCall
from local_stack.run import caller_voice, scenario_number
from local_stack.stack import LocalStack, StackOptions
from tests.support.waits import first_done

pytestmark = [pytest.mark.slow, pytest.mark.timeout(360)]

LINES = [Line("My account number is 4567 and my date of birth is March third, 1980."),
         Line("I would like to talk to a human agent.")]
APOLOGY = "Sorry, you were cut off."
# Eight restarts (1+2+4+4+... = 27 s of backoff; the default 5 cover 15 s): a new host can take 11 s to
# listen when the machine is busy with other tests.
ENV = {"MEDIA_RESTART_ATTEMPTS": "8"}


def turns(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["speaker"], e["text"]) for e in events if e["type"] == "transcript"]


def failures(stack: LocalStack, call_id: str) -> list[str]:
    """The mediaStreamingStatusDetails of each MediaStreamingFailed ACS posted for the call."""
    return [d.body[0]["data"]["mediaStreamingUpdate"]["mediaStreamingStatusDetails"] for d in stack.acs.callbacks
            if d.event_type == "MediaStreamingFailed" and d.body[0]["data"]["correlationId"] == call_id]


def offers(stack: LocalStack, call_id: str) -> list[MediaOffer]:
    return [o for o in stack.acs.media.offers if o.call.correlation_id == call_id]


def check_handover(stack: LocalStack, result: CallResult, before: list[tuple[str, str]], first_loss: str) -> None:
    """The call went on over a new socket to a new host, and nothing said before the fault was lost."""
    lost = failures(stack, result.call_id)
    assert lost[0] == first_loss
    assert set(lost[1:]) <= {UNSUCCESSFUL}, lost  # then refused until the new host listened
    legs = offers(stack, result.call_id)
    assert [o.lost.details if o.lost else None for o in legs] == [*lost, None]
    assert result.media is not None
    assert result.media.sockets == 2
    status = result.status or {}
    assert status["runtime_status"] == "Completed", status
    assert status["output"]["end_reason"] == "transferred"
    assert status["custom_status"]["media_restarts"] == len(lost)
    assert result.record is not None
    record = [(t["speaker"], t["text"]) for t in result.record["transcript"]]
    greeting = before[0]
    assert record.count(greeting) == 1  # never replayed
    assert record[:len(before)] == before  # every turn taken before the fault
    assert record[len(before)] == ("agent", APOLOGY)
    assert [speaker for speaker, _ in record[len(before) + 1:]] == ["caller", "agent"]  # one more line, answered
    assert record == turns(result.events)  # what the caller heard is what was recorded


async def test_a_killed_media_host_is_replaced_and_the_call_resumes(tmp_path: Path) -> None:
    voice = await caller_voice(LINES)
    times: dict[str, float] = {}
    before: list[tuple[str, str]] = []
    async with LocalStack(StackOptions(out=tmp_path, functions_port=0, media_port=0, extra_env=ENV)) as stack:

        async def crash(line: int) -> None:
            if line == 0:  # the caller has been answered once: the host dies, a new one starts
                assert call.result is not None
                before.extend(turns(call.result.events))
                times["kill"] = time.monotonic()
                assert await stack.kill_media_host() == -signal.SIGKILL
                await stack.start_media_host()
                times["healthy"] = time.monotonic()

        call = PhoneCall(stack, LINES, voice, to=scenario_number("banking"), after_answer=crash)
        result = await call.run(timeout=300)
        assert stack.media is not None
        assert stack.media.process is not None
        assert stack.media.process.poll() is None  # the new host is alive until the stack stops
    assert stack.exit_codes() == {"function host": 0, "media host": 0}
    assert stack.media_exits == [-signal.SIGKILL]
    assert [speaker for speaker, _ in before] == ["agent", "caller", "agent"]
    assert result.media is not None
    check_handover(stack, result, before, INTERRUPTED)

    resumed_at = offers(stack, result.call_id)[-1].opened_at
    heard = next(t for t, _ in result.media.agent.frames if t > times["kill"])
    print(f"\nsilence after the kill: {heard - times['kill']:.2f} s (new host healthy after "
          f"{times['healthy'] - times['kill']:.2f} s, socket reopened after {resumed_at - times['kill']:.2f} s, "
          f"{len(failures(stack, result.call_id)) - 1} restart(s) refused before)")


class LateCaller:
    """A silent caller on a call placed during the drain: records how each socket ended."""

    def __init__(self) -> None:
        self.refusals: list[tuple[int, str]] = []
        self.connected = asyncio.Event()

    async def __call__(self, offer: MediaOffer) -> None:
        try:
            async with AcsMediaClient(offer.url, headers=offer.headers) as media:
                self.connected.set()
                await first_done(offer.ended.wait(), media.closed.wait())
        except InvalidStatus as exc:
            self.refusals.append((exc.response.status_code, json.loads(exc.response.body)["error"]))
            raise MediaLost(UNSUCCESSFUL, str(exc)) from None
        except OSError as exc:
            raise MediaLost(UNSUCCESSFUL, str(exc)) from None


async def orchestration(stack: LocalStack, call_id: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{stack.functions_url}/api/calls/{call_id}") as resp:
        body: dict[str, Any] = await resp.json(content_type=None)
    return body.get("orchestration") or {}


async def test_a_drained_media_host_refuses_new_calls_and_hands_its_call_over(tmp_path: Path) -> None:
    voice = await caller_voice(LINES)
    grace = 3.0
    env = {**ENV, "SHUTDOWN_GRACE_SECONDS": str(grace)}
    late, late_id = LateCaller(), str(uuid.uuid4())
    before: list[tuple[str, str]] = []
    exit_s: list[float] = []
    async with LocalStack(StackOptions(out=tmp_path, functions_port=0, media_port=0, extra_env=env)) as stack:
        number = scenario_number("banking")

        async def drain(line: int) -> None:
            if line != 0:
                return
            assert call.result is not None
            assert stack.incoming_calls is not None
            before.extend(turns(call.result.events))
            sigterm = time.monotonic()
            stopping = asyncio.create_task(stack.signal_media_host(signal.SIGTERM))
            stack.expect_media(late_id, late)  # a new call arrives while the host drains
            await stack.acs.ring(stack.incoming_calls, number, "+14255550177", correlation_id=late_id)
            assert await stopping == 0
            exit_s.append(time.monotonic() - sigterm)
            await stack.start_media_host()

        call = PhoneCall(stack, LINES, voice, to=number, after_answer=drain)
        result = await call.run(timeout=300)
        # The late call reached the new host too (a first connection: it is greeted), then hangs up.
        await asyncio.wait_for(late.connected.wait(), 60)
        late_leg = offers(stack, late_id)[-1]
        stack.acs.caller_hangs_up(late_leg.call.call_connection_id)
        async with asyncio.timeout(30):
            while (late_status := await orchestration(stack, late_id)).get("runtime_status") != "Completed":
                await asyncio.sleep(0.2)
    assert stack.exit_codes() == {"function host": 0, "media host": 0}
    assert stack.media_exits == [0]
    print(f"\ndrained host exited {exit_s[0]:.2f} s after SIGTERM (SHUTDOWN_GRACE_SECONDS={grace:g})")
    assert late.refusals[0] == (503, "draining")
    assert failures(stack, late_id)[0] == UNSUCCESSFUL
    assert late_status["custom_status"]["media_restarts"] == len(failures(stack, late_id))
    assert late_status["output"]["end_reason"] == "disconnected"
    check_handover(stack, result, before, INTERRUPTED)
