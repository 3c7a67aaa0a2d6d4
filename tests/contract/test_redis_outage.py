"""Redis goes away mid-call: the fault proxy (tests/support/fault_proxy.py) sits between a real media host (the
cascade, scripted engines, a real ACS socket) and the session's real valkey.

While Redis is unreachable the call goes on: the caller is answered, handed over to another agent and
answered again. Once Redis is back, every turn, event and handoff written meanwhile is in it, in order,
once each (media_host/session_writer.py). /ready reports the outage and the recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest

from media_host.metrics import exposition
from media_host.server import MediaHost
from media_host.session_writer import SessionWriter
from switchboard.session_models import CallEvent, CallSession, HandoffRecord, Speaker, Turn
from switchboard.session_store import SessionStore, connect_redis
from switchboard.tokens import TokenSigner
from tests.conftest import TEST_SECRET
from tests.contract.test_cascade_mechanics import (
    HELLO,
    MORE,
    PHRASES,
    QUESTION,
    agent_frames,
    desk_call,
    silence,
    speak,
    wait_turns,
)
from tests.support.fault_proxy import FaultProxy
from tests.support.scripted_engines import scripted_engines

Outage = Callable[[FaultProxy], Awaitable[None]]


async def _blackhole(proxy: FaultProxy) -> None:
    proxy.blackhole()  # packets vanish: requests hang until the path is back


async def _refuse(proxy: FaultProxy) -> None:
    await proxy.refuse()  # the server is down: connections are reset and refused


async def _resume(proxy: FaultProxy) -> None:
    await proxy.pass_through()  # held requests go through


async def _drop_then_resume(proxy: FaultProxy) -> None:
    proxy.drop()  # held requests are lost with their connections, and retried
    await proxy.pass_through()


OUTAGES = {"blackhole_then_resume": (_blackhole, _resume), "blackhole_then_drop": (_blackhole, _drop_then_resume),
           "refused": (_refuse, _resume)}


@contextlib.asynccontextmanager
async def redis_proxy(redis_url: str) -> AsyncIterator[FaultProxy]:
    parts = urlsplit(redis_url)
    if parts.scheme != "redis" or parts.hostname is None or parts.port is None:
        pytest.skip(f"the fault proxy needs a redis://host:port URL, not {parts.scheme}://")
    async with FaultProxy(parts.hostname, parts.port) as proxy:
        yield proxy


@contextlib.asynccontextmanager
async def direct_store(redis_url: str, prefix: str) -> AsyncIterator[SessionStore]:
    """The same keys, read around the proxy: what really is in Redis."""
    store = SessionStore(connect_redis(redis_url), TokenSigner(TEST_SECRET), ttl_seconds=600, prefix=prefix)
    try:
        yield store
    finally:
        await store.close()


async def ready(host: MediaHost) -> int:
    assert host.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
    writer.write(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = (await reader.read()).decode().split("\r\n", 1)[0]
    writer.close()
    return int(head.split()[1])


@pytest.mark.parametrize("outage", list(OUTAGES))
async def test_a_call_goes_on_through_a_redis_outage_and_nothing_is_lost(redis_url: str, outage: str) -> None:
    start, recover = OUTAGES[outage]
    handoff: dict[str, object] = {"reason": "complex", "summary": "wants the back"}
    engines = scripted_engines(PHRASES, ["Hi there.", "The answer is yes.", ("handoff_to_back", handoff),
                                         "Back here, all sorted."])
    async with redis_proxy(redis_url) as proxy, desk_call(proxy.url("redis"), engines) as (host, call_id, acs), \
            direct_store(redis_url, host.store.prefix) as redis:
        heard = agent_frames(3)  # "Hello, front desk."
        await acs.wait_for(lambda r: len(r.audio) >= heard)
        await silence(acs, 200)  # it has been heard (not only sent): the caller does not talk over it
        await speak(acs, HELLO)
        heard += agent_frames(2)
        await wait_turns(host, call_id, 3)
        before = len(await redis.turns(call_id))
        assert before == 3

        await start(proxy)
        loop = asyncio.get_running_loop()
        down_at = loop.time()
        assert await ready(host) == 503
        # The caller is answered while Redis is away...
        await speak(acs, QUESTION)
        heard += agent_frames(4)
        await acs.wait_for(lambda r: len(r.audio) >= heard)
        await silence(acs, 200)
        # ...and handed over: the new agent greets and answers.
        await speak(acs, MORE)
        heard += agent_frames(2 + 4)
        await acs.wait_for(lambda r: len(r.audio) >= heard)
        assert len(await redis.turns(call_id)) == before  # nothing of it has reached Redis
        assert host.writer.pending > 0
        print(f"{outage}: the caller was answered twice in {loop.time() - down_at:.1f} s of outage, "
              f"{host.writer.pending} writes held")

        await recover(proxy)
        async with asyncio.timeout(15):
            while len(await redis.turns(call_id)) < 8:  # the last agent turn is written once it has been heard
                await asyncio.sleep(0.05)
            await host.writer.flushed([call_id])
        print(f"{outage}: flushed {loop.time() - down_at:.1f} s after the outage began")
        assert await ready(host) == 200
        turns = [(t.speaker.value, t.text, t.agent) for t in await redis.turns(call_id)]
        assert turns == [("agent", "Hello, front desk.", "front"), ("caller", "hello", None),
                         ("agent", "Hi there.", "front"), ("caller", "what is the answer", None),
                         ("agent", "The answer is yes.", "front"), ("caller", "and another thing", None),
                         ("agent", "Back office.", "back"), ("agent", "Back here, all sorted.", "back")]
        handoffs = await redis.handoffs(call_id)
        assert [(h.from_agent, h.to_agent, h.summary) for h in handoffs] == [("front", "back", "wants the back")]
        session = await redis.require(call_id)
        assert session.current_agent == "back"
        assert session.greeted
        calls = [e.data["name"] for e in await redis.events(call_id) if e.kind == "tool_call"]
        assert calls == ["handoff_to_back"]
        stamps = [t.at for t in await redis.turns(call_id)]
        assert stamps == sorted(stamps)  # in the order they were said
        assert host.writer.dropped == 0


async def test_the_write_bound_keeps_the_newest_writes_and_counts_the_rest(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    async with redis_proxy(redis_url) as proxy, direct_store(redis_url, prefix) as redis:
        store = SessionStore(connect_redis(proxy.url("redis"), timeout=1.0), TokenSigner(TEST_SECRET),
                             ttl_seconds=600, prefix=prefix)
        writer = SessionWriter(store, max_pending=5, backoff=(0.01, 0.1))
        await redis.create(CallSession(call_id="c1", scenario="desk", current_agent="front"))
        await proxy.refuse()
        for n in range(10):
            await writer.append_event("c1", CallEvent(kind=f"e{n}"))  # returns at once: never blocks the call
        assert writer.down
        assert (writer.pending, writer.dropped) == (5, 5)
        metrics = exposition(writer.render_metrics())
        assert 'switchboard_session_write_faults_total{kind="dropped"} 5' in metrics
        await proxy.pass_through()
        async with asyncio.timeout(10):
            await writer.flushed()
        # The first (being retried) and the newest four: what was dropped is counted, never reordered.
        assert [e.kind for e in await redis.events("c1")] == ["e0", "e6", "e7", "e8", "e9"]
        assert (writer.pending, writer.down) == (0, False)
        assert await writer.close(1.0) == 0
        await redis.delete("c1")
        await store.close()


async def test_retried_writes_are_not_made_twice(store: SessionStore) -> None:
    """A write that timed out may have happened: its retry must not append it again."""
    await store.create(CallSession(call_id="c1", scenario="desk", current_agent="front"))
    turn = Turn(speaker=Speaker.CALLER, text="hello")
    await store.append_turn("c1", turn)
    await store.append_turn("c1", turn, unless_last=True)
    await store.append_turn("c1", Turn(speaker=Speaker.AGENT, text="hi"), unless_last=True)  # not the last: made
    handoff = HandoffRecord(from_agent="front", to_agent="back")
    await store.record_handoff("c1", handoff)
    await store.record_handoff("c1", handoff, unless_last=True)
    assert [t.text for t in await store.turns("c1")] == ["hello", "hi"]
    assert [h.to_agent for h in await store.handoffs("c1")] == ["back"]
    assert (await store.require("c1")).current_agent == "back"
    raw = await store.redis.lrange(store._key("c1", "turns"), 0, -1)
    assert [json.loads(r)["text"] for r in raw] == ["hello", "hi"]
