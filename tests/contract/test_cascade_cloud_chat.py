"""A cascade call whose chat model is a cloud model (the real `openai` SDK over HTTP, the local server standing
in for Azure OpenAI / OpenAI) behind the retry policy, over a real ACS socket with scripted STT and TTS.

The cloud model holds the turn when it answers (also after a retry, and with parallel tool calls); when it
keeps failing (429, 5xx, timeouts) the offline brain answers instead, so the caller always hears a reply.
"""

from __future__ import annotations

import json
from typing import Any

from media_host.brain import OfflineBrainChatModel
from media_host.brain.replies import CLARIFY
from media_host.engines.azure_openai_chat import azure_openai_chat_from_settings
from media_host.engines.base import Engines
from media_host.engines.openai_chat import openai_chat_from_settings
from media_host.engines.resilient_chat import COOLING_DOWN, GAVE_UP, RECOVERED, RETRIED, ResilientChatModel, resilient
from media_host.server import MediaHost
from switchboard.session_models import Turn
from switchboard.settings import Settings, load_settings
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
from tests.support.openai_server import Call, Hang, OpenAIServer, Reply, ScriptItem, rate_limited, server_error
from tests.support.scripted_engines import scripted_engines

TIMEOUT_S = 0.3
GREETING_WORDS = 3  # "Hello, front desk."
CLARIFY_WORDS = len(CLARIFY.split())  # the brain's answer to "what is the answer" in the desk scenario


def cloud_settings(server: OpenAIServer, **overrides: Any) -> Settings:
    return load_settings(**{"chat_engine": "openai_compatible", "openai_base_url": server.base_url,
                            "openai_api_key": None, "openai_chat_model": "cloud-model",
                            "chat_timeout_seconds": TIMEOUT_S, "chat_max_retries": 2,
                            "chat_retry_max_wait_seconds": 0.05, **overrides})


def cloud_engines(chat: ResilientChatModel) -> Engines:
    engines = scripted_engines(PHRASES, [])
    engines.chat = chat
    engines.fallback_chat = OfflineBrainChatModel()
    return engines


async def events(host: MediaHost, call_id: str, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in await host.store.events(call_id) if e.kind == kind]


async def brain_answers(redis_url: str, settings: Settings) -> tuple[ResilientChatModel, Turn]:
    """Ask the desk a question the cloud model never answers; the brain's answer is the third turn."""
    model = openai_chat_from_settings(settings, timeout_s=settings.chat_timeout_seconds)
    assert model is not None
    chat = resilient(model, settings)
    async with desk_call(redis_url, cloud_engines(chat)) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(GREETING_WORDS))
        await speak(acs, QUESTION)
        recorded = await wait_turns(host, call_id, 3)
        assert recorded[2] == ("agent", CLARIFY, False)
        assert await events(host, call_id, "chat_fallback") == [{"engine": "openai_compatible"}]
        answer = (await host.store.turns(call_id))[2]
    await chat.aclose()
    return chat, answer


