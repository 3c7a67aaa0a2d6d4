"""A Realtime call on Azure OpenAI (tests/support/realtime_harness.py `azure`: the openai client's Azure paths to the
local Realtime server, GA `/openai/v1/realtime?model=D` and preview `/openai/realtime?deployment=D`).

Azure takes a deployment name, not a model name, as the session's input transcription model ("Azure
deviation", https://learn.microsoft.com/azure/foundry/openai/realtime-audio-reference); the local server,
as Azure, fails the transcription of every caller turn otherwise (openai/openai-agents-js#297). The
session names AZURE_OPENAI_TRANSCRIPTION_DEPLOYMENT, and without one does not transcribe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.realtime_harness import FLAVORS, agents_dir, realtime_call
from tests.support.realtime_server import RealtimeServer, Speak

__all__ = ["agents_dir"]  # the scenario fixture (session-scoped: its tools module is loaded once)


def transcription(update: dict[str, Any], ga: bool) -> object:
    session = update["session"]
    return session["audio"]["input"].get("transcription") if ga else session.get("input_audio_transcription")


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_on_azure_the_caller_is_transcribed_by_the_transcription_deployment(
        redis_url: str, agents_dir: Path, flavor: str) -> None:
    server = RealtimeServer(flavor, [Speak("Order 42 has shipped.", 300)], heard=["where is order 42"],
                            deployments=["stt-deploy"])
    azure = {"azure_openai_transcription_deployment": "stt-deploy"}
    async with realtime_call(redis_url, agents_dir, server, greeted=True, azure=azure) as call:
        await server.wait_for(lambda s: s.events("session.update"))
        assert server.connections[0].azure
        assert transcription(server.events("session.update")[0], flavor == "ga") == {"model": "stt-deploy"}
        await call.speak()
        await call.got(0, 15)
        assert await call.wait_turns(2) == [("caller", "where is order 42", False),
                                            ("agent", "Order 42 has shipped.", False)]
        assert call.events.get(kind="error") == 0


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_on_azure_without_a_transcription_deployment_the_session_does_not_transcribe(
        redis_url: str, agents_dir: Path, flavor: str) -> None:
    server = RealtimeServer(flavor, [Speak("I heard something.", 200)], heard=["never sent"])
    async with realtime_call(redis_url, agents_dir, server, greeted=True, azure={}) as call:
        await server.wait_for(lambda s: s.events("session.update"))
        assert transcription(server.events("session.update")[0], flavor == "ga") is None  # no model name for Azure
        await call.speak()
        await call.got(0, 10)
        assert await call.wait_turns(1, timeout=5) == [("agent", "I heard something.", False)]
