"""A Realtime call back on a new socket: the line to the caller broke (ACS's media socket dropped, or the media
host died and a new one took the call from Redis). The caller hears the agent's short apology, never the
greeting again, and an answer to words the old socket left unanswered; every turn is kept.

(Apart from a drop of the socket to the Realtime service, handled inside one pipeline: test_realtime_faults.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from local_stack.callers.acs_client import AcsClient
from media_host.metrics import Counter
from media_host.pipelines.cascade.conversation import RESUMED
from media_host.pipelines.realtime import realtime_pipeline_from_settings
from media_host.transports.acs import AcsAdapter
from switchboard.session_models import Speaker, Turn
from switchboard.tokens import Purpose
from tests.support.media_harness import running_host, seed_call
from tests.support.realtime_harness import RtCall, agents_dir, item_texts
from tests.support.realtime_server import RealtimeServer, Speak

__all__ = ["agents_dir"]  # the scenario fixture (session-scoped: its tools module is loaded once)

GREETING = ("agent", "Hello, front desk.", False)


def instructions(server: RealtimeServer, connection: int) -> list[str]:
    return [e["response"]["instructions"] for e in server.connections[connection].events
            if e["type"] == "response.create"]


@pytest.mark.parametrize("flavor", ["ga", "beta"])
async def test_a_call_back_on_a_new_socket_hears_an_apology_not_the_greeting(
        redis_url: str, agents_dir: Path, flavor: str) -> None:
    server = RealtimeServer(flavor, [Speak("Hello, front desk.", 200), Speak(RESUMED, 200),
                                     Speak("Order 42 has shipped.", 200)], heard=["where is order 42"])
    async with server, running_host(redis_url, adapters=[AcsAdapter], agents_dir=str(agents_dir),
                                    pipelines=lambda _i: realtime_pipeline_from_settings(
                                        host.settings, host.control_plane, metrics=host.metrics),
                                    realtime_websocket_url=server.url, realtime_flavor=server.flavor) as host:
        call_id, token = await seed_call(host, scenario="rtdesk", agent="front")
        assert host.port is not None
        async with AcsClient(host.port, token, rate=24000) as first:
            call = RtCall(host, call_id, first, server, Counter("e", "e"), bytearray())
            await call.got(0, 10)
            await call.wait_turns(1)
        # The media socket is gone; the call is not (ACS restarts streaming with a new URL and token).
        again = host.store.issue_token(call_id, Purpose.MEDIA, 600)
        async with AcsClient(host.port, again, rate=24000) as second:
            call = RtCall(host, call_id, second, server, Counter("e", "e"), bytearray())
            await call.got(1, 10)
            assert await call.wait_turns(2) == [GREETING, ("agent", RESUMED, False)]
            await call.speak()  # and the call goes on
            await call.got(2, 10)
            recorded = await call.wait_turns(4)
        assert recorded[2:] == [("caller", "where is order 42", False), ("agent", "Order 42 has shipped.", False)]
        assert len(server.connections) == 2
        restored = server.connections[1].events
        assert [e["type"] for e in restored[:3]] == ["session.update", "conversation.item.create", "response.create"]
        assert item_texts(restored[1:2]) == [("assistant", "Hello, front desk.")]
        apology = instructions(server, 1)[0]
        assert f'"{RESUMED}"' in apology
        assert "let the caller speak" in apology
        assert "Hello, front desk." not in apology.split("\n\n")[-1]  # no second greeting
        assert [e.kind for e in await host.store.events(call_id)].count("resumed") == 1
    assert server.problems == []
    assert not server.script


@pytest.mark.parametrize("flavor", ["ga", "beta"])
async def test_words_a_dead_host_left_unanswered_are_answered_after_the_agents_own_apology(
        redis_url: str, agents_dir: Path, flavor: str) -> None:
    apology = "Back office again, sorry about the drop."  # the agent's `replies.resumed`
    answer = f"{apology} Your refund went out today."
    server = RealtimeServer(flavor, [Speak(answer, 300)])
    async with server, running_host(redis_url, adapters=[AcsAdapter], agents_dir=str(agents_dir),
                                    pipelines=lambda _i: realtime_pipeline_from_settings(
                                        host.settings, host.control_plane, metrics=host.metrics),
                                    realtime_websocket_url=server.url, realtime_flavor=server.flavor) as host:
        # What a host killed mid-answer leaves in Redis: the caller's words recorded, the answer never heard.
        call_id, token = await seed_call(host, scenario="rtdesk", agent="back", greeted=True)
        for speaker, text in ((Speaker.AGENT, "Back office."), (Speaker.CALLER, "where is my refund")):
            await host.store.append_turn(call_id, Turn(speaker=speaker, text=text))
        assert host.port is not None
        async with AcsClient(host.port, token, rate=24000) as acs:
            call = RtCall(host, call_id, acs, server, Counter("e", "e"), bytearray())
            await call.got(0, 15)
            recorded = await call.wait_turns(3)
        assert recorded == [("agent", "Back office.", False), ("caller", "where is my refund", False),
                            ("agent", answer, False)]
        restored = server.connections[0].events
        assert item_texts(restored) == [("assistant", "Back office."), ("user", "where is my refund")]
        [said] = instructions(server, 0)
        assert f'"{apology}"' in said
        assert "answer the caller's last words" in said
    assert server.problems == []
    assert not server.script
