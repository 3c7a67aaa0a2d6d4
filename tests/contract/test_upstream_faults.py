"""The cascade's chat model fails upstream: the fault proxy (tests/support/fault_proxy.py) sits between the real
`openai` SDK (behind the retry policy) and the local chat server (tests/support/openai_server.py), on a cascade
call over a real ACS socket and Redis, with scripted STT and TTS (100 ms of audio per word).

When the model is slow (latency) or silent (a blackhole), the caller hears the holding phrase instead
of silence, then the model's answer, or the offline brain's once the model is given up; when its
connection drops, the request is retried or what was said stands. Either way the call goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from local_stack.callers.acs_client import AcsClient
from media_host.brain.replies import CLARIFY
from media_host.engines.openai_chat import openai_chat_from_settings
from media_host.engines.resilient_chat import ResilientChatModel, resilient
from media_host.pipelines.cascade.conversation import HOLDING_PHRASE
from media_host.server import MediaHost
from switchboard.settings import load_settings
from tests.contract.test_cascade_cloud_chat import cloud_engines, events
from tests.contract.test_cascade_mechanics import HELLO, QUESTION, agent_frames, desk_call, silence, speak
from tests.contract.test_cascade_mechanics import turns as recorded_turns
from tests.support.fault_proxy import FaultProxy
from tests.support.openai_server import OpenAIServer, Reply, ScriptItem

GREETING = ("agent", "Hello, front desk.", False)
HOLDING = ("agent", HOLDING_PHRASE, False)


@contextlib.asynccontextmanager
async def proxied_model(script: list[ScriptItem], **settings: Any) -> AsyncIterator[
        tuple[OpenAIServer, FaultProxy, ResilientChatModel]]:
    async with OpenAIServer(script) as server, FaultProxy("127.0.0.1", server.port) as proxy:
        config = load_settings(**{"chat_engine": "openai_compatible", "openai_base_url": proxy.url("http", "/v1"),
                                  "openai_chat_model": "cloud-model", "chat_timeout_seconds": 5.0,
                                  "chat_max_retries": 1, "chat_retry_max_wait_seconds": 0.05, **settings})
        model = openai_chat_from_settings(config, timeout_s=config.chat_timeout_seconds)
        assert model is not None
        chat = resilient(model, config)
        try:
            yield server, proxy, chat
        finally:
            await chat.aclose()


async def answered(host: MediaHost, call_id: str, acs: AcsClient, expected: list[tuple[str, str, bool]],
                   timeout: float = 20) -> list[tuple[str, str, bool]]:
    """Wait until the transcript has `expected` turns (agent turns are written once heard); returns them."""
    async with asyncio.timeout(timeout):
        while len(found := await recorded_turns(host, call_id)) < len(expected):
            await asyncio.sleep(0.05)
    await silence(acs, 200)
    return found


async def test_a_slow_model_gets_a_holding_phrase_then_answers(redis_url: str) -> None:
    script: list[ScriptItem] = [Reply(deltas=["The answer ", "is yes."]), Reply(deltas=["Hello again."])]
    async with proxied_model(script) as (server, proxy, chat), \
            desk_call(redis_url, cloud_engines(chat)) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await silence(acs, 200)
        proxy.latency(1500)  # each way: the first words come 3 s after the request, well past the 1.5 s
        loop = asyncio.get_running_loop()
        asked = loop.time()
        await speak(acs, QUESTION)
        found = await answered(host, call_id, acs, [GREETING] * 4)
        print(f"latency: the answer was recorded {loop.time() - asked:.1f} s after the question")
        assert found == [GREETING, ("caller", "what is the answer", False), HOLDING,
                         ("agent", "The answer is yes.", False)]
        # Both were heard: the phrase, then the answer (scripted TTS: 5 frames a word).
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3 + 6 + 4))
        await proxy.pass_through()
        await speak(acs, HELLO)
        found = await answered(host, call_id, acs, [GREETING] * 6)
        assert found[4:] == [("caller", "hello", False), ("agent", "Hello again.", False)]  # no phrase: it was quick
        assert await events(host, call_id, "chat_fallback") == []
    assert len(server.requests) == 2


async def test_a_blackholed_model_gets_a_holding_phrase_then_the_brain_answers(redis_url: str) -> None:
    script: list[ScriptItem] = [Reply(deltas=["You are back with the model."])]
    async with proxied_model(script, chat_timeout_seconds=1.5) as (server, proxy, chat), \
            desk_call(redis_url, cloud_engines(chat)) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await silence(acs, 200)
        proxy.blackhole()  # the model's connections open and then nothing: every attempt times out
        await speak(acs, QUESTION)
        found = await answered(host, call_id, acs, [GREETING] * 4)
        assert found == [GREETING, ("caller", "what is the answer", False), HOLDING, ("agent", CLARIFY, False)]
        assert await events(host, call_id, "chat_fallback") == [{"engine": "openai_compatible"}]
        assert chat.stats.get(kind="timeout") == 2  # tried, retried, given up: the brain answered
        # The path comes back (the dead connections are dropped): the model answers the next turn.
        proxy.drop()
        await proxy.pass_through()
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3 + 6 + len(CLARIFY.split())))
        await silence(acs, 200)
        await speak(acs, HELLO)
        found = await answered(host, call_id, acs, [GREETING] * 6)
        assert found[4:] == [("caller", "hello", False), ("agent", "You are back with the model.", False)]
    assert len(server.requests) == 1  # the two held requests never reached it


async def test_a_dropped_model_connection_is_retried_or_what_was_said_stands(redis_url: str) -> None:
    script: list[ScriptItem] = [
        Reply(deltas=["Never heard."], delay_s=5.0),  # dropped before its first words: retried
        Reply(deltas=["The answer is yes."]),
        Reply(deltas=["First part. ", "Second part. ", "Third part."], chunk_delay_s=0.5),  # dropped mid-answer
        Reply(deltas=["Still here."])]
    async with proxied_model(script) as (server, proxy, chat), \
            desk_call(redis_url, cloud_engines(chat)) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await silence(acs, 200)
        await speak(acs, QUESTION, silence_ms=0)
        streaming = asyncio.create_task(silence(acs, 400))
        await _until(lambda: len(server.requests) == 1)
        assert proxy.drop() >= 1
        found = await answered(host, call_id, acs, [GREETING] * 3)
        await streaming
        assert found[1:] == [("caller", "what is the answer", False), ("agent", "The answer is yes.", False)]
        assert await events(host, call_id, "chat_fallback") == []  # the retry answered

        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3 + 4))
        await silence(acs, 200)
        await speak(acs, HELLO)
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3 + 4 + 2))  # "First part." is heard...
        proxy.drop()  # ...and the connection dies before the rest
        found = await answered(host, call_id, acs, [GREETING] * 5)
        assert found[3:] == [("caller", "hello", False), ("agent", "First part.", False)]
        assert await events(host, call_id, "chat_fallback") == [{"engine": "openai_compatible"}]
        await speak(acs, QUESTION)
        found = await answered(host, call_id, acs, [GREETING] * 7)
        assert found[5:] == [("caller", "what is the answer", False), ("agent", "Still here.", False)]
    assert len(server.requests) == 4


async def _until(predicate: Any, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
