"""A cascade call over a real ACS socket and Redis whose engines fail: the STT refuses, the TTS breaks off
mid-sentence, the cloud chat model never answers. The fallback chains (media_host/engines/) carry the call
on the next engine: the caller's words are all heard, the reply goes on from the next sentence, the brain
answers at the first-token deadline, and every fallback is in the session and the call record. Scripted
engines (tests/support/scripted_engines.py, faulty_engines.py) keep the audio exact: 100 ms a word.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest

from media_host.brain import OfflineBrainChatModel
from media_host.brain.replies import CLARIFY
from media_host.engines.base import Engines, SpeechToText, TextToSpeech
from media_host.engines.chain import EngineChain, Link
from media_host.engines.factory import cloud_chat
from media_host.engines.fallback_stt import FallbackSpeechToText
from media_host.engines.fallback_tts import FallbackTextToSpeech
from media_host.engines.health import EngineHealth
from media_host.engines.metered_chat import MeteredChatModel
from media_host.engines.outcomes import FALLBACK, EngineStats
from media_host.engines.resilient_chat import ChatRetryStats, ResilientChatModel
from switchboard.call_records import record_from_session
from switchboard.settings import load_settings
from tests.contract.test_cascade_cloud_chat import events
from tests.contract.test_cascade_mechanics import (
    HELLO,
    PHRASES,
    QUESTION,
    agent_frames,
    desk_call,
    silence,
    speak,
    wait_turns,
)
from tests.support.faulty_engines import FaultySpeechToText, FaultyTextToSpeech
from tests.support.manual_clock import ManualClock
from tests.support.openai_server import Hang, OpenAIServer
from tests.support.scripted_engines import ScriptedSpeechToText, ToneTextToSpeech, scripted_engines

GREETING = ("agent", "Hello, front desk.", False)


@pytest.fixture
async def health() -> AsyncIterator[EngineHealth]:
    health = EngineHealth(cooldown_s=30.0, clock=ManualClock())  # nothing comes back during a test
    yield health
    await health.aclose()


def with_chains(engines: Engines, health: EngineHealth, stats: EngineStats, *,
                stt: Sequence[tuple[str, SpeechToText]] = (), tts: Sequence[tuple[str, TextToSpeech]] = ()) -> Engines:
    if stt:
        stt_links: list[Link[SpeechToText]] = [Link(name, engine) for name, engine in stt]
        engines.stt = FallbackSpeechToText(EngineChain("stt", stt_links, health=health, stats=stats, deadline_s=1.0))
    if tts:
        tts_links: list[Link[TextToSpeech]] = [Link(name, engine) for name, engine in tts]
        engines.tts = FallbackTextToSpeech(EngineChain("tts", tts_links, health=health, stats=stats, deadline_s=1.0))
    return engines


async def test_a_refused_stt_loses_no_caller_turn_and_the_record_says_so(redis_url: str,
                                                                         health: EngineHealth) -> None:
    stats = EngineStats()
    engines = with_chains(scripted_engines(PHRASES, ["The answer is yes.", "Hello again."]), health, stats,
                          stt=[("azure_speech", FaultySpeechToText("refuse")),
                               ("whisper", ScriptedSpeechToText(PHRASES))])
    async with desk_call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await silence(acs, 200)
        await speak(acs, QUESTION)
        await wait_turns(host, call_id, 3)
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3 + 4))
        await silence(acs, 200)
        await speak(acs, HELLO)  # Azure is down now: straight to Whisper, no second failure
        recorded = await wait_turns(host, call_id, 5)
        fallbacks = await events(host, call_id, "engine_fallback")
        state = await host.store.load(call_id)
    assert recorded == [GREETING, ("caller", "what is the answer", False), ("agent", "The answer is yes.", False),
                        ("caller", "hello", False), ("agent", "Hello again.", False)]
    assert fallbacks == [
        {"stage": "stt", "from": "azure_speech", "to": "whisper", "reason": "error", "error": "ConnectionRefusedError"},
        {"stage": "stt", "from": "azure_speech", "to": "whisper", "reason": "down"}]
    assert stats.counts == {("stt", "azure_speech", "error"): 1, ("stt", "azure_speech", "skipped"): 1,
                            ("stt", "whisper", "fallback"): 2}
    assert state is not None
    record = record_from_session(state, outcome=None, ended_at=datetime.now(UTC), ttl_days=1, salt=b"s")
    assert [(f.stage, f.engine, f.to, f.reason) for f in record.fallbacks] == [
        ("stt", "azure_speech", "whisper", "error"), ("stt", "azure_speech", "whisper", "down")]


async def test_a_tts_failing_mid_reply_goes_on_from_the_next_sentence(redis_url: str, health: EngineHealth) -> None:
    stats = EngineStats()
    azure = FaultyTextToSpeech("mid_sentence", fault_after=1)  # says the greeting, then breaks off
    fallback = ToneTextToSpeech()
    engines = with_chains(scripted_engines(PHRASES, ["First part is here. Second part is here."]), health, stats,
                          tts=[("azure_speech", azure), ("hibari", fallback)])
    async with desk_call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await silence(acs, 200)
        await speak(acs, QUESTION)
        await wait_turns(host, call_id, 3)
        await silence(acs, 400)
        heard = len(acs.received.audio)
        fallbacks = await events(host, call_id, "engine_fallback")
    # The greeting (3 words), the first half of "First part is here." from Azure (2), then all of
    # "Second part is here." from the fallback (4): the broken sentence is not said again.
    assert heard == agent_frames(3 + 2 + 4)
    assert azure.spoken == ["Hello, front desk.", "First part is here."]
    assert fallback.spoken == ["Second part is here."]
    assert fallbacks == [{"stage": "tts", "from": "azure_speech", "to": "hibari", "reason": "error",
                          "error": "ConnectionResetError", "mid_sentence": True},
                         {"stage": "tts", "from": "azure_speech", "to": "hibari", "reason": "down"}]
    assert stats.get(stage="tts", engine="hibari", outcome="fallback") == 1


async def test_a_chat_model_that_never_answers_gives_way_to_the_brain_at_the_first_token_deadline(
        redis_url: str) -> None:
    async with OpenAIServer([Hang()]) as server:
        settings = load_settings(chat_engine="openai_compatible", openai_base_url=server.base_url,
                                 openai_chat_model="cloud-model", chat_timeout_seconds=30.0, chat_max_retries=0,
                                 chat_first_token_seconds=1.0)
        model = cloud_chat(settings, ChatRetryStats())  # the factory's: its budget is the first-token deadline
        assert isinstance(model, ResilientChatModel)
        stats = EngineStats()
        engines = scripted_engines(PHRASES, [])
        engines.chat = MeteredChatModel(model, stats)
        engines.fallback_chat = MeteredChatModel(OfflineBrainChatModel(), stats, answered=FALLBACK)
        async with desk_call(redis_url, engines) as (host, call_id, acs):
            await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
            await silence(acs, 200)
            await speak(acs, QUESTION)
            recorded = await wait_turns(host, call_id, 3)  # the brain, before the holding phrase was due
            fallbacks = await events(host, call_id, "engine_fallback")
        await model.aclose()
    assert recorded == [GREETING, ("caller", "what is the answer", False), ("agent", CLARIFY, False)]
    assert fallbacks == [{"stage": "chat", "from": "openai_compatible", "to": "offline", "reason": "timeout",
                          "error": "ChatDeadlineExceeded"}]
    assert stats.counts == {("chat", "openai_compatible", "timeout"): 1, ("chat", "offline", "fallback"): 1}
