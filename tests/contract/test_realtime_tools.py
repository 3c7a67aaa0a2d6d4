"""Tool calls in a Realtime call (tests/support/realtime_harness.py: a real ACS socket, Redis, the openai client and
the local Realtime server, GA and beta): a call runs the agent's tool and the model goes on; a handoff
switches the session; a transfer or hang-up waits for the reply to be heard.

A call is run only from a response the service reports `completed` in its response.done. The service also
sends `response.function_call_arguments.done` and `response.output_item.done` for a call it cut short
(a response cancelled, incomplete or failed: "also emitted when a Response is interrupted, incomplete, or
cancelled", ResponseFunctionCallArgumentsDoneEvent in openai.types.realtime and .beta.realtime, openai
3.63.0): such a call is neither run nor answered, whatever its arguments. A response.done repeated runs
nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.realtime_harness import FLAVORS, RtCall, agents_dir, item_texts, realtime_call
from tests.support.realtime_server import CallTool, RealtimeServer, Speak
from tests.support.realtime_wire import voice_of

__all__ = ["agents_dir"]  # the scenario fixture (session-scoped: its tools module is loaded once)


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_function_call_runs_the_agents_tool_and_the_model_goes_on(
        redis_url: str, agents_dir: Path, flavor: str) -> None:
    server = RealtimeServer(flavor, [CallTool("rt_lookup", {"order": "42"}), Speak("Order 42 has shipped.", 300)],
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
    server = RealtimeServer(flavor, [Speak("Hello, front desk.", 200), CallTool("handoff_to_back", handoff),
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
    (CallTool("transfer_to_human", {"reason": "wants a person"}),
     ("transfer_requested", {"target": "+15550000199", "reason": "wants a person"})),
    (CallTool("rt_goodbye"), ("hangup_requested", {"reason": "caller is done"})),
], ids=["transfer", "hangup"])
async def test_a_transfer_or_hang_up_happens_once_the_caller_heard_the_reply(
        redis_url: str, agents_dir: Path, flavor: str, ending: tuple[CallTool, tuple[str, dict[str, str]]]) -> None:
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
    server = RealtimeServer(flavor, [CallTool("rt_gated_transfer"), Speak("Sorry, the line dropped.", 200)],
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


def function_outputs(server: RealtimeServer) -> list[dict[str, Any]]:
    return [e["item"] for e in server.events("conversation.item.create") if e["item"]["type"] == "function_call_output"]


async def nothing_was_run(call: RtCall) -> None:
    events = [e.kind for e in await call.host.store.events(call.call_id)]
    assert "tool_call" not in events
    assert "transfer" not in events
    assert await call.requests("transfer_requested") == []
    assert function_outputs(call.server) == []  # not answered either


def sent_after_arguments(server: RealtimeServer, response_id: str) -> list[dict[str, Any]]:
    """What the server sent of a response after the last of its argument deltas."""
    sent = [e for e in server.connections[0].sent
            if e.get("response_id") == response_id or (e.get("response") or {}).get("id") == response_id
            or (e["type"] == "conversation.item.done" and e["item"]["id"] == server.served[0].item_id)]
    last_delta = max(i for i, e in enumerate(sent) if e["type"] == "response.function_call_arguments.delta")
    return sent[last_delta + 1:]


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_call_the_caller_cut_short_is_not_run(redis_url: str, agents_dir: Path, flavor: str) -> None:
    """The caller speaks while the model is still writing the arguments: the server cancels the response
    (turn_detected) with the documented sequence, the call's .done events included."""
    server = RealtimeServer(flavor, [CallTool("transfer_to_human", {"reason": "wants a person"}, hold=True),
                                     Speak("Yes?", 200)], heard=["a person", "no wait"])
    async with realtime_call(redis_url, agents_dir, server, greeted=True) as call:
        await server.wait_for(lambda s: s.events("session.update"))
        await call.speak()
        await server.wait_for(lambda s: bool(s.served) and bool(s.served[0].said))  # halfway through the arguments
        await call.speak()  # the caller speaks again: the response is cancelled
        await call.got(1, 10)
        assert await call.wait_turns(3) == [("caller", "a person", False), ("caller", "no wait", False),
                                            ("agent", "Yes?", False)]
        cut = server.served[0]
        assert cut.status == "cancelled"
        closing = sent_after_arguments(server, cut.id)
        assert [e["type"] for e in closing] == ["response.function_call_arguments.done", "response.output_item.done",
                                                *(["conversation.item.done"] if flavor == "ga" else []),
                                                "response.done"]
        partial = closing[0]["arguments"]  # what the model had written of them
        assert json.dumps({"reason": "wants a person"}).startswith(partial)
        assert len(partial) < len(json.dumps({"reason": "wants a person"}))
        assert closing[1]["item"]["status"] == "incomplete"
        assert closing[-1]["response"]["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
        assert [i["status"] for i in closing[-1]["response"]["output"]] == ["incomplete"]
        await nothing_was_run(call)


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("ending", ["cancelled", "incomplete", "failed"])
async def test_a_call_with_whole_arguments_in_a_response_cut_short_is_not_run(
        redis_url: str, agents_dir: Path, flavor: str, ending: str) -> None:
    """The arguments are whole, valid JSON, but the response did not complete: cancelled as the model was
    about to close the call, or ended incomplete (max_output_tokens) or failed. The call is not run."""
    arguments = {"reason": "wants a person"}
    transfer = (CallTool("transfer_to_human", arguments, hold=True, hold_at=1.0) if ending == "cancelled"
                else CallTool("transfer_to_human", arguments, outcome=ending))
    server = RealtimeServer(flavor, [transfer, Speak("Yes?", 200)], heard=["a person", "no wait"])
    async with realtime_call(redis_url, agents_dir, server, greeted=True) as call:
        await server.wait_for(lambda s: s.events("session.update"))
        await call.speak()
        if ending == "cancelled":  # every argument streamed, the call not yet done: the caller speaks
            await server.wait_for(lambda s: bool(s.served) and "".join(s.served[0].said) == transfer.arguments_json)
        else:
            await server.wait_for(lambda s: bool(s.served) and s.served[0].status == ending)
        await call.speak()
        await call.got(1, 10)
        assert await call.wait_turns(3) == [("caller", "a person", False), ("caller", "no wait", False),
                                            ("agent", "Yes?", False)]
        cut = server.served[0]
        assert cut.status == ending
        closing = sent_after_arguments(server, cut.id)
        assert json.loads(closing[0]["arguments"]) == arguments
        assert closing[-1]["response"]["status"] == ending
        await nothing_was_run(call)


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_a_repeated_response_done_runs_its_call_once(redis_url: str, agents_dir: Path, flavor: str) -> None:
    server = RealtimeServer(flavor, [CallTool("rt_lookup", {"order": "42"}, repeat_done=True),
                                     Speak("Order 42 has shipped.", 300)], heard=["where is order 42"])
    async with realtime_call(redis_url, agents_dir, server, greeted=True) as call:
        await server.wait_for(lambda s: s.events("session.update"))
        await call.speak()
        await call.got(1, 15)
        assert await call.wait_turns(2) == [("caller", "where is order 42", False),
                                            ("agent", "Order 42 has shipped.", False)]
        done = [e for e in server.connections[0].sent
                if e["type"] == "response.done" and e["response"]["id"] == server.served[0].id]
        assert len(done) == 2  # sent twice
        # Both response.done were handled before the follow-up's first event: a second run would have
        # been started by then, and would have answered the call again and asked for a third response.
        assert [o["call_id"] for o in function_outputs(server)] == [server.served[0].call_id]
        assert len(server.events("response.create")) == 1
        recorded = [e for e in await call.host.store.events(call.call_id) if e.kind == "tool_call"]
        assert [(e.data["name"], e.data["ok"]) for e in recorded] == [("rt_lookup", True)]
