"""The cascade pipeline's mechanics over a real ACS socket and Redis, with scripted engines.

Turn-taking, barge-in with the heard part of a reply, continued speech, tools (and the holding
phrase), handoffs, transfers, hang-ups, the chat fallback and DTMF, measured exactly: the scripted
TTS speaks 100 ms per word. The real engines hold a whole call in test_cascade_call.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from local_stack.callers.acs import dtmf
from local_stack.callers.acs_client import AcsClient
from media_host.channel import CallInfo
from media_host.engines.base import Engines
from media_host.pipelines import Pipeline
from media_host.pipelines.cascade import CascadePipeline
from media_host.server import MediaHost
from media_host.transports.acs import AcsAdapter
from switchboard.session_models import Speaker
from tests.support.media_harness import running_host, seed_call
from tests.support.scripted_engines import (
    SILENCE,
    EnergyVoiceActivityDetector,
    ScriptedChatModel,
    ScriptedSpeechToText,
    phrase_frame,
    scripted_engines,
)

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "cascade"
HELLO, QUESTION, MORE, INTERRUPT = 101, 102, 103, 104
PHRASES = {HELLO: "hello", QUESTION: "what is the answer", MORE: "and another thing", INTERRUPT: "stop please"}


@contextlib.asynccontextmanager
async def desk_call(redis_url: str, engines: Engines) -> AsyncIterator[tuple[MediaHost, str, AcsClient]]:
    holder: list[MediaHost] = []

    def pipelines(_info: CallInfo) -> Pipeline:
        return CascadePipeline(engines, holder[0].control_plane)

    async with running_host(redis_url, adapters=[AcsAdapter], pipelines=pipelines, agents_dir=str(FIXTURE)) as host:
        holder.append(host)
        call_id, token = await seed_call(host, scenario="desk", agent="front")
        assert host.port is not None
        async with AcsClient(host.port, token, rate=16000) as acs:
            yield host, call_id, acs


async def speak(acs: AcsClient, phrase: int, ms: int = 200, silence_ms: int = 400) -> None:
    """The caller says a phrase at real-time pace, then stays silent (ACS streams silence too)."""
    for _ in range(ms // 20):
        await acs.send_frame(phrase_frame(phrase))
        await asyncio.sleep(0.02)
    await silence(acs, silence_ms)


async def silence(acs: AcsClient, ms: int) -> None:
    for _ in range(ms // 20):
        await acs.send_frame(SILENCE)
        await asyncio.sleep(0.02)


def agent_frames(words: int) -> int:
    return words * 5  # 100 ms a word, 20 ms frames


async def turns(host: MediaHost, call_id: str) -> list[tuple[str, str, bool]]:
    return [(t.speaker.value, t.text, t.interrupted) for t in await host.store.turns(call_id)]


async def wait_turns(host: MediaHost, call_id: str, count: int, timeout: float = 10) -> list[tuple[str, str, bool]]:
    async with asyncio.timeout(timeout):
        while len(found := await turns(host, call_id)) < count:
            await asyncio.sleep(0.05)
    return found


async def test_greeting_then_a_turn_is_answered_and_recorded(redis_url: str) -> None:
    engines = scripted_engines(PHRASES, ["Hi there, how can I help?"])
    async with desk_call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))  # "Hello, front desk."
        await silence(acs, 200)
        await speak(acs, HELLO)
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3 + 6))
        recorded = await wait_turns(host, call_id, 3)
        assert recorded == [("agent", "Hello, front desk.", False), ("caller", "hello", False),
                            ("agent", "Hi there, how can I help?", False)]
        session = await host.store.require(call_id)
        assert session.greeted
        chat = engines.chat
        assert isinstance(chat, ScriptedChatModel)
        assert chat.requests[0].messages[0].content == "You are the front desk of desk."
        assert [m.role for m in chat.requests[0].messages] == ["system", "user"]
        answer = (await host.store.turns(call_id))[2]
        assert {"eos_detected", "stt_done", "first_token", "first_tts_chunk", "first_audio_out",
                "total", "overhead"} <= set(answer.latency_ms)


async def test_barge_in_stops_the_agent_and_keeps_only_what_was_heard(redis_url: str) -> None:
    long_reply = " ".join(["word"] * 30) + "."  # 3 s of speech
    engines = scripted_engines(PHRASES, [long_reply, "Sure, stopping."])
    async with desk_call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await silence(acs, 300)
        await speak(acs, QUESTION)
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3) + 10)  # the reply is playing
        await silence(acs, 800)
        await speak(acs, INTERRUPT, ms=200, silence_ms=0)
        await acs.wait_for(lambda r: len(r.stops) == 1)  # StopAudio at once
        stopped_at = acs.received.stops[0]
        await silence(acs, 600)
        recorded = await wait_turns(host, call_id, 5)
        speaker, heard, interrupted = recorded[2]
        assert (speaker, interrupted) == ("agent", True)
        words = len(heard.split())
        assert 6 <= words <= 20, heard  # roughly the second of the reply that played, never all 30
        played = stopped_at - agent_frames(3)
        assert played < agent_frames(30)
        assert recorded[3] == ("caller", "stop please", False)
        assert recorded[4] == ("agent", "Sure, stopping.", False)
        events = [e.kind for e in await host.store.events(call_id)]
        assert "barge_in" in events
        # The model's history keeps only what the caller heard of the interrupted reply.
        chat = engines.chat
        assert isinstance(chat, ScriptedChatModel)
        history = chat.requests[-1].messages
        assert history[-2].role == "assistant"
        assert history[-2].content.startswith(heard)
        assert len(history[-2].content.split()) < 30


async def test_speech_resumed_before_the_answer_is_one_turn(redis_url: str) -> None:
    engines = scripted_engines(PHRASES, ["One answer for both."], delay_s=0.5)
    async with desk_call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await silence(acs, 300)
        await speak(acs, QUESTION, silence_ms=340)  # a pause just past the end of turn...
        await speak(acs, MORE)  # ...then they carry on before any answer
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3 + 4))
        recorded = await wait_turns(host, call_id, 4)
        # Both parts are the caller's; the answer that was being prepared for the first is dropped and
        # one answer, to both, is given.
        assert recorded[1:] == [("caller", "what is the answer", False), ("caller", "and another thing", False),
                                ("agent", "One answer for both.", False)]
        chat = engines.chat
        assert isinstance(chat, ScriptedChatModel)
        assert [m.content for m in chat.requests[-1].messages if m.role == "user"] == [
            "what is the answer", "and another thing"]


async def test_slow_tool_gets_a_holding_phrase_and_the_result_is_spoken(redis_url: str) -> None:
    engines = scripted_engines(PHRASES, [("desk_slow", {}), "It was late."])
    async with desk_call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await speak(acs, QUESTION)
        recorded = await wait_turns(host, call_id, 4, timeout=15)
        assert recorded[2:] == [("agent", "One moment while I check that.", False), ("agent", "It was late.", False)]
        calls = [e.data for e in await host.store.events(call_id) if e.kind == "tool_call"]
        assert calls == [{"name": "desk_slow", "ok": True, "arguments": {}, "elapsed_ms": calls[0]["elapsed_ms"],
                          "error": None}]
        assert calls[0]["elapsed_ms"] >= 1800


async def test_handoff_switches_agent_greets_and_answers(redis_url: str) -> None:
    engines = scripted_engines(PHRASES, [("handoff_to_back", {"reason": "complex", "summary": "wants the back"}),
                                         "Back here, all sorted."])
    async with desk_call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await speak(acs, QUESTION)
        recorded = await wait_turns(host, call_id, 4)
        assert recorded[2:] == [("agent", "Back office.", False), ("agent", "Back here, all sorted.", False)]
        session = await host.store.require(call_id)
        assert session.current_agent == "back"
        handoffs = await host.store.handoffs(call_id)
        assert [(h.from_agent, h.to_agent, h.summary) for h in handoffs] == [("front", "back", "wants the back")]
        chat = engines.chat
        assert isinstance(chat, ScriptedChatModel)
        after = chat.requests[-1]
        assert after.agent.name == "back"
        assert after.messages[0].content == "You are the back office. wants the back"
        assert after.messages[-1].role == "tool"  # the new agent answers the same request
        turns_by_agent = [t.agent for t in await host.store.turns(call_id) if t.speaker is Speaker.AGENT]
        assert turns_by_agent == ["front", "back", "back"]
        assert EnergyVoiceActivityDetector.made[-1].end_of_speech_ms == 400  # the back office's turn-taking from now on


async def test_transfer_is_requested_after_the_caller_heard_the_reply(redis_url: str) -> None:
    engines = scripted_engines(PHRASES, [("transfer_to_human", {"reason": "asked"}), "Putting you through now."])
    async with desk_call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await speak(acs, QUESTION)
        async with asyncio.timeout(10):
            while not [e for e in await host.store.events(call_id) if e.kind == "transfer_requested"]:
                await asyncio.sleep(0.05)
        requests = [e for e in await host.store.events(call_id) if e.kind == "transfer_requested"]
        assert requests[-1].data == {"target": "+15550000199", "reason": "asked"}
        recorded = await turns(host, call_id)
        assert recorded[-1] == ("agent", "Putting you through now.", False)  # spoken and heard first


async def test_a_tool_that_ends_the_call_hangs_up_after_the_goodbye(redis_url: str) -> None:
    engines = scripted_engines(PHRASES, [("desk_goodbye", {}), "Goodbye."])
    async with desk_call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await speak(acs, QUESTION, silence_ms=0)
        streaming = asyncio.create_task(silence(acs, 5000))
        code, reason = await acs.closed(timeout=10)
        streaming.cancel()
        assert (code, reason) == (1000, "call ended")
        kinds = [e.kind for e in await host.store.events(call_id)]
        assert "hangup_requested" in kinds
        assert (await turns(host, call_id))[-1] == ("agent", "Goodbye.", False)


async def test_a_failing_model_falls_back_and_the_caller_still_gets_an_answer(redis_url: str) -> None:
    engines = scripted_engines(PHRASES, [], fail=True)
    engines.fallback_chat = ScriptedChatModel(["The backup answers."], name="brain")
    async with desk_call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await speak(acs, QUESTION)
        recorded = await wait_turns(host, call_id, 3)
        assert recorded[2] == ("agent", "The backup answers.", False)
        assert [e.data for e in await host.store.events(call_id) if e.kind == "chat_fallback"] == [
            {"engine": "scripted"}]


async def test_dtmf_digits_are_a_turn(redis_url: str) -> None:
    engines = scripted_engines(PHRASES, [lambda request: f"You typed {request.messages[-1].content}."])
    async with desk_call(redis_url, engines) as (host, call_id, acs):
        await wait_turns(host, call_id, 1)  # the greeting has been heard
        for digit in "4567#":
            await acs.send(dtmf(digit))
        recorded = await wait_turns(host, call_id, 3)
        assert recorded[1:] == [("caller", "4567", False), ("agent", "You typed 4567.", False)]


async def test_an_openai_compatible_model_chosen_by_settings_holds_the_turn(redis_url: str) -> None:
    """CHAT_ENGINE=openai_compatible: the real openai SDK, over HTTP, calls a tool and phrases the answer."""
    from media_host.engines.openai_chat import openai_chat_from_settings
    from switchboard.settings import load_settings
    from tests.support.openai_server import Call, OpenAIServer, Reply

    script = [Reply(tool_calls=[Call("desk_lookup", {"what": "hours"})]),
              Reply(deltas=["It is ", "open all day. ", "Anything else?"])]
    async with OpenAIServer(script) as server:
        settings = load_settings(chat_engine="openai_compatible", openai_base_url=server.base_url,
                                 openai_chat_model="local-model")
        chat = openai_chat_from_settings(settings)
        assert chat is not None
        engines = scripted_engines(PHRASES, [])
        engines.chat = chat
        async with desk_call(redis_url, engines) as (host, call_id, acs):
            await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
            await speak(acs, QUESTION)
            recorded = await wait_turns(host, call_id, 3)
            assert recorded[2] == ("agent", "It is open all day. Anything else?", False)
            calls = [e.data["name"] for e in await host.store.events(call_id) if e.kind == "tool_call"]
            assert calls == ["desk_lookup"]
        first, second = server.requests[0].body, server.requests[1].body
        assert first["model"] == "local-model"
        assert [t["function"]["name"] for t in first["tools"]] == ["desk_lookup", "desk_slow", "desk_goodbye",
                                                                  "transfer_to_human", "handoff_to_back"]
        assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool"]
        assert second["messages"][-1]["content"] == '{"found": "hours"}'


async def test_a_noise_that_cut_the_agent_off_gets_the_rest_of_the_reply(redis_url: str) -> None:
    reply = "First sentence here. " + "Second sentence is long and matters. " * 3
    engines = scripted_engines(PHRASES, [reply])
    noise = 999  # a phrase number the scripted STT does not know: it transcribes to nothing
    async with desk_call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await silence(acs, 300)
        await speak(acs, QUESTION)
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3) + 25)  # half a second into the reply
        await speak(acs, noise, ms=100, silence_ms=0)
        await acs.wait_for(lambda r: len(r.stops) == 1)
        await silence(acs, 700)
        recorded = await wait_turns(host, call_id, 4)  # the noise is not a caller turn
        cut, resumed = recorded[2], recorded[3]
        assert cut[0] == "agent"
        assert cut[2]  # interrupted
        assert resumed[0] == "agent"
        assert not resumed[2]
        assert resumed[1].endswith("Second sentence is long and matters.")
        assert len(resumed[1]) < len(reply)  # the rest, not the whole reply again
        assert "resumed_after_noise" in [e.kind for e in await host.store.events(call_id)]


async def test_a_transcript_started_at_the_pause_is_used_when_the_caller_has_finished(redis_url: str,
                                                                                      monkeypatch) -> None:
    monkeypatch.setattr(EnergyVoiceActivityDetector, "pause_ms", 100)
    engines = scripted_engines(PHRASES, ["Quick answer."])
    async with desk_call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await speak(acs, QUESTION)
        recorded = await wait_turns(host, call_id, 3)
        assert recorded[1:] == [("caller", "what is the answer", False), ("agent", "Quick answer.", False)]
        stt = engines.stt
        assert isinstance(stt, ScriptedSpeechToText)
        assert stt.finished == 1  # decoded once, at the pause: not again at the end of the turn
        marks = (await host.store.turns(call_id))[2].latency_ms
        assert marks["stt_done"] < marks["eos_detected"]  # the text was ready before the window closed


async def test_speech_after_the_pause_discards_the_early_transcript(redis_url: str, monkeypatch) -> None:
    monkeypatch.setattr(EnergyVoiceActivityDetector, "pause_ms", 100)
    engines = scripted_engines(PHRASES, ["Both parts heard."])
    async with desk_call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await speak(acs, QUESTION, silence_ms=200)  # pauses (100 ms) but the turn has not ended (300 ms)
        await speak(acs, MORE)
        recorded = await wait_turns(host, call_id, 3)
        assert recorded[1:] == [("caller", "what is the answer and another thing", False),
                                ("agent", "Both parts heard.", False)]