async def test_an_azure_model_answers_after_a_429_with_parallel_tool_calls(redis_url: str) -> None:
    lookups = [Call("desk_lookup", {"what": "hours"}, id="call_hours"),
               Call("desk_lookup", {"what": "address"}, id="call_address")]
    script: list[ScriptItem] = [
        rate_limited(retry_after=0.05),
        Reply(deltas=["Let me ", "look."], tool_calls=lookups, fragments=3, interleave=True),
        Reply(deltas=["We are open all day, ", "at the front desk."]),
    ]
    async with OpenAIServer(script, api_key="azure-key") as server:
        settings = load_settings(azure_openai_endpoint=server.origin, azure_openai_api_key="azure-key",
                                 azure_openai_chat_deployment="chat-prod", chat_timeout_seconds=TIMEOUT_S,
                                 chat_retry_max_wait_seconds=0.5)
        chat = azure_openai_chat_from_settings(settings)
        assert chat is not None
        async with desk_call(redis_url, cloud_engines(chat)) as (host, call_id, acs):
            await acs.wait_for(lambda r: len(r.audio) >= agent_frames(GREETING_WORDS))
            await speak(acs, QUESTION)
            recorded = await wait_turns(host, call_id, 4)
            assert recorded[1:] == [("caller", "what is the answer", False), ("agent", "Let me look.", False),
                                    ("agent", "We are open all day, at the front desk.", False)]
            assert [(e["name"], e["arguments"], e["ok"]) for e in await events(host, call_id, "tool_call")] == [
                ("desk_lookup", {"what": "hours"}, True), ("desk_lookup", {"what": "address"}, True)]
            assert await events(host, call_id, "chat_fallback") == []
        await chat.aclose()
    assert len(server.requests) == 3  # the 429, its retry, the answer after the tools
    assert all(r.path == "/openai/deployments/chat-prod/chat/completions" for r in server.requests)
    assert server.requests[1].body == server.requests[0].body
    last = server.requests[2].body["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool", "tool"]
    assert last[2]["content"] == "Let me look."
    assert [c["id"] for c in last[2]["tool_calls"]] == ["call_hours", "call_address"]
    assert [(m["tool_call_id"], json.loads(m["content"])) for m in last[3:]] == [
        ("call_hours", {"found": "hours"}), ("call_address", {"found": "address"})]
    assert chat.stats.get(kind="rate_limited", outcome=RETRIED) == 1
    assert chat.stats.get(kind="rate_limited", outcome=RECOVERED) == 1


async def test_a_429_asking_for_a_long_wait_falls_back_at_once_and_the_model_rests(redis_url: str) -> None:
    async with OpenAIServer([rate_limited(retry_after=20)]) as server:
        settings = cloud_settings(server)
        model = openai_chat_from_settings(settings, timeout_s=settings.chat_timeout_seconds)
        assert model is not None
        chat = resilient(model, settings)
        async with desk_call(redis_url, cloud_engines(chat)) as (host, call_id, acs):
            await acs.wait_for(lambda r: len(r.audio) >= agent_frames(GREETING_WORDS))
            await speak(acs, QUESTION)
            recorded = await wait_turns(host, call_id, 3)
            assert recorded[2] == ("agent", CLARIFY, False)  # the offline brain's answer
            await acs.wait_for(lambda r: len(r.audio) >= agent_frames(GREETING_WORDS + CLARIFY_WORDS))
            await silence(acs, 200)
            # The server asked for 20 s: the next turn goes straight to the brain, without a request.
            await speak(acs, HELLO)
            recorded = await wait_turns(host, call_id, 5)
            assert recorded[3:] == [("caller", "hello", False), ("agent", "Hello! How can I help you today?", False)]
            assert await events(host, call_id, "chat_fallback") == [{"engine": "openai_compatible"}] * 2
        await chat.aclose()
    assert len(server.requests) == 1
    assert chat.stats.counts == {("openai_compatible", "rate_limited", GAVE_UP): 1,
                                 ("openai_compatible", "rate_limited", COOLING_DOWN): 1}


async def test_server_errors_are_retried_then_the_brain_answers(redis_url: str) -> None:
    async with OpenAIServer([server_error(500), server_error(502), server_error(503)]) as server:
        chat, _answer = await brain_answers(redis_url, cloud_settings(server))
    assert len(server.requests) == 3
    assert chat.stats.get(kind="server_error", outcome=RETRIED) == 2
    assert chat.stats.get(kind="server_error", outcome=GAVE_UP) == 1


async def test_timeouts_are_retried_then_the_brain_answers(redis_url: str) -> None:
    async with OpenAIServer([Hang(), Reply(deltas=["Too late."], delay_s=5)]) as server:
        chat, answer = await brain_answers(redis_url, cloud_settings(server, chat_max_retries=1))
    assert answer.latency_ms["first_token"] >= 2 * TIMEOUT_S * 1000  # two attempts were waited for
    assert len(server.requests) == 2
    assert chat.stats.get(kind="timeout", outcome=RETRIED) == 1
    assert chat.stats.get(kind="timeout", outcome=GAVE_UP) == 1
