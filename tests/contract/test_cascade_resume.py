"""A cascade call resumed on a new socket (the line dropped, or the media host died and a new one took
over): no second greeting, a short apology first, every turn kept, and the caller's last words answered
if the drop swallowed the answer. Real ACS sockets and Redis, scripted engines (100 ms of tone a word).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from local_stack.callers.acs_client import AcsClient
from media_host.channel import CallInfo
from media_host.engines.base import Engines
from media_host.pipelines import Pipeline
from media_host.pipelines.cascade import CascadePipeline
from media_host.pipelines.cascade.conversation import RESUMED
from media_host.server import MediaHost
from media_host.transports.acs import AcsAdapter
from switchboard.session_models import Speaker, Turn
from tests.contract.test_cascade_mechanics import (
    FIXTURE,
    HELLO,
    MORE,
    PHRASES,
    agent_frames,
    silence,
    speak,
    wait_turns,
)
from tests.support.media_harness import running_host, seed_call
from tests.support.scripted_engines import ScriptedChatModel, ToneTextToSpeech, scripted_engines

GREETING = "Hello, front desk."


@contextlib.asynccontextmanager
async def desk_host(redis_url: str, engines: Engines) -> AsyncIterator[MediaHost]:
    holder: list[MediaHost] = []

    def pipelines(_info: CallInfo) -> Pipeline:
        return CascadePipeline(engines, holder[0].control_plane)

    async with running_host(redis_url, adapters=[AcsAdapter], pipelines=pipelines, agents_dir=str(FIXTURE)) as host:
        holder.append(host)
        yield host


def socket(host: MediaHost, token: str) -> AcsClient:
    assert host.port is not None
    return AcsClient(host.port, token, rate=16000)


async def test_a_resumed_call_apologises_instead_of_greeting_and_keeps_every_turn(redis_url: str) -> None:
    engines = scripted_engines(PHRASES, ["Hi there, how can I help?", "Here is more."])
    async with desk_host(redis_url, engines) as host:
        call_id, token = await seed_call(host, scenario="desk", agent="front")
        async with socket(host, token) as first:
            await first.wait_for(lambda r: len(r.audio) >= agent_frames(3))  # the greeting
            await silence(first, 200)
            await speak(first, HELLO)
            before = await wait_turns(host, call_id, 3)
        # The first socket is gone; ACS opens a new one to the same call.
        async with socket(host, token) as second:
            apology_words = len(RESUMED.split())
            await second.wait_for(lambda r: len(r.audio) >= agent_frames(apology_words))
            await silence(second, 300)
            await speak(second, MORE)
            after = await wait_turns(host, call_id, 6)
        events = [e.kind for e in await host.store.events(call_id)]
    assert before == [("agent", GREETING, False), ("caller", "hello", False),
                      ("agent", "Hi there, how can I help?", False)]
    assert after == [*before, ("agent", RESUMED, False), ("caller", "and another thing", False),
                     ("agent", "Here is more.", False)]
    tts = engines.tts
    assert isinstance(tts, ToneTextToSpeech)
    assert tts.spoken.count(GREETING) == 1  # never replayed
    assert events.count("resumed") == 1
    chat = engines.chat
    assert isinstance(chat, ScriptedChatModel)
    # The new host's model sees the whole conversation so far (fixed lines like the apology are not prompts).
    assert [m.content for m in chat.requests[-1].messages[1:]] == [
        GREETING, "hello", "Hi there, how can I help?", "and another thing"]


async def test_a_question_the_drop_left_unanswered_is_answered_after_the_agents_own_apology(
        redis_url: str) -> None:
    engines = scripted_engines(PHRASES, ["The answer is forty two."])
    async with desk_host(redis_url, engines) as host:
        # The old host recorded the question, then died before the caller heard the answer.
        call_id, token = await seed_call(host, scenario="desk", agent="back", greeted=True)
        for speaker, text in ((Speaker.AGENT, "Back office."), (Speaker.CALLER, "what is the answer")):
            await host.store.append_turn(call_id, Turn(speaker=speaker, text=text))
        async with socket(host, token) as acs:
            recorded = await wait_turns(host, call_id, 4)
            await acs.wait_for(lambda r: len(r.audio) >= agent_frames(7 + 5))
    apology = "Back office again, sorry about the drop."  # the agent's `replies.resumed`
    assert recorded[2:] == [("agent", apology, False), ("agent", "The answer is forty two.", False)]
    chat = engines.chat
    assert isinstance(chat, ScriptedChatModel)
    assert len(chat.requests) == 1
    assert chat.requests[0].messages[-1].content == "what is the answer"
