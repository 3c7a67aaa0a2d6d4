"""The Realtime pipeline over a real ACS socket and Redis, with the real openai client talking to a
local Realtime server (tests/realtime_server.py) in the GA and in the beta dialect.

Every test is a call: a simulated ACS media stream into a running media host whose pipeline connects,
through `REALTIME_WEBSOCKET_URL`, to the scripted server. The server's audio carries a marker in each
20 ms frame, so what the caller got of each response is counted exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from media_host.channel import CallInfo
from media_host.metrics import Counter
from media_host.pipelines import Pipeline
from media_host.pipelines.realtime import realtime_pipeline_from_settings
from media_host.pipelines.realtime.client import realtime_connector
from media_host.server import MediaHost
from media_host.transports.acs import AcsAdapter
from switchboard.settings import load_settings
from tests.acs_client import AcsClient, dtmf
from tests.media_harness import running_host, seed_call
from tests.realtime_server import Call, RealtimeServer, Speak
from tests.realtime_wire import error, marker_of, rate_limits, voice_of

FLAVORS = ["ga", "beta"]
FRAME_BYTES = 960  # 20 ms at 24 kHz: ACS, the pipeline and the Realtime API all run at 24 kHz here
QUIET = bytes(FRAME_BYTES)
LOUD = (np.sin(2 * np.pi * 300 * np.arange(480) / 24000) * 8000).astype("<i2").tobytes()
# What the pipeline counts as sent to ACS but not heard yet. The playout releases a frame only while ACS
# holds at most its 60 ms lead, so ACS never holds more than that plus the frame just sent: a truncation
# is at most 80 ms (and 1 ms of rounding down) short of what the caller's socket received, and never more.
FAR_END_MS = 60 + 20 + 1

SCENARIO = {
    "scenario.yaml": """
name: rtdesk
description: A help desk for testing the Realtime pipeline.
entry_agent: front
tools_module: tools.py
defaults:
  tools: [transfer_to_human]
policy:
  human_queue: "+15550000199"
  max_handoffs: 2
""",
    "agents/front.yaml": """
name: front
description: Answers first.
greeting: "Hello, front desk."
prompt_template: "You are the front desk of {{ scenario }}."
tools: [rt_lookup, rt_goodbye, rt_gated_transfer]
handoffs: [back]
realtime: {voice: alloy}
""",
    "agents/back.yaml": """
name: back
description: Handles refunds.
greeting: "Back office."
prompt_template: "You are the back office.{% if handoff %} {{ handoff.summary }}{% endif %}"
handoffs: [front, mute]
realtime: {voice: verse, turn_detection: {type: semantic_vad, eagerness: low}}
replies: {resumed: "Back office again, sorry about the drop."}
""",
    "agents/mute.yaml": """
