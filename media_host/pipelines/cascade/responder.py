"""Answering one caller turn: the chat model, its tool calls, their effects, and speaking the reply.

A reply may take several rounds: the model asks for a tool, the tool runs, the model phrases the
result. A handoff switches agent (prompt, tools, voice) in the middle of the turn, and the new agent
greets the caller and answers the same request. A transfer or hang-up is carried out once the
caller has heard the reply. If the cloud model fails, the fallback model (the offline brain) answers
the rest of the turn, so the caller is never left in silence; if that fails too, EnginesExhausted
("chat") hands the call to the pipeline's last resort.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from agents import Agent
from media_host.channel import CallChannel
from media_host.control_plane import ControlPlane
from media_host.engines.base import (
    ChatDelta,
    ChatMessage,
    ChatRequest,
    Engines,
    EnginesExhausted,
    TextDelta,
    ToolCall,
)
from media_host.engines.call_fallbacks import CallFallbacks
from media_host.engines.metered_chat import chat_fallback
from media_host.pipelines.cascade.conversation import Conversation
from media_host.pipelines.cascade.latency import TurnClock
from media_host.pipelines.cascade.speaker import Utterance
from media_host.pipelines.effects import Ending, apply_effects, run_tool

log = logging.getLogger(__name__)

MAX_ROUNDS = 5  # model calls per caller turn (tool rounds and handoffs included)
HOLDING_AFTER_S = 1.5  # a tool, or a model's first words, slower than this get a holding phrase


async def _closable(stream: AsyncIterator[ChatDelta]) -> AsyncGenerator[ChatDelta, None]:
    """Any async iterator as an async generator, so `aclosing` can close it (and whatever it wraps)."""
    try:
        async for delta in stream:
            yield delta
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


class Responder:
    def __init__(self, call: CallChannel, conv: Conversation, engines: Engines, control_plane: ControlPlane,
                 on_utterance: Callable[[Utterance, TurnClock | None], None]) -> None:
        self.call, self.conv, self.engines, self.control_plane = call, conv, engines, control_plane
        self.on_utterance = on_utterance  # the pipeline tracks what is playing, for barge-in and the transcript
        self.fallbacks = CallFallbacks(conv.record_event)  # engine fallbacks, into the call record
        self.ending = Ending()
        self.active: Utterance | None = None  # the reply being synthesized right now
        self.held = False  # the caller heard the holding phrase this turn

    def utterance(self, clock: TurnClock | None = None) -> Utterance:
        spec = self.conv.agent.spec
        utterance = Utterance(self.call, self.engines.tts, spec.voice, spec.locale, clock, report=self.fallbacks.report)
        self.active = utterance
        return utterance

    async def say(self, text: str, clock: TurnClock | None = None) -> Utterance:
        """Speak a fixed text (greeting, holding phrase, apology) as its own utterance."""
        utterance = self.utterance(clock)
        utterance.feed(text)
        try:
            await utterance.finish()
        finally:  # what was played before a TTS failure is in the transcript too
            if utterance.started:
                self.on_utterance(utterance, clock)
        return utterance

    async def answer(self, clock: TurnClock) -> Ending:
        """The caller's words are the last history message; reply until no tool is asked for."""
        first = True
        self.held = False
        for _ in range(MAX_ROUNDS):
            agent = self.conv.agent
            utterance = self.utterance(clock if first else None)
            calls: list[ToolCall] = []
            try:
                async with contextlib.aclosing(self._chat(self._request(), clock)) as deltas:
                    delta = await self._first_delta(deltas, utterance)
                    while delta is not None:
                        if isinstance(delta, TextDelta):
                            utterance.feed(delta.text)
                        else:
                            calls.append(delta.call)
                        delta = await anext(deltas, None)
            finally:
                try:
                    await utterance.finish()
                finally:
                    if utterance.started:  # the turn's clock goes with the first reply the caller hears
                        self.on_utterance(utterance, clock if first else None)
                        first = False
            if not calls:
                if utterance.text:  # nothing to add after a handoff greeting that already asks
                    self.conv.history.append(ChatMessage(role="assistant", content=utterance.text))
                break
            self.conv.history.append(ChatMessage(role="assistant", content=utterance.text, tool_calls=tuple(calls)))
            for tool_call in calls:
                await self._run_tool(agent, tool_call)
            if self.conv.agent is not agent:
                greeting = await self.say(self.conv.agent.render_greeting(self.conv.variables()),
                                          clock if first else None)
                first = first and not greeting.started
        else:
            log.warning("turn reached %d model rounds", MAX_ROUNDS)
        await self.conv.save()
        return self.ending

    async def _first_delta(self, deltas: AsyncIterator[ChatDelta], reply: Utterance) -> ChatDelta | None:
        """The model's first delta. A model that is slow (latency, retries, a dead connection until the
        fallback answers) would leave the caller in silence: past HOLDING_AFTER_S they hear the holding
        phrase while it is awaited (once a turn)."""
        if self.held:
            return await anext(deltas, None)
        waiting = asyncio.ensure_future(anext(deltas, None))
        try:
            done, _ = await asyncio.wait({waiting}, timeout=HOLDING_AFTER_S)
            if not done and not self.call.playing:
                await self._hold()
                self.active = reply  # the reply, not the phrase, is what a barge-in cuts off next
            return await waiting
        finally:
            if not waiting.done():  # cancelled (a barge-in): stop the model before the stream is closed
                waiting.cancel()
                await asyncio.wait({waiting})

    async def _hold(self) -> None:
        self.held = True
        await self.say(self.conv.holding_phrase())

    def _request(self) -> ChatRequest:
        return ChatRequest(messages=self.conv.messages(), agent=self.conv.agent, tools=self.conv.agent.tools,
                           customer=self.conv.customer, state=self.conv.chat_state())

    async def _chat(self, request: ChatRequest, clock: TurnClock) -> AsyncGenerator[ChatDelta, None]:
        """The model's reply; if it fails, the fallback model answers the rest of the turn."""
        started = time.monotonic()
        produced = False
        try:
            # aclosing: a barge-in cancels the reply mid-stream; the model's HTTP stream closes with it.
            async with contextlib.aclosing(_closable(self.engines.chat.stream(request))) as deltas:
                async for delta in deltas:
                    if not produced:
                        clock.mark("first_token")
                        clock.engine("llm", (time.monotonic() - started) * 1000)
                        produced = True
                    yield delta
            return
        except Exception as exc:
            if self.engines.fallback_chat is None or self.engines.fallback_chat is self.engines.chat:
                raise EnginesExhausted("chat", f"{type(exc).__name__}, no fallback model") from exc
            log.warning("chat model %s failed; the fallback answers this turn", self.engines.chat.name,
                        exc_info=True)
            await self.conv.record_event("chat_fallback", engine=self.engines.chat.name)
            if not produced:
                await self.fallbacks.add(chat_fallback(self.engines.chat.name, self.engines.fallback_chat.name, exc))
        if produced:
            return  # what was said stands; the next turn tries the main model again
        try:
            async with contextlib.aclosing(_closable(self.engines.fallback_chat.stream(request))) as deltas:
                async for delta in deltas:
                    clock.mark("first_token")
                    yield delta
        except Exception as exc:  # the model and its fallback both failed: no model can answer
            raise EnginesExhausted("chat", type(exc).__name__) from exc

    async def _run_tool(self, agent: Agent, tool_call: ToolCall) -> None:
        # The tool and its bookkeeping run as their own task: a barge-in cancels the reply, but a tool
        # that is changing something (blocking a card) finishes, and its result and effects are kept.
        job = asyncio.ensure_future(self._tool_job(agent, tool_call))
        done, _ = await asyncio.wait({job}, timeout=HOLDING_AFTER_S)
        if not done:
            await self._hold()
        await asyncio.shield(job)

    async def _tool_job(self, agent: Agent, tool_call: ToolCall) -> None:
        result = await run_tool(self.call, self.conv, agent, tool_call.name, tool_call.arguments)
        self.conv.history.append(ChatMessage(role="tool", content=result.for_model(), tool_call_id=tool_call.id,
                                             name=tool_call.name))
        await apply_effects(result.effects, self.call, self.conv, self.control_plane, self.ending)
