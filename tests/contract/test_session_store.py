"""The session store against a real Redis server."""

from __future__ import annotations

import asyncio

import pytest
from redis.crc import key_slot

from switchboard.session_models import CallEvent, CallPhase, CallSession, HandoffRecord, Speaker, Turn
from switchboard.session_store import SessionNotFoundError, SessionStore
from switchboard.tokens import Purpose, TokenError


def _session(call_id: str = "call-1") -> CallSession:
    return CallSession(call_id=call_id, scenario="banking", current_agent="auth", caller="+14255550123")


async def test_round_trip(store: SessionStore) -> None:
    original = _session()
    assert await store.create(original)
    loaded = await store.get("call-1")
    assert loaded == original
    assert await store.get("missing") is None


async def test_create_does_not_overwrite(store: SessionStore) -> None:
    assert await store.create(_session())
    other = _session()
    other.current_agent = "cards"
    assert not await store.create(other)
    assert (await store.require("call-1")).current_agent == "auth"


async def test_a_calls_keys_share_one_cluster_slot(store: SessionStore) -> None:
    """Transactions and multi-key reads span a call's keys: on a sharded Redis they must share a slot."""
    for call_id in ("call-1", "call-2"):
        await store.create(_session(call_id))
        await store.append_turn(call_id, Turn(speaker=Speaker.CALLER, text="hello"))
        await store.append_event(call_id, CallEvent(kind="barge_in"))
    keys = [k async for k in store.redis.scan_iter(match=f"{store.prefix}call:*")]
    slots: dict[str, set[int]] = {}
    for key in keys:
        name = key.decode() if isinstance(key, bytes) else str(key)
        call_id = name.split("{", 1)[1].split("}", 1)[0]
        slots.setdefault(call_id, set()).add(key_slot(name.encode()))
    assert sorted(slots) == ["call-1", "call-2"]
    assert all(len(found) == 1 for found in slots.values()), slots
    assert len(keys) == 6


async def test_keys_expire_and_writes_refresh_the_ttl(store: SessionStore) -> None:
    store.ttl = 2
    await store.create(_session())
    await store.append_turn("call-1", Turn(speaker=Speaker.CALLER, text="hello"))
    assert 0 < await store.ttl_of("call-1") <= 2
    assert 0 < await store.redis.ttl(store._key("call-1", "turns")) <= 2
    await asyncio.sleep(2.2)
    assert await store.get("call-1") is None
    assert await store.turns("call-1") == []


async def test_update_is_atomic_under_concurrency(store: SessionStore) -> None:
    await store.create(_session())

    def bump(session: CallSession) -> None:
        session.context["n"] = session.context.get("n", 0) + 1

    await asyncio.gather(*(store.update("call-1", bump) for _ in range(40)))
    assert (await store.require("call-1")).context["n"] == 40


async def test_update_of_missing_session_raises(store: SessionStore) -> None:
    with pytest.raises(SessionNotFoundError):
        await store.update("nope", lambda s: None)


async def test_fifty_concurrent_claimers_exactly_one_wins(store: SessionStore) -> None:
    results = await asyncio.gather(*(store.claim("incoming", "corr-1", 60) for _ in range(50)))
    assert results.count(True) == 1
    assert await store.claim("incoming", "corr-2", 60)  # another key is independent


async def test_claim_expires(store: SessionStore) -> None:
    assert await store.claim("incoming", "corr-1", 1)
    assert not await store.claim("incoming", "corr-1", 1)
    await asyncio.sleep(1.2)
    assert await store.claim("incoming", "corr-1", 1)


async def test_concurrent_turn_appends_lose_nothing(store: SessionStore) -> None:
    await store.create(_session())

    async def writer(speaker: Speaker, n: int) -> None:
        for i in range(n):
            await store.append_turn("call-1", Turn(speaker=speaker, text=f"{speaker.value}-{i}"))

    await asyncio.gather(writer(Speaker.CALLER, 150), writer(Speaker.AGENT, 150))
    turns = await store.turns("call-1")
    assert len(turns) == 300
    for speaker in (Speaker.CALLER, Speaker.AGENT):
        mine = [t.text for t in turns if t.speaker is speaker]
        assert mine == [f"{speaker.value}-{i}" for i in range(150)]  # each writer's order is kept


async def test_handoff_switches_agent_and_keeps_history(store: SessionStore) -> None:
    await store.create(_session())
    await store.record_handoff("call-1", HandoffRecord(from_agent="auth", to_agent="account", reason="verified"))
    await store.record_handoff("call-1", HandoffRecord(from_agent="account", to_agent="cards", reason="stolen"))
    session = await store.require("call-1")
    assert session.current_agent == "cards"
    assert [h.to_agent for h in await store.handoffs("call-1")] == ["account", "cards"]


async def test_handoff_for_missing_call_records_nothing(store: SessionStore) -> None:
    with pytest.raises(SessionNotFoundError):
        await store.record_handoff("ghost", HandoffRecord(from_agent="a", to_agent="b"))
    assert await store.handoffs("ghost") == []


async def test_load_returns_everything_and_delete_removes_it(store: SessionStore) -> None:
    await store.create(_session())
    await store.update("call-1", lambda s: setattr(s, "status", CallPhase.CONNECTED))
    await store.append_turn("call-1", Turn(speaker=Speaker.AGENT, text="Welcome", agent="auth"))
    await store.append_event("call-1", CallEvent(kind="tool_call", agent="auth", data={"name": "verify"}))
    await store.record_handoff("call-1", HandoffRecord(from_agent="auth", to_agent="account"))
    state = await store.load("call-1")
    assert state is not None
    assert state.session.status is CallPhase.CONNECTED
    assert [t.text for t in state.turns] == ["Welcome"]
    assert state.events[0].data == {"name": "verify"}
    assert state.handoffs[0].to_agent == "account"
    await store.delete("call-1")
    assert await store.load("call-1") is None
    assert await store.turns("call-1") == []


async def test_tokens_through_the_store(store: SessionStore) -> None:
    token = store.issue_token("call-1", Purpose.MEDIA, 60)
    assert store.verify_token(token, Purpose.MEDIA, "call-1").call_id == "call-1"
    with pytest.raises(TokenError):
        store.verify_token(token, Purpose.MEDIA, "call-2")
