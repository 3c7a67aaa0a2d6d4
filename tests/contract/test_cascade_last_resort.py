"""The cascade's last resort over a real ACS socket and Redis: when no engine can answer, the caller hears
the apology synthesized at start-up (found byte for byte in the audio they received) and the control plane
is asked to transfer the call to the scenario's human number, or, with none, to hang up. Never dead air.

Scripted engines (tests/support/scripted_engines.py) behind switches that take them down
(tests/support/outage.py); the clips are spoken at start-up by a TTS whose audio differs by text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from agents.schema import Voice
from local_stack.callers.acs_client import AcsClient
from media_host.channel import CallInfo
from media_host.engines.base import Engines, EnginesExhausted
from media_host.engines.last_resort import TRANSFER_TEXT, Apology, LastResort, build_last_resort
from media_host.pipelines import Pipeline
from media_host.pipelines.cascade import CascadePipeline
from media_host.server import MediaHost
from media_host.transports.acs import AcsAdapter
from switchboard.session_models import CallEvent
from tests.contract.test_cascade_mechanics import (
    FIXTURE,
    HELLO,
    INTERRUPT,
    PHRASES,
    QUESTION,
    agent_frames,
    silence,
    speak,
    turns,
    wait_turns,
)
from tests.support.media_harness import running_host, seed_call
from tests.support.outage import (
    BrokenTextToSpeech,
    Outage,
    OutageSpeechToText,
    OutageTextToSpeech,
    VoiceprintTextToSpeech,
)
from tests.support.scripted_engines import RATE, ScriptedChatModel, scripted_engines

FRAME = RATE // 50 * 2
HUMAN = "+15550000199"  # the desk scenario's policy.human_queue


async def clips() -> LastResort:
    # The first engine is down at start-up: the next one speaks the apology.
    return await build_last_resort([BrokenTextToSpeech(), VoiceprintTextToSpeech(RATE)], RATE, Apology(Voice()))


async def engines_with(outage: Outage, script: list[str], *, fail_after: int | None = None,
                       **chat: object) -> Engines:
    engines = scripted_engines(PHRASES, list(script), **chat)
    engines.stt = OutageSpeechToText(engines.stt, outage)
    engines.tts = OutageTextToSpeech(engines.tts, outage, fail_after)
    engines.last_resort = await clips()
    return engines


@contextlib.asynccontextmanager
async def call(redis_url: str, engines: Engines, scenario: str = "desk") -> AsyncIterator[tuple[MediaHost, str,
                                                                                                 AcsClient]]:
    holder: list[MediaHost] = []

    def pipelines(_info: CallInfo) -> Pipeline:
        return CascadePipeline(engines, holder[0].control_plane)

    async with running_host(redis_url, adapters=[AcsAdapter], pipelines=pipelines, agents_dir=str(FIXTURE)) as host:
        holder.append(host)
        call_id, token = await seed_call(host, scenario=scenario, agent="front")
        assert host.port is not None
        async with AcsClient(host.port, token, rate=16000) as acs:
            yield host, call_id, acs


def heard(acs: AcsClient, clip: bytes) -> bool:
    """The clip's whole frames are in what the caller received, in one piece."""
    return clip[:len(clip) // FRAME * FRAME] in b"".join(acs.received.audio)


async def events_of(host: MediaHost, call_id: str, kind: str, count: int = 1,
                    timeout: float = 10.0) -> list[CallEvent]:
    async with asyncio.timeout(timeout):
        while len(found := [e for e in await host.store.events(call_id) if e.kind == kind]) < count:
            await asyncio.sleep(0.05)
    return found


async def test_everything_down_the_caller_hears_the_apology_and_goes_to_the_human_number(redis_url: str) -> None:
    outage = Outage()
    engines = await engines_with(outage, ["Hi there."])
    assert engines.last_resort is not None
    apology = engines.last_resort.clip(transfer=True, rate=RATE)
    async with call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))  # "Hello, front desk."
        await silence(acs, 300)  # heard to the end
        await speak(acs, HELLO)
        await wait_turns(host, call_id, 3)  # answered while the engines worked
        outage.down |= {"stt", "tts"}
        before = len(acs.received.audio)
        await speak(acs, QUESTION)
        await acs.wait_for(lambda r: len(r.audio) >= before + 10)  # the apology is playing...
        await speak(acs, INTERRUPT)  # ...and the caller talking over it does not cut it off
        (transfer,) = await events_of(host, call_id, "transfer_requested")
        assert heard(acs, apology)
        assert acs.received.stops == []
        assert transfer.data["target"] == HUMAN
        (record,) = await events_of(host, call_id, "last_resort")
        assert record.data["stage"] == "stt"
        assert record.data["action"] == "transfer"
        assert record.data["said"] == TRANSFER_TEXT
        # No turn is lost: what could be transcribed is in the session; the rest could not be heard.
        assert await turns(host, call_id) == [("agent", "Hello, front desk.", False), ("caller", "hello", False),
                                              ("agent", "Hi there.", False)]
        assert outage.failures["stt"] == 1  # the second utterance over the apology was never sent to the STT
        assert engines.last_resort.used.get(stage="stt", action="transfer") == 1


