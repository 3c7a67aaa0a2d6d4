"""The Realtime pipeline over a real ACS socket and Redis, with the real openai client talking to a
local Realtime server (tests/support/realtime_server.py) in the GA and in the beta dialect: turns, barge-in, the
socket dropping, errors, DTMF, connecting (tool calls: test_realtime_tools.py).

Every test is a call (tests/support/realtime_harness.py): a simulated ACS media stream into a running media host
whose pipeline connects, through `REALTIME_WEBSOCKET_URL`, to the scripted server. The server's audio
carries a marker in each 20 ms frame, so what the caller got of each response is counted exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_stack.callers.acs import dtmf
from media_host.pipelines.realtime.client import realtime_connector
from switchboard.settings import load_settings
from tests.support.realtime_harness import FAR_END_MS, FLAVORS, QUIET, RtCall, agents_dir, item_texts, realtime_call
from tests.support.realtime_server import RealtimeServer, Speak
from tests.support.realtime_wire import error, rate_limits

# The harness, for the modules that import it from here (the fixture is session-scoped: its tools
# module is loaded once).
__all__ = ["QUIET", "RtCall", "agents_dir", "item_texts"]


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


async def test_a_malformed_error_or_rate_limits_event_is_a_one_line_warning_and_the_call_goes_on(
        redis_url: str, agents_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = RealtimeServer("ga", [Speak("Order 42 has shipped.", 200)], heard=["where is order 42"])
    async with realtime_call(redis_url, agents_dir, server, greeted=True) as call:
        await server.wait_for(lambda s: s.events("session.update"))
        for event in ({"type": "error", "error": "boom"}, {"type": "error"},
                      {"type": "rate_limits.updated", "rate_limits": {"requests": 3}},
                      {"type": "rate_limits.updated", "rate_limits": ["requests"]}):
            await server.emit_malformed(event)
        await call.counted(lambda: call.events.get(kind="malformed", event="rate_limits.updated") == 2)
        await call.speak()  # the call goes on
        await call.got(0, 10)
        assert await call.wait_turns(2) == [("caller", "where is order 42", False),
                                            ("agent", "Order 42 has shipped.", False)]
    assert call.events.get(kind="malformed", event="error") == 2
    assert call.events.get(kind="error") == 0
    assert [r for r in caplog.records if r.exc_info] == []  # no traceback
    warned = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert warned == ["realtime: malformed error event ignored: `error` is str, not an object",
                      "realtime: malformed error event ignored: `error` is NoneType, not an object",
                      "realtime: malformed rate_limits.updated event ignored: `rate_limits` is not a list of objects",
                      "realtime: malformed rate_limits.updated event ignored: `rate_limits` is not a list of objects"]


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
