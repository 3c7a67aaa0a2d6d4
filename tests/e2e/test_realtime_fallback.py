"""A Realtime banking call whose service goes away for good: the call goes on on the embedded cascade, over the
same ACS socket, and what the caller heard is transcribed back by the embedded Whisper.

The Realtime part runs against the local Realtime server (tests/support/realtime_server.py, GA): the caller's
line there is a tone its energy VAD hears, and it "hears" the scripted words; its audio is marker tones. Once it
is gone, the caller's words are speech (the embedded TTS through a telephone band) and the agent's are the
cascade's own. The mechanics in detail, with scripted engines: tests/contract/test_realtime_fallback.py.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from local_stack.callers.acs_caller import AcsMediaClient
from local_stack.callers.scripted import Line, ScriptedCaller, telephone_voice
from media_host.channel import CallInfo
from media_host.engines.base import Engines
from media_host.pipelines.factory import pipeline_factory
from media_host.pipelines.realtime import RealtimePipeline
from media_host.server import MediaHost
from media_host.transports.acs import AcsAdapter
from switchboard.session_models import Speaker
from tests.e2e.conftest import digits, transcribe
from tests.support.media_harness import running_host, seed_call
from tests.support.realtime_harness import LOUD
from tests.support.realtime_server import CallTool, RealtimeServer, Speak

pytestmark = pytest.mark.slow

VERIFIED = "Thank you, Ada. How can I help?"


@contextlib.asynccontextmanager
async def banking_call(redis_url: str, engines: Engines,
                       server: RealtimeServer) -> AsyncIterator[tuple[MediaHost, str, AcsMediaClient]]:
    """A banking call on a Realtime host built as media_host.main builds it, with the embedded cascade engines."""
    holder: list[RealtimePipeline] = []
    async with server, running_host(redis_url, adapters=[AcsAdapter], pipelines=lambda _i: holder[0],
                                    pipeline="realtime", realtime_websocket_url=server.url, realtime_flavor="ga",
                                    realtime_reconnect_attempts=2) as host:
        pipeline = pipeline_factory(host.settings, engines, host)(CallInfo("any", "acs", 24000))
        assert isinstance(pipeline, RealtimePipeline)
        holder.append(pipeline)
        call_id, token = await seed_call(host)
        async with AcsMediaClient(f"ws://127.0.0.1:{host.port}/api/v1/media/stream?token={token}") as media:
            yield host, call_id, media
    assert server.problems == []


async def test_realtime_gone_mid_call_the_caller_hears_an_apology_then_the_cascade_answers(
        redis_url: str, engines: Engines) -> None:
    server = RealtimeServer("ga", [
        Speak("Good morning, thank you for calling Contoso Bank.", 400),
        CallTool("verify_customer", {"account_number": "4567", "date_of_birth": "1980-03-03"}),
        Speak(VERIFIED, 400)], heard=["My account number is 4567 and my date of birth is March third, 1980."])
    async with banking_call(redis_url, engines, server) as (host, call_id, media):
        await media.agent_finished()  # the Realtime greeting
        media.say(LOUD * 40)  # the caller verifies themselves, on Realtime
        await media.spoken()
        await server.wait_for(lambda s: len(s.served) == 3)
        await media.agent_finished(since=time.monotonic() - 0.1)  # "Thank you, Ada"
        server.refusing = True
        gone = time.monotonic()
        await server.drop()  # and the service goes away for good
        caller = ScriptedCaller(media, telephone_voice(engines.tts, media.rate))
        caller.last_said = gone
        asked = await caller.say(Line("What is my balance?"))  # once the agent (the apology) has finished
        apology = media.agent_audio_between(gone, asked.started)
        await caller.answered()
        answer = media.agent_audio_since(asked.ended)
        state = await host.store.load(call_id)
    assert state is not None
    heard = await transcribe(engines, apology)
    assert "technical trouble" in heard.lower(), heard
    heard = await transcribe(engines, answer)
    assert "2345.67" in digits(heard), heard  # no second verification: the customer carried over
    caller_lines = [t.text for t in state.turns if t.speaker is Speaker.CALLER]
    assert len(caller_lines) == 2, caller_lines  # no caller turn lost
    assert "balance" in caller_lines[1].lower()
    tools = [(e.data["name"], e.data["ok"]) for e in state.events if e.kind == "tool_call"]
    assert tools[0] == ("verify_customer", True)
    assert ("verify_customer", True) not in tools[1:]
    [fallback] = [e.data for e in state.events if e.kind == "pipeline_fallback"]
    assert (fallback["from"], fallback["to"], fallback["reason"]) == ("realtime", "cascade", "reconnect_failed")
    assert 'switchboard_pipeline_fallbacks_total{from_pipeline="realtime",reason="reconnect_failed"' in \
        host.metrics.render()


async def test_realtime_down_at_the_start_the_cascade_greets(redis_url: str, engines: Engines) -> None:
    server = RealtimeServer("ga")
    server.refusing = True
    async with banking_call(redis_url, engines, server) as (host, call_id, media):
        await media.agent_finished(timeout=20)
        greeting = media.agent_audio_since(0.0)
        events = [e for e in await host.store.events(call_id) if e.kind == "pipeline_fallback"]
    heard = await transcribe(engines, greeting)
    assert "contoso bank" in heard.lower(), heard
    assert [e.data["reason"] for e in events] == ["unreachable_at_start"]
