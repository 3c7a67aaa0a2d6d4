"""The Realtime service cannot be reached, mid-call or at the start: the call goes on on the cascade, on the same
ACS socket, with the conversation so far (turns, agent, tool calls and results), and no caller turn is lost.

A media host built as `media_host.main` builds it (`pipeline_factory` with PIPELINE=realtime and cascade engines),
the real openai client against the local Realtime server (tests/support/realtime_server.py), a 16 kHz ACS socket,
Redis, and the scripted cascade engines (tests/support/scripted_engines.py: a phrase frame's first sample names
what the caller said; 100 ms of tone a word). The embedded engines, with what the caller heard transcribed back:
tests/e2e/test_realtime_fallback.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from agents.schema import Voice
from local_stack.callers.acs_client import AcsClient
from media_host.channel import CallInfo
from media_host.engines.base import ChatRequest, Engines
from media_host.engines.last_resort import Apology, build_last_resort
from media_host.pipelines.cascade.conversation import DEGRADED, HOLDING_PHRASE
from media_host.pipelines.factory import pipeline_factory
from media_host.pipelines.realtime import RealtimePipeline
from media_host.server import MediaHost
from media_host.transports.acs import AcsAdapter
from tests.support.fault_proxy import FaultProxy
from tests.support.media_harness import running_host, seed_call
from tests.support.outage import Outage, OutageTextToSpeech, VoiceprintTextToSpeech
from tests.support.realtime_harness import agents_dir
from tests.support.realtime_server import CallTool, RealtimeServer, Speak
from tests.support.scripted_engines import (
    FRAME,
    RATE,
    SILENCE,
    EnergyVoiceActivityDetector,
    ScriptedChatModel,
    ScriptedSpeechToText,
    ScriptedSttStream,
    ToneTextToSpeech,
    phrase_frame,
)

__all__ = ["agents_dir"]  # the scenario fixture (session-scoped: its tools module is loaded once)

GREETING = ("agent", "Hello, front desk.", False)
ASK, THANKS = 101, 102  # phrase frames the cascade's scripted STT reads
PHRASES = {ASK: "and order 43", THANKS: "thanks"}
UNHEARD = "what about order 43"  # what the scripted STT makes of speech that went through a resampler


class HeardSpeech(ScriptedSpeechToText):
    """The scripted STT, and speech that no longer carries a phrase number (the Realtime side's kept audio,
    resampled to the cascade's rate) is heard as UNHEARD."""

    def stream(self, language: str) -> ScriptedSttStream:
        return HeardStream(self)


class HeardStream(ScriptedSttStream):
    def push(self, pcm: bytes) -> None:
        if struct.unpack_from("<h", pcm)[0] in self.stt.phrases:
            super().push(pcm)
        elif np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32)).mean() > 1000 and UNHEARD not in self.words:
            self.words.append(UNHEARD)