async def test_with_no_human_number_the_caller_hears_goodbye_and_the_call_ends(redis_url: str) -> None:
    outage = Outage("stt", "tts")  # down from the first word: not even the greeting can be spoken
    engines = await engines_with(outage, [])
    assert engines.last_resort is not None
    goodbye = engines.last_resort.clip(transfer=False, rate=RATE)
    async with call(redis_url, engines, scenario="kiosk") as (host, call_id, acs):
        streaming = asyncio.create_task(silence(acs, 8000))  # ACS streams silence while the caller listens
        code, reason = await acs.closed(timeout=10)
        streaming.cancel()
        assert (code, reason) == (1000, "call ended")
        assert heard(acs, goodbye)
        assert not heard(acs, engines.last_resort.clip(transfer=True, rate=RATE))
        kinds = [e.kind for e in await host.store.events(call_id)]
        assert "hangup_requested" in kinds
        assert "transfer_requested" not in kinds
        (record,) = await events_of(host, call_id, "last_resort")
        assert (record.data["stage"], record.data["action"]) == ("tts", "hangup")


async def test_tts_failing_mid_reply_keeps_what_was_said_then_the_apology(redis_url: str) -> None:
    # A lone engine (no fallback chain) that fails with its own error: nothing else can speak.
    outage = Outage(error=lambda stage: ConnectionError(f"{stage} service reset the connection"))
    engines = await engines_with(outage, ["First part of the answer. Second part never spoken."], fail_after=2)
    assert engines.last_resort is not None
    async with call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await speak(acs, QUESTION)
        await events_of(host, call_id, "transfer_requested")
        assert heard(acs, engines.last_resort.clip(transfer=True, rate=RATE))
        recorded = await wait_turns(host, call_id, 3)
        assert recorded[1:] == [("caller", "what is the answer", False),
                                ("agent", "First part of the answer.", False)]  # only what was spoken
        (record,) = await events_of(host, call_id, "last_resort")
        assert record.data["stage"] == "tts"


async def test_the_model_and_its_fallback_failing_is_the_last_resort(redis_url: str) -> None:
    engines = await engines_with(Outage(), [], fail=True)
    engines.fallback_chat = ScriptedChatModel([], name="brain", fail=True)
    assert engines.last_resort is not None
    async with call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        await speak(acs, QUESTION)
        (transfer,) = await events_of(host, call_id, "transfer_requested")
        assert transfer.data["target"] == HUMAN
        assert heard(acs, engines.last_resort.clip(transfer=True, rate=RATE))
        (record,) = await events_of(host, call_id, "last_resort")
        assert record.data["stage"] == "chat"
        assert ("caller", "what is the answer", False) in await turns(host, call_id)


async def test_a_failed_last_resort_transfer_ends_the_call_with_goodbye(redis_url: str) -> None:
    outage = Outage()
    engines = await engines_with(outage, [])
    assert engines.last_resort is not None
    async with call(redis_url, engines) as (host, call_id, acs):
        await acs.wait_for(lambda r: len(r.audio) >= agent_frames(3))
        outage.down.add("stt")
        await speak(acs, QUESTION)
        await events_of(host, call_id, "transfer_requested")
        streaming = asyncio.create_task(silence(acs, 8000))
        await asyncio.wait_for(host.notices.ready.wait(), 5)
        await host.store.notify(call_id, CallEvent(kind="transfer_failed", data={"reason": "busy"}))
        code, reason = await acs.closed(timeout=10)
        streaming.cancel()
        assert (code, reason) == (1000, "call ended")
        assert heard(acs, engines.last_resort.clip(transfer=False, rate=RATE))
        records = await events_of(host, call_id, "last_resort", 2)
        assert [(r.data["stage"], r.data["action"]) for r in records] == [("stt", "transfer"), ("transfer", "hangup")]
        assert "hangup_requested" in [e.kind for e in await host.store.events(call_id)]


def test_an_exhausted_stage_is_named() -> None:
    error = EnginesExhausted("stt", "AzureSpeechToText, WhisperSpeechToText")
    assert (error.stage, str(error)) == ("stt", "stt: AzureSpeechToText, WhisperSpeechToText")
    assert isinstance(error, RuntimeError)
