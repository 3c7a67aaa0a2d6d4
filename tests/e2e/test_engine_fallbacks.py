"""Banking calls on the embedded engines over a real ACS media socket, with a failing first engine in the STT or
TTS chain (media_host/engines/fallback_stt.py, fallback_tts.py).

The STT's first engine is the real Azure Speech SDK pointed at a local port that refuses connections, or that
accepts them and never answers (past STT_DEADLINE_SECONDS): the caller's words are transcribed again by the
embedded Whisper from the buffered audio, and the agent's answer, transcribed back from the audio the caller
heard, is the right one.
The TTS's first engine breaks off in the middle of the greeting's first sentence: the caller hears the next
sentence from the embedded TTS, and the broken one is not said again. Lean: one caller line a call at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator
from typing import Literal

import pytest

from agents.schema import Voice
from local_stack.callers.acs_caller import AcsMediaClient
from local_stack.callers.scripted import Line, ScriptedCaller, telephone_voice
from media_host.channel import CallInfo
from media_host.engines.azure_speech import azure_speech_engines
from media_host.engines.base import Engines, SpeechToText, TextToSpeech
from media_host.engines.chain import Link
from media_host.engines.factory import AZURE_SPEECH, WHISPER, speech_engines
from media_host.engines.health import EngineHealth
from media_host.engines.outcomes import EngineStats
from media_host.pipelines import Pipeline
from media_host.pipelines.cascade import CascadePipeline
from media_host.transports.acs import AcsAdapter
from switchboard.session_models import Speaker
from switchboard.settings import load_settings
from tests.e2e.conftest import digits, transcribe
from tests.support.media_harness import running_host, seed_call

pytestmark = pytest.mark.slow

VERIFY = "My account number is 4567 and my date of birth is March third, 1980."


@contextlib.asynccontextmanager
async def speech_service(fault: Literal["refuse", "hang"]) -> AsyncIterator[int]:
    """A local port standing in for Azure Speech: closed (connections refused), or accepting and silent."""
    if fault == "refuse":
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        yield port
        return
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # never answers: the SDK's handshake waits

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.transport.abort()
        server.close()


class Unforgetful(EngineHealth):
    """Health that never skips an engine: every transcription meets the outage as if it were the first, so the
    caller's turn is always the one re-transcribed from the buffered audio (skipping is tested elsewhere:
    tests/unit/test_engine_fallbacks.py, tests/contract/test_cascade_engine_fallbacks.py)."""

    def available(self, key: str) -> bool:
        return True


class BreakingTextToSpeech:
    """The embedded TTS, except that the first sentence breaks off halfway (a dropped connection)."""

    def __init__(self, inner: TextToSpeech) -> None:
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.spoken: list[str] = []

    async def synthesize(self, text: str, voice: Voice, locale: str) -> AsyncIterator[bytes]:
        self.spoken.append(text)
        audio = b"".join([chunk async for chunk in self.inner.synthesize(text, voice, locale)])
        if len(self.spoken) > 1:
            yield audio
            return
        yield audio[:len(audio) // 4 * 2]
        raise ConnectionResetError("the speech service dropped the connection")


async def call(redis_url: str, engines: Engines, lines: list[str]) -> tuple[list[str], bytes, list[dict[str, object]]]:
    """A banking call saying `lines`: (the caller turns recorded, the agent audio heard, the engine fallbacks)."""

    def pipelines(_info: CallInfo) -> Pipeline:
        return CascadePipeline(engines, host.control_plane)

    async with running_host(redis_url, adapters=[AcsAdapter], pipelines=pipelines) as host:
        call_id, token = await seed_call(host)
        url = f"ws://127.0.0.1:{host.port}/api/v1/media/stream?token={token}"
        async with AcsMediaClient(url) as media:
            caller = ScriptedCaller(media, telephone_voice(engines.tts, media.rate))
            for line in lines:
                await caller.say(Line(line))
            await caller.answered()
            heard = media.agent_audio_since(0.0)
        state = await host.store.load(call_id)
    assert state is not None
    caller_turns = [t.text for t in state.turns if t.speaker is Speaker.CALLER]
    return caller_turns, heard, [e.data for e in state.events if e.kind == "engine_fallback"]


@pytest.mark.parametrize(("fault", "reason"), [("refuse", "error"), ("hang", "timeout")])
async def test_a_failing_azure_stt_loses_no_caller_turn(redis_url: str, engines: Engines,
                                                        fault: Literal["refuse", "hang"], reason: str) -> None:
    health, stats = Unforgetful(cooldown_s=300.0), EngineStats()
    # The Azure engines close after the service has gone (its held connections reset, so they stop at once).
    async with contextlib.AsyncExitStack() as after, speech_service(fault) as port:
        settings = load_settings(speech_key="k", speech_endpoint=f"http://127.0.0.1:{port}",
                                 tts_engine="embedded", stt_deadline_seconds=1.5)
        azure, _ = azure_speech_engines(settings)
        assert azure is not None
        after.push_async_callback(azure.aclose)
        after.push_async_callback(health.aclose)
        stt_links: list[Link[SpeechToText]] = [Link(AZURE_SPEECH, azure), Link(WHISPER, engines.stt)]
        stt, tts = speech_engines(settings, stt_links, [Link("hibari", engines.tts)], health, stats)
        said, heard, fallbacks = await call(redis_url, dataclasses.replace(engines, stt=stt, tts=tts), [VERIFY])
    assert len(said) == 1, said  # no caller turn lost
    assert "4567" in digits(said[0]), said
    # Every transcription met the outage (the one at the caller's pause, maybe, and the turn's own).
    assert fallbacks
    assert all(f == {"stage": "stt", "from": AZURE_SPEECH, "to": WHISPER, "reason": reason, "error": f["error"]}
               for f in fallbacks), fallbacks
    assert stats.get(stage="stt", engine=WHISPER, outcome="fallback") == len(fallbacks)
    answer = (await transcribe(engines, heard)).lower()  # what the caller heard: verified, by name
    assert "verified" in answer, answer
    assert "ada" in answer, answer


async def test_a_tts_failing_mid_greeting_goes_on_with_the_next_sentence(redis_url: str, engines: Engines) -> None:
    health, stats = EngineHealth(cooldown_s=300.0), EngineStats()
    breaking = BreakingTextToSpeech(engines.tts)
    tts_links: list[Link[TextToSpeech]] = [Link(AZURE_SPEECH, breaking), Link("hibari", engines.tts)]
    stt, tts = speech_engines(load_settings(), [Link(WHISPER, engines.stt)], tts_links, health, stats)
    try:
        _, heard, fallbacks = await call(redis_url, dataclasses.replace(engines, stt=stt, tts=tts), [])
    finally:
        await health.aclose()
    text = (await transcribe(engines, heard)).lower()
    assert "date of birth" in text, text  # the second sentence, from the fallback
    assert text.count("thank you") <= 1, text  # the broken first sentence is not said again
    assert len(breaking.spoken) == 1
    assert fallbacks == [{"stage": "tts", "from": AZURE_SPEECH, "to": "hibari", "reason": "error",
                          "error": "ConnectionResetError", "mid_sentence": True},
                         {"stage": "tts", "from": AZURE_SPEECH, "to": "hibari", "reason": "down"}]
