"""The call monitor (MONITOR_CALLS): what a call's pipeline sends is published, in order, on Redis."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from media_host.channel import CallChannel, CallInfo
from media_host.events import (
    AgentChanged,
    Hypothesis,
    SpeechStarted,
    StopPlayback,
    ToolCalled,
    TranscriptLine,
    Transfer,
    TurnLatency,
)
from media_host.monitor import CallMonitor, monitor_message
from switchboard.session_store import SessionStore


async def messages(store: SessionStore, call_id: str, count: int, publish: Any) -> list[dict[str, Any]]:
    async with store.redis.pubsub() as pubsub:
        await pubsub.subscribe(store.monitor_channel(call_id))
        await publish()
        got: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while len(got) < count:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                if message is not None:
                    got.append(json.loads(message["data"]))
        return got


async def test_a_calls_transcript_handoffs_tools_and_latency_are_published_in_order(store: SessionStore) -> None:
    monitor = CallMonitor(store)
    monitor.start()
    channel = CallChannel(CallInfo("call-m1", "acs", 24000), store=store, catalog=None)  # type: ignore[arg-type]
    channel.monitor = monitor

    async def publish() -> None:
        channel.send(TranscriptLine("caller", "my card was stolen"))
        channel.send(Hypothesis("my ca"))  # partials and audio control are not watched
        channel.send(SpeechStarted())
        channel.send(ToolCalled("handoff_to_cards", True, {"reason": "stolen"}, 1.5))
        channel.send(AgentChanged("cards", "account", "my card was stolen"))
        channel.stop_playback()
        channel.send(TurnLatency({"eos_detected": 600.0, "first_audio_out": 700.0}))
        channel.send(TranscriptLine("agent", "You're through to card services.", agent="cards"))
        channel.send(Transfer("+18005550199", "caller asked"))

    got = await messages(store, "call-m1", 7, publish)
    await monitor.stop()
    assert [m["type"] for m in got] == ["transcript", "tool", "handoff", "barge_in", "latency", "transcript",
                                        "transfer"]
    assert got[0]["speaker"] == "caller"
    assert got[0]["text"] == "my card was stolen"
    assert (got[2]["agent"], got[2]["previous"]) == ("cards", "account")
    assert got[4]["marks"]["first_audio_out"] == 700.0
    assert got[6]["target"] == "+18005550199"
    assert monitor.dropped == 0


async def test_the_queue_is_bounded_and_counts_what_it_drops(store: SessionStore) -> None:
    monitor = CallMonitor(store)  # not started: nothing drains the queue
    for i in range(1005):
        monitor("call-m2", TranscriptLine("agent", f"line {i}"))
    assert monitor.dropped == 5
    assert monitor_message(StopPlayback()) is not None
    assert monitor_message(Hypothesis("partial")) is None