@dataclass
class Call:
    host: MediaHost
    call_id: str
    acs: AcsClient
    pipeline: RealtimePipeline
    chat: ScriptedChatModel
    proxy: FaultProxy

    async def turns(self, count: int) -> list[tuple[str, str, bool]]:
        async with asyncio.timeout(15):
            while len(found := [(t.speaker.value, t.text, t.interrupted)
                                for t in await self.host.store.turns(self.call_id)]) < count:
                await asyncio.sleep(0.02)
        return found

    async def events(self, kind: str) -> list[dict[str, object]]:
        return [e.data for e in await self.host.store.events(self.call_id) if e.kind == kind]

    async def fell_back(self) -> dict[str, object]:
        async with asyncio.timeout(10):
            while not (found := await self.events("pipeline_fallback")):
                await asyncio.sleep(0.02)
        return found[0]

    async def say(self, phrase: int, ms: int = 200) -> None:
        """Loud frames (the Realtime server's VAD and the cascade's hear speech), paced."""
        for _ in range(ms // 20):
            await self.acs.send_frame(phrase_frame(phrase))
            await asyncio.sleep(0.02)

    async def quiet(self, ms: int) -> None:
        for _ in range(ms // 20):
            await self.acs.send_frame(SILENCE)
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def fallback_call(redis_url: str, agents_dir: Path, server: RealtimeServer, chat: ScriptedChatModel, *,
                        attempts: int = 2, outage: Outage | None = None, **settings: object) -> AsyncIterator[Call]:
    """A call on a Realtime host with the scripted cascade engines (down while `outage` says so); its Realtime
    socket goes through a fault proxy."""
    engines = Engines(vad=EnergyVoiceActivityDetector, stt=HeardSpeech(PHRASES), chat=chat,
                      tts=ToneTextToSpeech())
    if outage is not None:
        engines.tts = OutageTextToSpeech(engines.tts, outage)
        engines.last_resort = await build_last_resort([VoiceprintTextToSpeech(RATE)], RATE, Apology(Voice()))
    holder: list[RealtimePipeline] = []
    async with server, FaultProxy("127.0.0.1", server.port) as proxy, running_host(
            redis_url, adapters=[AcsAdapter], pipelines=lambda _i: holder[0], agents_dir=str(agents_dir),
            pipeline="realtime", realtime_websocket_url=proxy.url("ws", "/v1"), realtime_flavor=server.flavor,
            realtime_reconnect_attempts=attempts, **settings) as host:
        pipeline = pipeline_factory(host.settings, engines, host)(CallInfo("any", "acs", 16000))
        assert isinstance(pipeline, RealtimePipeline)
        holder.append(pipeline)
        call_id, token = await seed_call(host, scenario="rtdesk", agent="front")
        assert host.port is not None
        async with AcsClient(host.port, token, rate=16000) as acs:
            yield Call(host, call_id, acs, pipeline, chat, proxy)
    assert server.problems == []
    assert not server.script


def said(request: ChatRequest) -> list[tuple[str, str]]:
    """What the chat model was given, as (role, text or the tool calls)."""
    return [(m.role, m.content or ",".join(c.name for c in m.tool_calls)) for m in request.messages[1:]]


async def test_words_no_socket_heard_are_answered_on_the_cascade_after_an_apology(
        redis_url: str, agents_dir: Path) -> None:
    handoff = {"reason": "order", "summary": "The caller asks about orders."}
    server = RealtimeServer("ga", [Speak("Hello, front desk.", 200), CallTool("handoff_to_back", handoff),
                                   Speak("Back office, how can I help?", 200)], heard=["I have a question"])
    chat = ScriptedChatModel(["Order 43 is on its way.", "You're welcome."])
    async with fallback_call(redis_url, agents_dir, server, chat) as call:
        await call.turns(1)
        await call.say(ASK)
        await call.quiet(300)
        await call.turns(3)  # the Realtime model handed the call to the back office, which answered
        await call.say(ASK, 300)  # the caller asks on...
        async with asyncio.timeout(5):  # the server heard them start (and no end: they talk on)
            while [e["type"] for e in server.connections[-1].sent].count("input_audio_buffer.speech_started") < 2:
                await asyncio.sleep(0.02)
        server.refusing = True
        await server.drop()  # ...as the service goes away for good, before it could transcribe them
        fallback = await call.fell_back()
        await call.quiet(300)
        recorded = await call.turns(6)
        await call.say(THANKS)
        await call.quiet(700)  # the cascade's turn-taking: 500 ms of silence ends the turn
        recorded = await call.turns(8)
        page = call.host.metrics.render()
    assert recorded == [GREETING, ("caller", "I have a question", False),
                        ("agent", "Back office, how can I help?", False), ("caller", UNHEARD, False),
                        ("agent", DEGRADED, False), ("agent", "Order 43 is on its way.", False),
                        ("caller", "thanks", False), ("agent", "You're welcome.", False)]
    first, second = chat.requests
    assert first.agent.name == "back"  # the agent the Realtime model handed the call to
    assert said(first) == [("assistant", "Hello, front desk."), ("user", "I have a question"),
                           ("assistant", "handoff_to_back"), ("tool", first.messages[4].content),
                           ("assistant", "Back office, how can I help?"), ("user", UNHEARD)]
    assert first.messages[4].tool_call_id == first.messages[3].tool_calls[0].id == server.served[1].call_id
    assert said(second)[-2:] == [("assistant", "Order 43 is on its way."), ("user", "thanks")]
    assert (fallback["from"], fallback["to"], fallback["reason"]) == ("realtime", "cascade", "reconnect_failed")
    assert 300 <= int(str(fallback["unheard_ms"])) <= 1000  # the question, from just before it started
    assert ('switchboard_pipeline_fallbacks_total{from_pipeline="realtime",reason="reconnect_failed",'
            'to_pipeline="cascade"} 1.0') in page
    assert call.pipeline.events.get(kind="unavailable") == 1
    assert len(server.connections) == 1  # every reconnect was refused


@pytest.mark.parametrize("attempts", [2, 3], ids=["before_the_holding_phrase", "after_it"])
async def test_a_tool_result_the_caller_never_heard_is_spoken_by_the_cascade(
        redis_url: str, agents_dir: Path, attempts: int) -> None:
    server = RealtimeServer("ga", [Speak("Hello, front desk.", 200), CallTool("rt_lookup", {"order": "42"}),
                                   Speak("Never heard.", 300, drop_after_ms=0)], heard=["where is order 42"])
    chat = ScriptedChatModel([lambda request: f"Here it is: {request.messages[-1].content}"])
    # The holding phrase is due 1 s into the outage: two attempts (0.2 + 0.5 s) give up before, three after.
    async with fallback_call(redis_url, agents_dir, server, chat, attempts=attempts) as call:
        await call.turns(1)
        async with asyncio.timeout(5):
            while call.pipeline.events.get(kind="holding_rendered") == 0:
                await asyncio.sleep(0.02)
        server.refusing = True  # the socket up carries on; the next one is refused
        await call.say(ASK)
        await call.quiet(300)  # the tool runs; the service dies as the answer starts
        fallback = await call.fell_back()
        recorded = await call.turns(4 if attempts == 2 else 5)  # the apology alone lasts past the phrase's due
    [request] = chat.requests
    # The holding phrase is in the transcript, not in what the model answers: the tool's result is last.
    assert said(request) == [("assistant", "Hello, front desk."), ("user", "where is order 42"),
                             ("assistant", "rt_lookup"), ("tool", '{"order": "42", "status": "shipped"}')]
    holding = [("agent", HOLDING_PHRASE, False)] if attempts == 3 else []
    assert recorded == [GREETING, ("caller", "where is order 42", False), *holding, ("agent", DEGRADED, False),
                        ("agent", 'Here it is: {"order": "42", "status": "shipped"}', False)]
    # Once the cascade has the call, the Realtime side's phrase is no longer due (its audio is not the cascade's).
    assert call.pipeline.events.get(kind="holding_played") == len(holding)
    assert fallback["reason"] == "reconnect_failed"
    assert fallback["unheard_ms"] == 0


async def test_a_service_down_at_the_start_of_a_call_leaves_the_whole_call_to_the_cascade(
        redis_url: str, agents_dir: Path) -> None:
    server = RealtimeServer("ga")
    server.refusing = True
    chat = ScriptedChatModel(["Sure, order 43 is on its way."])
    async with fallback_call(redis_url, agents_dir, server, chat, attempts=5) as call:
        fallback = await call.fell_back()
        # A caller just answered waits for no backoff (0.2 + 0.5 + 1 + 2 + 4 s): one retry, and the cascade greets.
        assert call.proxy.stats.accepted == 2
        assert await call.turns(1) == [GREETING]  # a greeting, as any call starts: nothing to apologize for
        await call.say(ASK)
        await call.quiet(700)
        recorded = await call.turns(3)
    assert recorded == [GREETING, ("caller", "and order 43", False), ("agent", "Sure, order 43 is on its way.", False)]
    assert fallback["reason"] == "unreachable_at_start"
    assert server.connections == []
    assert call.pipeline.fallbacks.get(from_pipeline="realtime", to_pipeline="cascade",
                                       reason="unreachable_at_start") == 1



async def test_a_reconnect_that_hangs_is_given_up_at_the_deadline(
        redis_url: str, agents_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = RealtimeServer("ga", [Speak("Hello, front desk.", 200)])
    # Five attempts, each of which could wait CONNECT_TIMEOUT_S (10 s): the deadline (1 s) ends them.
    async with fallback_call(redis_url, agents_dir, server, ScriptedChatModel([]), attempts=5,
                             realtime_reconnect_deadline_seconds=1.0) as call:
        await call.turns(1)
        call.proxy.blackhole()  # new connections are held, unanswered...
        call.proxy.drop()  # ...and the socket up is reset
        fallback = await call.fell_back()
        recorded = await call.turns(2)
    assert recorded == [GREETING, ("agent", DEGRADED, False)]
    assert fallback["reason"] == "reconnect_failed"
    assert call.proxy.stats.accepted == 2  # the call's socket, and one reconnect that never got an answer
    assert "realtime: connect still pending at the deadline" in [r.getMessage() for r in caplog.records]


async def test_realtime_gone_and_no_cascade_engine_able_to_speak_is_the_last_resort(
        redis_url: str, agents_dir: Path) -> None:
    """Everything down: the cascade's own last resort (the clip spoken at start-up, then the human number)."""
    server = RealtimeServer("ga", [Speak("Hello, front desk.", 200)])
    async with fallback_call(redis_url, agents_dir, server, ScriptedChatModel([]), outage=Outage("tts")) as call:
        await call.turns(1)
        server.refusing = True
        await server.drop()
        await call.fell_back()
        async with asyncio.timeout(10):
            while not await call.events("transfer_requested"):
                await asyncio.sleep(0.02)
        [last_resort] = await call.events("last_resort")
        assert call.pipeline.fallback is not None
        clip = call.pipeline.fallback.last_resort.clip(transfer=True, rate=RATE)
        whole = clip[:len(clip) // FRAME * FRAME]  # the frames the wire carries
        await call.acs.wait_for(lambda r: whole in b"".join(r.audio))  # heard whole
        transfers = await call.events("transfer_requested")
    assert (last_resort["stage"], last_resort["action"]) == ("tts", "transfer")
    assert transfers == [{"target": "+15550000199", "reason": last_resort["reason"]}]
