"""The Realtime service fails upstream: the fault proxy (tests/support/fault_proxy.py) sits between the real `openai`
client of a media host's Realtime pipeline and the local Realtime server (tests/support/realtime_server.py), on a
call over a real ACS socket and Redis.

The pipeline notices a dead or silent socket, reconnects and restores the session; while the caller waits
in silence they hear the holding phrase, rendered ahead of time by the model in the agent's voice (an
out-of-band response; its audio carries the server's HOLD_MARKER); and no caller turn is lost: words the
server never transcribed are replayed to the new socket, transcribed and answered there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from local_stack.callers.acs_client import AcsClient
from media_host.metrics import Counter
from media_host.pipelines.cascade.conversation import HOLDING_PHRASE
from media_host.pipelines.realtime.client import realtime_connector
from media_host.pipelines.realtime.holding import Liveness
from media_host.pipelines.realtime.pipeline import RealtimePipeline
from media_host.server import MediaHost
from media_host.transports.acs import AcsAdapter
from tests.support.fault_proxy import FaultProxy
from tests.support.media_harness import running_host, seed_call
from tests.support.realtime_harness import QUIET, RtCall, agents_dir, item_texts
from tests.support.realtime_server import RealtimeServer, Speak
from tests.support.realtime_wire import HOLD_MARKER, marker_of

__all__ = ["agents_dir"]  # the scenario fixture (session-scoped: its tools module is loaded once)

FAST = Liveness(ping_every_s=0.2, stall_after_s=0.5, dead_after_s=1.5, hold_after_s=0.8)
HOLDING = ("agent", HOLDING_PHRASE, False)
GREETING = ("agent", "Hello, front desk.", False)


@contextlib.asynccontextmanager
async def proxied_call(redis_url: str, agents_dir: Path, server: RealtimeServer,
                       **overrides: Any) -> AsyncIterator[tuple[RtCall, FaultProxy]]:
    """A Realtime call whose socket goes through the fault proxy (one pipeline for the host: one clip cache)."""
    holder: list[RealtimePipeline] = []
    events = Counter("switchboard_realtime_events_total", "Realtime API events, by kind")
    async with server, FaultProxy("127.0.0.1", server.port) as proxy:
        async with running_host(redis_url, adapters=[AcsAdapter], pipelines=lambda _i: holder[0],
                                agents_dir=str(agents_dir), realtime_websocket_url=proxy.url("ws", "/v1"),
                                realtime_flavor=server.flavor) as host:
            holder.append(_pipeline(host, events, **overrides))
            call_id, token = await seed_call(host, scenario="rtdesk", agent="front")
            assert host.port is not None
            async with AcsClient(host.port, token, rate=24000) as acs:
                yield RtCall(host, call_id, acs, server, events, bytearray()), proxy
        assert server.problems == []
        assert not server.script  # every scripted response was asked for, and no other


def _pipeline(host: MediaHost, events: Counter, **overrides: Any) -> RealtimePipeline:
    options: dict[str, Any] = {"reconnect_attempts": 10, "backoff": (0.2, 0.3), "liveness": FAST, **overrides}
    return RealtimePipeline(realtime_connector(host.settings), host.control_plane, flavor=host.settings.realtime_flavor,
                            metrics=host.metrics, events=events, **options)


def holding_frames(call: RtCall) -> list[int]:
    return [i for i, frame in enumerate(call.acs.received.audio) if marker_of(frame) == HOLD_MARKER]


async def quiet(call: RtCall, ms: int) -> None:
    """The line is open and silent (ACS streams silence): paced, so time passes as on a call."""
    for _ in range(ms // 20):
        await call.acs.send_frame(QUIET)
        await asyncio.sleep(0.02)


async def greeted(call: RtCall) -> None:
    await call.got(0, 10)
    await call.wait_turns(1)
    await call.server.wait_for(lambda s: bool(s.out_of_band))  # the holding phrase was rendered meanwhile
    await quiet(call, 200)


@pytest.mark.parametrize("flavor", ["ga", "beta"])
async def test_a_drop_mid_answer_with_a_slow_reconnect_gets_the_holding_phrase(
        redis_url: str, agents_dir: Path, flavor: str) -> None:
    story = " ".join(f"word{i}" for i in range(30))
    server = RealtimeServer(flavor, [Speak("Hello, front desk.", 200), Speak(story, 3000, pace=1.0),
                                     Speak("Sorry, the line dropped.", 300), Speak("You're welcome.", 200)],
                            heard=["tell me a story", "thanks"])
    async with proxied_call(redis_url, agents_dir, server) as (call, proxy):
        await greeted(call)
        await call.speak()
        await call.got(1, 20)  # the answer is being heard...
        await proxy.refuse()  # ...when the service goes away (reset, then connections refused)
        await quiet(call, 2400)
        await proxy.pass_through()
        await call.got(2, 15)  # reconnected: the session is restored, the agent apologises
        assert len(holding_frames(call)) == 30  # the whole phrase, in the silence between the two
        cut_off, apology = max(call.frames(1)), min(call.frames(2))
        assert cut_off < min(holding_frames(call)) <= max(holding_frames(call)) < apology
        await quiet(call, 300)
        await call.speak()
        await call.got(3, 10)
        recorded = await call.wait_turns(7)
        heard = recorded[2][1]
        assert recorded == [GREETING, ("caller", "tell me a story", False), ("agent", heard, True), HOLDING,
                            ("agent", "Sorry, the line dropped.", False), ("caller", "thanks", False),
                            ("agent", "You're welcome.", False)]
        assert story.startswith(heard)
        restored = server.connections[-1].events
        assert [e["type"] for e in restored[:6]] == ["session.update"] + ["conversation.item.create"] * 4 + [
            "response.create"]
        assert item_texts(restored[1:5]) == [("assistant", "Hello, front desk."), ("user", "tell me a story"),
                                             ("assistant", heard + " …"), ("assistant", HOLDING_PHRASE)]
        assert len(server.out_of_band) == 1  # rendered once: the new session did not need it again
        assert call.events.get(kind="holding_played") == 1
        assert call.events.get(kind="reconnect") == 1


async def test_a_short_blackhole_gets_the_holding_phrase_and_the_socket_carries_on(
        redis_url: str, agents_dir: Path) -> None:
    server = RealtimeServer("ga", [Speak("Hello, front desk.", 200), Speak("Order 42 has shipped.", 300)],
                            heard=["where is order 42"])
    patient = Liveness(ping_every_s=0.2, stall_after_s=0.5, dead_after_s=10.0, hold_after_s=0.8)
    async with proxied_call(redis_url, agents_dir, server, liveness=patient) as (call, proxy):
        await greeted(call)
        proxy.blackhole()  # nothing gets through, either way, for longer than a pong may take...
        await call.speak()  # ...while the caller asks
        await quiet(call, 1000)
        await call.acs.wait_for(lambda _r: len(holding_frames(call)) == 30)  # they are not left in silence
        assert call.events.get(kind="stalled") == 1
        await proxy.pass_through()  # back before the socket is given up: what was held flows on
        await call.got(1, 15)
        recorded = await call.wait_turns(4)
        # The phrase is written when played; the caller's words when the server, after the outage, heard them.
        assert recorded == [GREETING, HOLDING, ("caller", "where is order 42", False),
                            ("agent", "Order 42 has shipped.", False)]
        assert len(server.connections) == 1
        assert call.events.get(kind="unstalled") == 1
        assert call.events.get(kind="reconnect") == 0


async def test_a_long_blackhole_reconnects_and_the_callers_words_are_answered(
        redis_url: str, agents_dir: Path) -> None:
    server = RealtimeServer("ga", [Speak("Hello, front desk.", 200), Speak("Order 42 has shipped.", 300)],
                            heard=["where is order 42"])
    async with proxied_call(redis_url, agents_dir, server) as (call, proxy):
        await greeted(call)
        proxy.blackhole(2.5, then="drop")  # past the 1.5 s after which the socket is given up
        await call.speak()  # the question goes into the void
        await quiet(call, 2600)
        await call.got(1, 15)  # answered on the new socket, with no apology in front of the answer
        recorded = await call.wait_turns(4)
        assert recorded == [GREETING, HOLDING, ("caller", "where is order 42", False),
                            ("agent", "Order 42 has shipped.", False)]
        assert len(holding_frames(call)) == 30
        new = server.connections[-1]
        kinds = [e["type"] for e in new.events]
        replay = kinds.index("input_audio_buffer.append")  # the restore, then the caller's words again...
        assert kinds[0] == "session.update"
        assert set(kinds[1:replay]) == {"conversation.item.create"}
        assert "response.create" not in kinds  # ...and no apology in front of their answer
        assert bytes(new.audio).find(bytes(call.sent)[:4800]) >= 0  # the question, replayed
        assert call.events.get(kind="disconnect") == 1
        assert call.events.get(kind="reconnect") == 1


async def test_a_turn_committed_but_not_transcribed_when_the_socket_drops_is_not_lost(
        redis_url: str, agents_dir: Path) -> None:
    """The known gap: the server committed the caller's words and dropped before their transcript."""
    server = RealtimeServer("ga", [Speak("Hello, front desk.", 200), Speak("Never sent.", 300, drop_after_ms=0),
                                   Speak("Order 42 has shipped.", 300)], heard=["where is order 42"])
    async with proxied_call(redis_url, agents_dir, server) as (call, _proxy):
        await greeted(call)
        await call.speak()
        await call.got(2, 15)
        recorded = await call.wait_turns(3)
        assert recorded == [GREETING, ("caller", "where is order 42", False), ("agent", "Order 42 has shipped.", False)]
        first, second = server.connections
        assert bytes(second.audio).find(bytes(call.sent)[:4800]) >= 0  # the words, replayed to the new socket
        # No apology was asked for: the answer to the caller's words is what they hear next.
        assert [e for e in second.events if e["type"] == "response.create"] == []
        assert first.events[0]["type"] == second.events[0]["type"] == "session.update"