name: mute
description: Speaks without transcribing the caller.
prompt_template: "You do not transcribe."
realtime: {transcription_model: ""}
""",
    "tools.py": '''
import asyncio

from agents.tools import ToolContext, register_tool

GATE = asyncio.Event()  # rt_gated_transfer finishes once a test sets it


@register_tool(name="rt_lookup", description="Look an order up.")
async def rt_lookup(ctx: ToolContext, order: str = "") -> dict[str, str]:
    return {"order": order, "status": "shipped"}


@register_tool(name="rt_goodbye", description="End the call.")
async def rt_goodbye(ctx: ToolContext) -> dict[str, bool]:
    ctx.request_hangup("caller is done")
    return {"ending": True}


@register_tool(name="rt_gated_transfer", description="Transfer, once the gate opens.", timeout=30.0)
async def rt_gated_transfer(ctx: ToolContext) -> dict[str, bool]:
    await GATE.wait()
    ctx.request_transfer("gated")
    return {"transferring": True}
''',
}


@pytest.fixture(scope="session")
def agents_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("realtime_agents")
    for name, text in SCENARIO.items():
        path = root / "rtdesk" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip())
    return root


@dataclass
class RtCall:
    host: MediaHost
    call_id: str
    acs: AcsClient
    server: RealtimeServer
    events: Counter  # the pipeline's Realtime events by kind
    sent: bytearray  # all the caller audio the ACS client sent

    async def turns(self) -> list[tuple[str, str, bool]]:
        return [(t.speaker.value, t.text, t.interrupted) for t in await self.host.store.turns(self.call_id)]

    async def wait_turns(self, count: int, timeout: float = 10) -> list[tuple[str, str, bool]]:
        async with asyncio.timeout(timeout):
            while len(found := await self.turns()) < count:
                await asyncio.sleep(0.02)
        return found

    def frames(self, response: int) -> list[int]:
        """Indexes of the frames the caller received of the server's `response` (0-based)."""
        marker = self.server.served[response].marker
        return [i for i, frame in enumerate(self.acs.received.audio) if marker_of(frame) == marker]

    async def got(self, response: int, frames: int) -> None:
        await self.server.wait_for(lambda s: len(s.served) > response)
        await self.acs.wait_for(lambda _r: len(self.frames(response)) >= frames, timeout=10)

    async def speak(self, ms: int = 200, silence_ms: int = 300) -> None:
        """The caller talks, then is quiet long enough for the server to end the turn."""
        for frame in [LOUD] * (ms // 20) + [QUIET] * (silence_ms // 20):
            self.sent += frame
            await self.acs.send_frame(frame)

    async def requests(self, kind: str) -> list[dict[str, Any]]:
        """What was asked of the control plane (transfer_requested, hangup_requested)."""
        return [e.data for e in await self.host.store.events(self.call_id) if e.kind == kind]

    async def requested(self, kind: str, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not await self.requests(kind):
                await asyncio.sleep(0.02)

    async def counted(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def realtime_call(redis_url: str, agents_dir: Path, server: RealtimeServer, *,
                        greeted: bool = False, agent: str = "front", **settings: Any) -> AsyncIterator[RtCall]:
    holder: list[MediaHost] = []
    events = Counter("switchboard_realtime_events_total", "Realtime API events, by kind")

    def pipelines(_info: CallInfo) -> Pipeline:
        host = holder[0]
        return realtime_pipeline_from_settings(host.settings, host.control_plane, metrics=host.metrics,
                                               events=events)

    async with server, running_host(redis_url, adapters=[AcsAdapter], pipelines=pipelines,
                                    agents_dir=str(agents_dir), realtime_websocket_url=server.url,
                                    realtime_flavor=server.flavor, **settings) as host:
        holder.append(host)
        call_id, token = await seed_call(host, scenario="rtdesk", agent=agent, greeted=greeted)
        assert host.port is not None
        async with AcsClient(host.port, token, rate=24000) as acs:
            call = RtCall(host, call_id, acs, server, events, bytearray())
            yield call
        assert server.problems == []  # the pipeline sent nothing the service would refuse
        assert server.refused == []
        assert not server.script  # every scripted response was asked for


def item_texts(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, text) of the message items among these client events."""
    return [(e["item"]["role"], e["item"]["content"][0]["text"]) for e in events
            if e["type"] == "conversation.item.create" and e["item"]["type"] == "message"]


# --- a turn ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_turn_with_audio_both_ways_is_recorded(redis_url: str, agents_dir: Path, flavor: str) -> None:
    server = RealtimeServer(flavor, [Speak("Hello, front desk.", 300), Speak("Hi there, how can I help?", 400)],
                            heard=["hello there"])
    async with realtime_call(redis_url, agents_dir, server) as call:
        await call.got(0, 15)
        assert await call.wait_turns(1) == [("agent", "Hello, front desk.", False)]  # played out: the line is free
        await call.speak()
        await call.got(1, 20)
        recorded = await call.wait_turns(3)
        assert recorded[1:] == [("caller", "hello there", False), ("agent", "Hi there, how can I help?", False)]

        # The caller's audio went to the server as appended PCM, byte for byte.
        await server.wait_for(lambda s: len(s.connections[0].audio) >= len(call.sent))
        assert bytes(server.connections[0].audio) == bytes(call.sent)
        assert server.events("input_audio_buffer.append")
        # The agent's audio came out of the ACS socket as it was sent, frame for frame.
        for n in (0, 1):
            got = b"".join(call.acs.received.audio[i] for i in call.frames(n))
            assert got == bytes(server.served[n].audio)
        assert call.acs.received.stops == []

        update = server.events("session.update")[0]["session"]
        tools = {t["name"] for t in update["tools"]}
        assert tools == {"rt_lookup", "rt_goodbye", "rt_gated_transfer", "handoff_to_back", "transfer_to_human"}
        assert update["instructions"] == "You are the front desk of rtdesk."
        voice = update["audio"]["output"]["voice"] if flavor == "ga" else update["voice"]
        assert voice == "alloy"
        greeting = server.events("response.create")[0]["response"]
        assert '"Hello, front desk."' in greeting["instructions"]
        session = await call.host.store.require(call.call_id)
        assert session.greeted
        answer = (await call.host.store.turns(call.call_id))[2]
        assert answer.agent == "front"
        assert {"eos_detected", "first_tts_chunk", "first_audio_out"} <= set(answer.latency_ms)


# --- tools ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_function_call_runs_the_agents_tool_and_the_model_goes_on(
        redis_url: str, agents_dir: Path, flavor: str) -> None:
    server = RealtimeServer(flavor, [Call("rt_lookup", {"order": "42"}), Speak("Order 42 has shipped.", 300)],
                            heard=["where is order 42"])
    async with realtime_call(redis_url, agents_dir, server, greeted=True) as call:
        await server.wait_for(lambda s: s.events("session.update"))
        await call.speak()
        await call.got(1, 15)
        assert await call.wait_turns(2) == [("caller", "where is order 42", False),
                                            ("agent", "Order 42 has shipped.", False)]
        events = server.connections[0].events
        outputs = [i for i, e in enumerate(events) if e["type"] == "conversation.item.create"]
        assert len(outputs) == 1
        item = events[outputs[0]]["item"]
        assert item["type"] == "function_call_output"
        assert item["call_id"] == server.served[0].call_id
        assert json.loads(item["output"]) == {"order": "42", "status": "shipped"}
        follow_up = [i for i, e in enumerate(events) if e["type"] == "response.create"]
        assert len(follow_up) == 1
        assert follow_up[0] > outputs[0]
        recorded = [e for e in await call.host.store.events(call.call_id) if e.kind == "tool_call"]
        assert [(e.data["name"], e.data["ok"]) for e in recorded] == [("rt_lookup", True)]


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("lock_voice", [False, True], ids=["voice_changes", "voice_kept"])
async def test_a_handoff_switches_the_session_to_the_new_agent(
        redis_url: str, agents_dir: Path, flavor: str, lock_voice: bool) -> None:
    handoff = {"reason": "refund", "summary": "The caller wants a refund."}
    server = RealtimeServer(flavor, [Speak("Hello, front desk.", 200), Call("handoff_to_back", handoff),
                                     Speak("Back office, how can I help?", 300)],
                            heard=["I want a refund"], lock_voice=lock_voice)
    async with realtime_call(redis_url, agents_dir, server) as call:
        await call.got(0, 10)
        await call.wait_turns(1)
        await call.speak()
        await call.got(2, 15)
        recorded = await call.wait_turns(3)
        assert recorded[1:] == [("caller", "I want a refund", False), ("agent", "Back office, how can I help?", False)]
        assert (await call.host.store.turns(call.call_id))[2].agent == "back"
        session = await call.host.store.require(call.call_id)
        assert session.current_agent == "back"
        handoffs = await call.host.store.handoffs(call.call_id)
        assert [(h.from_agent, h.to_agent, h.summary) for h in handoffs] == [("front", "back", handoff["summary"])]

        def voice(update: dict[str, Any]) -> str | None:
            return voice_of(update["session"], flavor == "ga")

        updates = server.events("session.update")
        switch = updates[1]
        assert switch["session"]["instructions"] == "You are the back office. The caller wants a refund."
        back_tools = {"handoff_to_front", "handoff_to_mute", "transfer_to_human"}
        assert {t["name"] for t in switch["session"]["tools"]} == back_tools
        detection = (switch["session"]["audio"]["input"] if flavor == "ga" else switch["session"])["turn_detection"]
        assert detection["type"] == "semantic_vad"
        assert voice(switch) == "verse"
        if lock_voice:  # the service refused the voice: the rest is applied, the caller keeps the voice
            await call.counted(lambda: call.events.get(kind="voice_kept") == 1)
            updates = server.events("session.update")
            assert len(updates) == 3
            assert voice(updates[2]) is None
            assert updates[2]["session"]["instructions"] == switch["session"]["instructions"]
            assert call.events.get(kind="error", code="cannot_update_voice") == 1
            assert "voice_kept" in [e.kind for e in await call.host.store.events(call.call_id)]
        else:
            assert len(updates) == 2
            assert call.events.get(kind="error", code="cannot_update_voice") == 0

        events = server.connections[0].events
        kinds = [e["type"] for e in events]
        output_at = next(i for i, e in enumerate(events) if e.get("item", {}).get("type") == "function_call_output")
        assert kinds.index("session.update", output_at) > output_at
        note = [text for role, text in item_texts(events) if role == "system"]
        assert len(note) == 1
        assert "from the front agent" in note[0]
        assert handoff["summary"] in note[0]
        take_over = server.events("response.create")[-1]["response"]["instructions"]
        assert take_over.startswith("You are the back office.")
        assert '"Back office."' in take_over
        # The new agent answers with its own tools, whether or not the session took the voice.
        assert set(server.served[2].tools) == back_tools


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("ending", [
    (Call("transfer_to_human", {"reason": "wants a person"}),
     ("transfer_requested", {"target": "+15550000199", "reason": "wants a person"})),
    (Call("rt_goodbye"), ("hangup_requested", {"reason": "caller is done"})),
], ids=["transfer", "hangup"])
async def test_a_transfer_or_hang_up_happens_once_the_caller_heard_the_reply(
        redis_url: str, agents_dir: Path, flavor: str, ending: tuple[Call, tuple[str, dict[str, str]]]) -> None:
    tool, request = ending
    server = RealtimeServer(flavor, [tool, Speak("Goodbye for now.", 300)], heard=["that's all"])
    async with realtime_call(redis_url, agents_dir, server, greeted=True) as call:
        await server.wait_for(lambda s: s.events("session.update"))
        await call.speak()
        await call.got(1, 15)
        await call.requested(request[0])
        assert await call.wait_turns(2) == [("caller", "that's all", False), ("agent", "Goodbye for now.", False)]
        # Only once the reply was played out: it all reached the caller.
        assert len(call.frames(1)) == 15
        assert await call.requests(request[0]) == [request[1]]
        if tool.name == "rt_goodbye":  # the agent hung up: the call ends
            assert await call.acs.closed() == (1000, "call ended")


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_transfer_asked_for_while_the_socket_is_down_still_happens(
        redis_url: str, agents_dir: Path, flavor: str) -> None:
    server = RealtimeServer(flavor, [Call("rt_gated_transfer"), Speak("Sorry, the line dropped.", 200)],
                            heard=["a person please"])
    async with realtime_call(redis_url, agents_dir, server, greeted=True) as call:
        gate: asyncio.Event = sys.modules["_switchboard_tools_rtdesk"].GATE  # the loader's name for tools.py
        gate.clear()
        await server.wait_for(lambda s: s.events("session.update"))
        await call.speak()
        await server.wait_for(lambda s: bool(s.served) and s.served[0].status == "completed")  # the tool runs...
        await server.drop()  # ...when the socket drops
        await call.counted(lambda: call.events.get(kind="reconnect") == 1)
        gate.set()
        await call.requested("transfer_requested")
        assert await call.requests("transfer_requested") == [{"target": "+15550000199", "reason": "gated"}]
        # The outputs of the dropped session's calls are not sent to the new one.
        assert server.connections[1].events[0]["type"] == "session.update"
        assert [e["item"]["type"] for e in server.connections[1].events
                if e["type"] == "conversation.item.create"] == ["message"]


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_call_the_caller_cut_short_is_not_run(redis_url: str, agents_dir: Path, flavor: str) -> None:
    server = RealtimeServer(flavor, [Call("transfer_to_human", {"reason": "wants a person"}, hold=True),
                                     Speak("Yes?", 200)], heard=["a person", "no wait"])
    async with realtime_call(redis_url, agents_dir, server, greeted=True) as call:
        await server.wait_for(lambda s: s.events("session.update"))
        await call.speak()
        await server.wait_for(lambda s: bool(s.served) and bool(s.served[0].said))  # halfway through the arguments
        await call.speak()  # the caller speaks again: the response is cancelled
        await call.got(1, 10)
        assert await call.wait_turns(3) == [("caller", "a person", False), ("caller", "no wait", False),
                                            ("agent", "Yes?", False)]
        assert server.served[0].status == "cancelled"
        events = [e.kind for e in await call.host.store.events(call.call_id)]
        assert "tool_call" not in events
        assert "transfer" not in events
        assert not [e for e in server.events("conversation.item.create") if e["item"]["type"] == "function_call_output"]


# --- barge-in -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("in_flight", [True, False], ids=["generating", "generated"])
async def test_barge_in_stops_playout_cancels_and_truncates_at_what_was_heard(
        redis_url: str, agents_dir: Path, flavor: str, in_flight: bool) -> None:
    """`generating`: the reply streams at real time, so it is still being generated when the caller
    speaks; `generated`: it all came at once (as the service usually sends it) and only plays."""
    story = " ".join(f"word{i}" for i in range(30))
    server = RealtimeServer(flavor, [Speak(story, 3000, pace=1.0 if in_flight else 0.0), Speak("Sure, stopping.", 300)],
                            heard=["tell me everything", "stop please"])
    async with realtime_call(redis_url, agents_dir, server, greeted=True) as call:
        await server.wait_for(lambda s: s.events("session.update"))
        await call.speak()
        await call.got(0, 25)  # half a second of the story has played
        await call.speak()
        await call.acs.wait_for(lambda r: len(r.stops) == 1)
        await call.got(1, 15)
        recorded = await call.wait_turns(4)

        story_frames = call.frames(0)
        assert story_frames
        assert max(story_frames) < call.acs.received.stops[0]  # nothing of it came after StopAudio
        played_ms = 20 * len(story_frames)
        assert played_ms < 3000
        cut = server.served[0]
        assert cut.status == ("cancelled" if in_flight else "completed")
        truncate = server.events("conversation.item.truncate")
        assert [(t["item_id"], t["content_index"]) for t in truncate] == [(cut.item_id, 0)]
        assert played_ms - FAR_END_MS <= truncate[0]["audio_end_ms"] <= played_ms
        cancels = server.events("response.cancel")
        assert [c.get("response_id") for c in cancels] == ([cut.id] if in_flight else [])

        assert recorded[0] == ("caller", "tell me everything", False)
        speaker, heard, interrupted = recorded[1]
        assert (speaker, interrupted) == ("agent", True)
        assert heard
        assert story.startswith(heard)
        assert heard != story
        assert recorded[2:] == [("caller", "stop please", False), ("agent", "Sure, stopping.", False)]
        assert "barge_in" in [e.kind for e in await call.host.store.events(call.call_id)]
        # The server cancels by itself on speech (interrupt_response): the pipeline's cancel crosses it,
        # which is no error.
        assert call.events.get(kind="error") == 0


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_service_that_stays_down_hands_the_caller_to_a_person(
        redis_url: str, agents_dir: Path, flavor: str) -> None:
    server = RealtimeServer(flavor)
    async with realtime_call(redis_url, agents_dir, server, greeted=True, realtime_reconnect_attempts=2) as call:
        await server.wait_for(lambda s: s.events("session.update"))
        server.refusing = True
        await server.drop()
        await call.requested("transfer_requested")
        assert await call.requests("transfer_requested") == [
            {"target": "+15550000199", "reason": "realtime service unavailable"}]
        assert len(server.connections) == 1  # every reconnect was refused...
        assert server.refused == []  # ...as a service that is down, not as a malformed request
        assert call.events.get(kind="unavailable") == 1
        assert call.host.metrics.errors.get(transport="acs", kind="realtime_unavailable") == 1


# --- the socket drops -----------------------------------------------------------------------------------
@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_dropped_socket_is_restored_and_no_turn_is_lost(
        redis_url: str, agents_dir: Path, flavor: str) -> None:
    story = " ".join(f"word{i}" for i in range(20))
    server = RealtimeServer(flavor, [
        Speak("Hello, front desk.", 200), Speak(story, 2000, pace=2.0, drop_after_ms=600),
        Speak("Sorry, the line dropped.", 300), Speak("You're welcome.", 200)],
        heard=["tell me a story", "thanks"])
    async with realtime_call(redis_url, agents_dir, server) as call:
        await call.got(0, 10)
        await call.wait_turns(1)
        await call.speak()
        await server.wait_for(lambda s: len(s.connections) == 2)
        await call.got(2, 15)
        await call.wait_turns(4)
        await call.speak()  # the call goes on, on the new socket
        await call.got(3, 10)
        recorded = await call.wait_turns(6)

        partial = " ".join(story.split()[:6])  # 600 ms of 2 s: six of the twenty words were sent
        assert recorded == [("agent", "Hello, front desk.", False), ("caller", "tell me a story", False),
                            ("agent", partial, True), ("agent", "Sorry, the line dropped.", False),
                            ("caller", "thanks", False), ("agent", "You're welcome.", False)]
        assert len(call.frames(1)) == 30  # what had arrived of the cut reply still played

        restored = server.connections[1].events
        first = [e["type"] for e in restored[:5]]
        assert first == ["session.update"] + ["conversation.item.create"] * 3 + ["response.create"]
        assert item_texts(restored[1:4]) == [("assistant", "Hello, front desk."), ("user", "tell me a story"),
                                             ("assistant", partial + " …")]
        apology = restored[4]["response"]["instructions"]
        assert "Apologise briefly" in apology
        assert restored[0]["session"]["instructions"] == server.events("session.update")[0]["session"]["instructions"]
        assert server.connections[1].audio  # the caller's audio goes to the new socket
        assert call.events.get(kind="disconnect") == 1
        assert call.events.get(kind="reconnect") == 1
        kinds = [e.kind for e in await call.host.store.events(call.call_id)]
        assert "realtime_disconnected" in kinds
        assert "realtime_reconnected" in kinds


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_without_caller_transcription_agent_turns_are_not_held_up(
        redis_url: str, agents_dir: Path, flavor: str) -> None:
    server = RealtimeServer(flavor, [Speak("I heard something.", 200)], heard=["never sent"])
    async with realtime_call(redis_url, agents_dir, server, greeted=True, agent="mute") as call:
        await server.wait_for(lambda s: s.events("session.update"))
        assert "transcription" not in json.dumps(server.events("session.update")[0])
        await call.speak()
        await call.got(0, 10)
        # A caller turn with no transcript coming must not hold the journal (10 s) before the answer.
        assert await call.wait_turns(1, timeout=5) == [("agent", "I heard something.", False)]


# --- errors, rate limits, DTMF --------------------------------------------------------------------------
@pytest.mark.parametrize("flavor", FLAVORS)
async def test_errors_and_rate_limits_are_counted(redis_url: str, agents_dir: Path, flavor: str) -> None:
    server = RealtimeServer(flavor)
    async with realtime_call(redis_url, agents_dir, server, greeted=True) as call:
        await server.wait_for(lambda s: s.events("session.update"))
        await server.emit(error("invalid_value", "Invalid value: 'foo'.", param="session.tools"))
        await server.emit(error("response_cancel_not_active", "no active response"))
        await server.emit(error("server_error", "The server had an error.", kind="server_error"))
        await server.emit(rate_limits())
        await server.emit(rate_limits(remaining=5))
        await call.counted(lambda: call.events.get(kind="rate_limits_updated") == 2)
        assert call.events.get(kind="error", code="invalid_value") == 1
        assert call.events.get(kind="error", code="server_error") == 1
        assert call.events.get(kind="benign_error", code="response_cancel_not_active") == 1
        assert call.host.metrics.errors.get(transport="acs", kind="realtime_error") == 2


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_dtmf_digits_are_a_caller_turn(redis_url: str, agents_dir: Path, flavor: str) -> None:
    server = RealtimeServer(flavor, [Speak("You entered one two three.", 200)])
    async with realtime_call(redis_url, agents_dir, server, greeted=True) as call:
        await server.wait_for(lambda s: s.events("session.update"))
        for digit in "123#":
            await call.acs.send(dtmf(digit))
        await call.got(0, 10)
        assert await call.wait_turns(2) == [("caller", "123", False), ("agent", "You entered one two three.", False)]
        assert item_texts(server.events()) == [("user", "123")]


# --- connecting -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("service", "flavor"), [("openai", "ga"), ("openai", "beta"), ("azure", "ga"),
                                                 ("azure", "beta")])
async def test_the_connector_reaches_each_service_and_flavor(service: str, flavor: str) -> None:
    async with RealtimeServer(flavor) as server:
        base = f"ws://127.0.0.1:{server.port}"
        if service == "openai":
            settings = load_settings(realtime_websocket_url=f"{base}/v1", realtime_flavor=flavor,
                                     openai_realtime_model="gpt-test")
        else:
            settings = load_settings(azure_openai_endpoint=server.origin, azure_openai_api_key="azure-key",
                                     azure_openai_realtime_deployment="rt-deploy", realtime_flavor=flavor,
                                     realtime_websocket_url=f"{base}/openai" + ("/v1" if flavor == "ga" else ""))
        socket = await realtime_connector(settings)()
        try:
            created = await socket.recv()
            assert created["type"] == "session.created"
            await socket.send({"type": "input_audio_buffer.append", "audio": "AAAAAA=="})
            await server.wait_for(lambda s: s.events())
        finally:
            await socket.close()
        conn = server.connections[0]
        expected = {("openai", "ga"): ("/v1/realtime", {"model": "gpt-test"}),
                    ("openai", "beta"): ("/v1/realtime", {"model": "gpt-test"}),
                    ("azure", "ga"): ("/openai/v1/realtime", {"model": "rt-deploy"}),
                    ("azure", "beta"): ("/openai/realtime", {"api-version": settings.azure_openai_realtime_api_version,
                                                             "deployment": "rt-deploy"})}[(service, flavor)]
        assert (conn.path, conn.query) == expected
        assert (conn.headers.get("openai-beta") == "realtime=v1") == (flavor == "beta")
        if service == "azure":
            assert "azure-key" in (conn.headers.get("api-key"), conn.headers.get("authorization", "")[7:])
        assert server.problems == []
        assert server.refused == []
