"""The model's responses: the one in flight, the function calls each asks for, and what follows them.

A response's calls are decided on its `response.done`, by its final status: only a `completed` response
has its calls run (keyed by call id, each once, however often the event comes). The service also sends
`response.function_call_arguments.done` and `response.output_item.done` for a call it cut short ("also
emitted when a Response is interrupted, incomplete, or cancelled": ResponseFunctionCallArgumentsDoneEvent,
openai.types.realtime and .beta.realtime, openai 3.63.0), with the arguments written so far: such a call,
or any call of a response cancelled (the caller spoke), incomplete or failed, is neither run nor answered.
This costs no latency: response.done follows the call's output_item.done at once when the call is the
response's last item, as it is when the model asks for a tool.

The calls run as the current agent (media_host/pipelines/effects.py), their outputs go back to the model
and a follow-up response is asked for. A handoff switches the session to the new agent first, with a note
of the handoff in the conversation; the follow-up carries the new agent's tools, so it has them even if
the service refused the rest of the switch (a voice change). A transfer or hang-up happens once the
caller has heard the reply that follows.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from media_host.channel import CallChannel
from media_host.control_plane import ControlPlane
from media_host.engines.base import ChatMessage, ToolCall
from media_host.events import HangUp, Transfer
from media_host.pipelines.cascade.conversation import Conversation
from media_host.pipelines.effects import Ending, apply_effects, run_tool
from media_host.pipelines.realtime.link import Event, RealtimeLink
from media_host.pipelines.realtime.playback import Playback
from media_host.pipelines.realtime.protocol import Dialect, FunctionCall, ResponseDone
from media_host.pipelines.realtime.session import SessionControl
from media_host.pipelines.realtime.turns import Journal

log = logging.getLogger(__name__)


REMEMBERED = 32  # responses whose response.done was handled, kept to ignore a repeat


@dataclass
class Response:
    id: str
    greeting: bool = False
    cancelled: bool = False
    names: dict[str, str] = field(default_factory=dict)  # call_id -> tool name (beta has no name on .done)
    arguments: dict[str, str] = field(default_factory=dict)  # call_id -> arguments, as .done gave them


class CallParts(Protocol):
    """What responses need of the call (RealtimeCall)."""

    call: CallChannel
    conv: Conversation
    link: RealtimeLink
    dialect: Dialect
    session: SessionControl
    playback: Playback
    journal: Journal
    control_plane: ControlPlane
    done: bool

    def spawn(self, work: Coroutine[Any, Any, None], tool: bool = False) -> None: ...

    def count(self, kind: str, metric_kind: str | None = None, **labels: str) -> None: ...

    def stop(self, reason: str) -> None: ...


class Responses:
    def __init__(self, parts: CallParts) -> None:
        self.parts = parts
        self.response: Response | None = None
        self.ending = Ending()
        self.finish_after_response = False
        self.greeting_pending = False  # the next response is the greeting
        self.handled: deque[str] = deque(maxlen=REMEMBERED)  # responses whose response.done was handled
        self.answered: set[str] = set()  # call ids run (each is answered once)

    @property
    def greeting(self) -> bool:
        return self.response is not None and self.response.greeting

    def on_created(self, event: Event) -> None:
        response_id = str((event.get("response") or {}).get("id") or "")
        self.response = Response(response_id, greeting=self.greeting_pending)
        self.greeting_pending = False

    def on_output_item(self, event: Event) -> None:
        item = event.get("item") or {}
        if self.response is not None and item.get("type") == "function_call":
            self.response.names[str(item.get("call_id"))] = str(item.get("name") or "")

    def on_function_call(self, event: Event) -> None:
        """Noted only: whether the call runs is decided on response.done (sent for cut-short calls too)."""
        response = self.response
        if response is None or str(event.get("response_id") or response.id) != response.id:
            return
        call_id = str(event.get("call_id") or "")
        if event.get("name"):
            response.names[call_id] = str(event["name"])
        response.arguments[call_id] = str(event.get("arguments") or "")

    def on_done(self, event: Event) -> None:
        parts = self.parts
        done = ResponseDone.parse(event)
        if done.id in self.handled:
            log.info("realtime: response.done repeated; ignored", extra={"status": done.status})
            parts.count("response_done_repeated")
            return
        self.handled.append(done.id)
        response = self.response if self.response is not None and self.response.id == done.id else None
        if response is not None:
            self.response = None
        response = response or Response(done.id)
        parts.playback.response_done(done.id, done.output)
        if done.status == "failed":
            log.warning("realtime response failed", extra={"details": str(done.details)[:300]})
            parts.count("response_failed", "realtime_error")
        if response.greeting:
            parts.conv.greeted = True
            parts.spawn(parts.conv.save())
        calls = self._calls(response, done)
        if calls:
            self.answered.update(c.call_id for c in calls)
            parts.spawn(self._run_tools(calls), tool=True)
        elif self.finish_after_response:
            self.finish_after_response = False
            parts.spawn(self._finish())

    def _calls(self, response: Response, done: ResponseDone) -> list[FunctionCall]:
        """The calls to run: those of a completed response the model finished, not run before."""
        if not done.completed:
            cut = len(set(response.arguments) | set(done.unfinished) | {c.call_id for c in done.calls})
            if cut:
                log.info("realtime: calls of a response cut short are not run",
                         extra={"status": done.status, "reason": str(done.details.get("reason") or "")[:60],
                                "calls": cut})
                self.parts.count("calls_not_run", status=done.status[:20] or "none")
            return []
        listed = {c.call_id for c in done.calls} | set(done.unfinished)
        # Every item is listed in response.done; a call seen only on its .done event is kept, in case not.
        extra = [FunctionCall(call_id, response.names.get(call_id, ""), arguments)
                 for call_id, arguments in response.arguments.items() if call_id not in listed]
        return [c for c in [*done.calls, *extra] if c.call_id and c.call_id not in self.answered]

    def cancel(self) -> None:
        """Cancel the response in flight (its late audio is dropped)."""
        response = self.response
        if response is not None and not response.cancelled:
            response.cancelled = True
            self.parts.playback.ignored.add(response.id)
            self.parts.link.send(self.parts.dialect.response_cancel(response.id))

    async def _run_tools(self, calls: list[FunctionCall]) -> None:
        parts = self.parts
        link, dialect, conv = parts.link, parts.dialect, parts.conv
        generation, agent = link.generation, conv.agent
        outputs: list[tuple[str, str]] = []
        previous = None
        for call in calls:
            result = await run_tool(parts.call, conv, agent, call.name, call.arguments)
            outputs.append((call.call_id, result.for_model()))
            previous = await apply_effects(result.effects, parts.call, conv, parts.control_plane,
                                           self.ending) or previous
        # The history keeps the calls and their results as the cascade's does: a call that goes on there
        # (realtime/fallback.py) gives them to its chat model.
        asked = ChatMessage(role="assistant", tool_calls=tuple(ToolCall(c.call_id, c.name, c.arguments) for c in calls))
        parts.journal.note((asked, *(ChatMessage(role="tool", content=output, tool_call_id=call_id, name=call.name)
                                     for call, (call_id, output) in zip(calls, outputs, strict=True))))
        await conv.save()
        if self.ending.requested:
            self.finish_after_response = True  # once the reply that follows is done
        if generation != link.generation or parts.done:
            # The session they belonged to is gone; the restored one has the conversation (not the calls).
            # A transfer or hang-up still happens: after the apology in flight, or now.
            if self.finish_after_response and self.response is None and not parts.done:
                self.finish_after_response = False
                parts.spawn(self._finish())
            return
        for call_id, output in outputs:
            link.send(dialect.function_output(call_id, output))
        instructions = tools = None
        if previous is not None:
            tools = parts.session.switch().tools
            handoff = conv.handoff or {}
            link.send(dialect.message("system", (
                f"The caller was handed over from the {previous.name} agent to you, the {conv.agent.name} "
                f"agent. Reason: {handoff.get('reason') or 'not given'}. "
                f"Summary: {handoff.get('summary') or 'none'}.")))
            greeting = conv.agent.render_greeting(conv.variables())
            instructions = parts.session.instructions(
                f"You have just taken over this call. Start by saying \"{greeting}\", then help with what the "
                "caller asked." if greeting else "You have just taken over this call: help with what the caller asked.")
        link.send(dialect.response_create(instructions, tools=tools))

    async def _finish(self) -> None:
        """Carry out a transfer or hang-up once the caller has heard the reply."""
        parts = self.parts
        ending, self.ending = self.ending, Ending()
        await parts.call.wait_for_playout()
        if ending.transfer is not None:
            target = parts.conv.scenario.spec.policy.human_queue or ""
            await parts.conv.record_event("transfer", target=target, reason=ending.transfer)
            parts.call.send(Transfer(target, ending.transfer))
        elif ending.hangup is not None:
            await parts.conv.record_event("hangup", reason=ending.hangup)
            parts.call.send(HangUp(ending.hangup))
            parts.stop("agent ended the call")
