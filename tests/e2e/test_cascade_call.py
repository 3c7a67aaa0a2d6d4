"""A whole banking call on the embedded engines over a real ACS media socket (the issue's acceptance).

The caller's lines are synthesized by the embedded TTS and sent through a telephone band; the agent
hears them with silero VAD and Whisper, answers with the offline brain and the real banking tools,
and speaks with hibari. The agent's audio is transcribed back to check what the caller actually heard.
"""

from __future__ import annotations

import pytest

from local_stack.callers.acs_caller import AcsMediaClient
from local_stack.callers.scripted import Line, ScriptedCaller, telephone_voice
from media_host.channel import CallInfo
from media_host.engines.base import Engines
from media_host.pipelines import Pipeline
from media_host.pipelines.cascade import CascadePipeline
from media_host.transports.acs import AcsAdapter
from switchboard.session_models import Speaker
from tests.e2e.conftest import digits, transcribe
from tests.support.media_harness import running_host, seed_call

pytestmark = pytest.mark.slow


async def test_a_banking_call_verifies_answers_hands_off_blocks_and_transfers(redis_url: str,
                                                                              engines: Engines) -> None:
    def pipelines(_info: CallInfo) -> Pipeline:
        return CascadePipeline(engines, host.control_plane)

    async with running_host(redis_url, adapters=[AcsAdapter], pipelines=pipelines) as host:
        call_id, token = await seed_call(host)
        url = f"ws://127.0.0.1:{host.port}/api/v1/media/stream?token={token}"
        async with AcsMediaClient(url, headers={"x-ms-call-correlation-id": "corr-e2e"}) as media:
            caller = ScriptedCaller(media, telephone_voice(engines.tts, media.rate))
            await caller.say(Line("My account number is 4567 and my date of birth is March fourth, 1980."))
            await caller.say(Line("Sorry, my date of birth is March third, 1980."))
            asked = await caller.say(Line("What is my balance?"))
            await caller.answered()
            balance_audio = media.agent_audio_since(asked.ended)
            await caller.say(Line("My card was stolen."))
            await caller.say(Line("Yes, please block it."))
            await caller.say(Line("I would like to talk to a human agent."))
            await caller.answered()
        state = await host.store.load(call_id)
    assert state is not None
    tools = [(e.data["name"], e.data["ok"]) for e in state.events if e.kind == "tool_call"]
    assert tools == [("verify_customer", False), ("verify_customer", True), ("handoff_to_account", True),
                     ("get_balance", True), ("handoff_to_cards", True), ("block_card", True),
                     ("transfer_to_human", True)], tools
    block = next(e for e in state.events if e.kind == "tool_call" and e.data["name"] == "block_card")
    assert block.data["arguments"]["reason"] == "stolen"
    verify = next(e for e in state.events if e.kind == "tool_call" and e.data["name"] == "verify_customer")
    assert verify.data["arguments"] == {"account_number": "***", "date_of_birth": "***"}  # never stored in clear
    assert [(h.from_agent, h.to_agent) for h in state.handoffs] == [("auth", "account"), ("account", "cards")]
    assert state.session.current_agent == "cards"
    assert state.session.customer is not None
    assert state.session.customer["first_name"] == "Ada"
    transfers = [e.data for e in state.events if e.kind == "transfer_requested"]
    assert [t["target"] for t in transfers] == ["+18005550199"]  # the banking human queue, once
    assert transfers[0]["reason"]
    # What the caller heard: the balance, read back from the agent's own audio.
    heard = await transcribe(engines, balance_audio)
    assert "2345.67" in digits(heard), heard
    caller_lines = [t.text for t in state.turns if t.speaker is Speaker.CALLER]
    assert len(caller_lines) == 6
    assert "4567" in digits(caller_lines[0])


async def test_caller_interrupts_a_long_reply(redis_url: str, engines: Engines) -> None:
    def pipelines(_info: CallInfo) -> Pipeline:
        return CascadePipeline(engines, host.control_plane)

    async with running_host(redis_url, adapters=[AcsAdapter], pipelines=pipelines) as host:
        call_id, token = await seed_call(host)
        url = f"ws://127.0.0.1:{host.port}/api/v1/media/stream?token={token}"
        async with AcsMediaClient(url) as media:
            caller = ScriptedCaller(media, telephone_voice(engines.tts, media.rate))
            await caller.say(Line("My account number is 4567 and my date of birth is March third, 1980."))
            await caller.say(Line("Read me my last five transactions please."))
            # The new agent greets (about 2 s), then reads five transactions (over 10 s): cut in mid-list.
            interrupt = await caller.say(Line("Stop, that's enough.", interrupt_after_s=5.0))
            await caller.answered()
            stops = list(media.stops)
            frames_after_stop = [t for t, _ in media.agent.frames if stops and stops[0] < t < interrupt.ended]
        state = await host.store.load(call_id)
    assert state is not None
    assert len(stops) >= 1, "StopAudio was never sent"
    assert frames_after_stop == [], "the agent kept talking after StopAudio"
    interrupted = [t for t in state.turns if t.interrupted]
    assert len(interrupted) == 1
    heard = interrupted[0].text
    # Five transactions take well over 10 s to read: only the start was heard, and only that is kept.
    assert heard.startswith("Here are your last 5 transactions"), heard
    assert len(heard.split()) < 25, heard
    barge_in = [e for e in state.events if e.kind == "barge_in"]
    assert barge_in[0].data["heard"] == heard
    assert barge_in[0].data["reaction_ms"] < 400
