"""Everything down, on the embedded engines over a real ACS media socket: speech-to-text and text-to-speech
fail mid-call, and the caller hears the apology the host synthesized at start-up (transcribed back from the
audio they received by the embedded Whisper), the call goes to the banking human number, and the words
heard before the outage are in the session.
"""

from __future__ import annotations

import pytest

from local_stack.callers.acs_caller import AcsMediaClient
from local_stack.callers.scripted import Line, ScriptedCaller, telephone_voice
from media_host.channel import CallInfo
from media_host.engines.base import Engines
from media_host.engines.last_resort import last_resort_for
from media_host.pipelines import Pipeline
from media_host.pipelines.cascade import CascadePipeline
from media_host.transports.acs import AcsAdapter
from switchboard.session_models import Speaker
from tests.contract.test_cascade_last_resort import events_of
from tests.e2e.conftest import digits, transcribe
from tests.support.media_harness import running_host, seed_call
from tests.support.outage import Outage, OutageSpeechToText, OutageTextToSpeech

pytestmark = pytest.mark.slow


async def test_everything_down_the_caller_hears_the_apology_and_is_transferred(redis_url: str,
                                                                               engines: Engines) -> None:
    outage = Outage()
    cascade = Engines(vad=engines.vad, stt=OutageSpeechToText(engines.stt, outage), chat=engines.chat,
                      tts=OutageTextToSpeech(engines.tts, outage), fallback_chat=engines.fallback_chat)

    def pipelines(_info: CallInfo) -> Pipeline:
        return CascadePipeline(cascade, host.control_plane)

    async with running_host(redis_url, adapters=[AcsAdapter], pipelines=pipelines) as host:
        # As media_host.main does at start-up: the apology, spoken while the engines work.
        cascade.last_resort = await last_resort_for(cascade.tts, host.agents.current, "banking")
        call_id, token = await seed_call(host)
        url = f"ws://127.0.0.1:{host.port}/api/v1/media/stream?token={token}"
        async with AcsMediaClient(url) as media:
            caller = ScriptedCaller(media, telephone_voice(engines.tts, media.rate))
            await caller.say(Line("My account number is 4567 and my date of birth is March third, 1980."))
            await caller.answered()
            outage.down |= {"stt", "tts"}
            asked = await caller.say(Line("What is my balance?"))
            (transfer,) = await events_of(host, call_id, "transfer_requested", timeout=30)
            apology = media.agent_audio_since(asked.ended)
        state = await host.store.load(call_id)
    heard = (await transcribe(engines, apology)).lower()
    assert "technical difficulties" in heard, heard
    assert "transfer you" in heard, heard
    assert transfer.data["target"] == "+18005550199"  # the banking scenario's human number
    assert state is not None
    caller_lines = [t.text for t in state.turns if t.speaker is Speaker.CALLER]
    assert len(caller_lines) == 1  # what was said after the outage could not be heard...
    assert "4567" in digits(caller_lines[0])  # ...and what was heard before is kept
    assert [e.data["stage"] for e in state.events if e.kind == "last_resort"] == ["stt"]
