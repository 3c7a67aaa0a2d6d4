"""How the local Realtime server (tests/support/realtime_server.py) streams one response, in the order the service
documents, cancellation included.

The order (GA names; the beta dialect renames them, tests/support/realtime_wire.py BETA_NAMES), from the API
reference's server events (https://platform.openai.com/docs/api-reference/realtime-server-events, the
docstrings of openai 3.63.0 `openai.types.realtime`) and the Realtime conversations guide
(https://platform.openai.com/docs/guides/realtime-conversations):

    response.created                                  status in_progress, no output yet
    response.output_item.added                        the item, in_progress, no content
    conversation.item.added (beta: .created)          "when the model starts generating a specific Item"
      an assistant message (Speak):
        response.content_part.added                   part {type: audio, transcript: ""}
        response.output_audio.delta / response.output_audio_transcript.delta ...
        response.output_audio.done                    }
        response.output_audio_transcript.done         } "also emitted when a Response is interrupted,
        response.content_part.done                    }  incomplete, or cancelled"
      a function call (CallTool):
        response.function_call_arguments.delta ...
        response.function_call_arguments.done         } the same: with the arguments generated so far
    response.output_item.done                         } item status completed, or incomplete if cut short
    conversation.item.done (GA only)                  the item finalized
    response.done                                     "always emitted, no matter the final state":
                                                      status completed / cancelled / incomplete / failed,
                                                      output = every item generated, cut short or not

`response.cancel` (or server VAD speech with `interrupt_response`) cuts the response: the item in flight
is finished as above with status incomplete, then response.done with status cancelled and status_details
{type: cancelled, reason: client_cancelled | turn_detected} (RealtimeResponseStatus). An out-of-band response
(`conversation: none`) is streamed the same way, without the conversation.item events.
"""

from __future__ import annotations

import asyncio
import base64
import math
from typing import Protocol

from tests.support.realtime_wire import BYTES_PER_MS, CallTool, Event, Served, Speak, item_of, response_of, tone


class Sender(Protocol):
    """What a response needs of its connection."""

    ga: bool

    async def send(self, event: Event) -> None: ...

    async def transcribed(self) -> None:
        """Send the caller's transcript if one is due (the service often sends it after the answer starts)."""

    def drop(self) -> None: ...

    def changed(self) -> None: ...


class ResponseStream:
    """One response being generated."""

    def __init__(self, out: Sender, served: Served, *, conversation: bool = True) -> None:
        self.out, self.served, self.conversation = out, served, conversation
        self.ga = out.ga
        self.task: asyncio.Task[None] | None = None
        self.dropped = False

    @property
    def where(self) -> Event:
        return {"response_id": self.served.id, "item_id": self.served.item_id, "output_index": 0}

    async def start(self) -> None:
        await self.out.send({"type": "response.created", "response": response_of(self.served, self.ga)})
        self.task = asyncio.create_task(self._run())

    async def cancel(self, reason: str) -> None:
        """Cut the response short: `client_cancelled` (response.cancel) or `turn_detected` (the caller spoke)."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.dropped:
            return
        await self._close_item("incomplete")
        await self._done("cancelled", {"type": "cancelled", "reason": reason})

    async def _run(self) -> None:
        script, outcome = self.served.script, "completed"
        if isinstance(script, Speak):
            if not await self._speak(script):
                return
        elif isinstance(script, CallTool):
            await self._call(script)
            outcome = script.outcome
        if self.conversation:
            await self.out.transcribed()
        if outcome == "completed":
            await self._close_item("completed")
            await self._done("completed", None)
            if isinstance(script, CallTool) and script.repeat_done:
                await self.out.send({"type": "response.done", "response": response_of(self.served, self.ga)})
            return
        await self._close_item("incomplete")
        await self._done(outcome, {"type": "incomplete", "reason": "max_output_tokens"} if outcome == "incomplete"
                         else {"type": "failed", "error": {"type": "server_error", "code": "server_error"}})

    async def _add_item(self) -> None:
        served = self.served
        served.item_status = "in_progress"
        item = item_of(served, self.ga, "in_progress")
        await self.out.send({"type": "response.output_item.added", "response_id": served.id, "output_index": 0,
                             "item": item})
        if self.conversation:
            await self.out.send({"type": "conversation.item.added", "previous_item_id": None, "item": item})

    async def _speak(self, s: Speak) -> bool:
        """The audio, and its transcript spread over the chunks. False if the socket was dropped."""
        served = self.served
        await self._add_item()
        where = {**self.where, "content_index": 0}
        await self.out.send({"type": "response.content_part.added", **where,
                             "part": {"type": "audio", "transcript": ""}})
        audio, words = tone(s.audio_ms, served.marker), s.text.split()
        chunks, chunk_bytes = max(1, math.ceil(s.audio_ms / s.chunk_ms)), s.chunk_ms * BYTES_PER_MS
        for i in range(chunks):
            if s.drop_after_ms is not None and i * s.chunk_ms >= s.drop_after_ms:
                self.dropped = True
                self.out.drop()
                return False
            pcm = audio[i * chunk_bytes:(i + 1) * chunk_bytes]
            served.audio += pcm
            await self.out.send({"type": "response.output_audio.delta", **where,
                                 "delta": base64.b64encode(pcm).decode()})
            said = words[len(words) * i // chunks:len(words) * (i + 1) // chunks]
            if said:
                served.said += said
                await self.out.send({"type": "response.output_audio_transcript.delta", **where,
                                     "delta": " ".join(said) + " "})
            if i == 0 and self.conversation:
                await self.out.transcribed()
            self.out.changed()
            if s.pace:
                await asyncio.sleep(s.chunk_ms / 1000 / s.pace)
        return True

    async def _call(self, c: CallTool) -> None:
        """The arguments in two deltas; with `hold`, the model stops partway until cancelled."""
        await self._add_item()
        if self.conversation:
            await self.out.transcribed()
        arguments = c.arguments_json
        cut = round(len(arguments) * (c.hold_at if c.hold else 0.5))
        await self._arguments(arguments[:cut])
        if c.hold:
            await asyncio.Event().wait()  # until cancelled
        await self._arguments(arguments[cut:])

    async def _arguments(self, piece: str) -> None:
        if piece:
            self.served.said.append(piece)
            await self.out.send({"type": "response.function_call_arguments.delta", **self.where,
                                 "call_id": self.served.call_id, "delta": piece})
            self.out.changed()

    async def _close_item(self, status: str) -> None:
        """Finish the item in flight: its .done events, then output_item.done with `status`."""
        served = self.served
        if served.item_status != "in_progress":
            return
        served.item_status = status
        if isinstance(served.script, CallTool):
            done: Event = {"type": "response.function_call_arguments.done", **self.where,
                           "call_id": served.call_id, "arguments": "".join(served.said)}
            await self.out.send({**done, "name": served.script.name} if self.ga else done)  # beta: no name
        else:
            where = {**self.where, "content_index": 0}
            transcript = item_of(served, self.ga, status)["content"][0]["transcript"]
            await self.out.send({"type": "response.output_audio.done", **where})
            await self.out.send({"type": "response.output_audio_transcript.done", **where, "transcript": transcript})
            await self.out.send({"type": "response.content_part.done", **where,
                                 "part": {"type": "audio", "transcript": transcript}})
        item = item_of(served, self.ga, status)
        await self.out.send({"type": "response.output_item.done", "response_id": served.id, "output_index": 0,
                             "item": item})
        if self.ga and self.conversation:
            await self.out.send({"type": "conversation.item.done", "previous_item_id": None, "item": item})

    async def _done(self, status: str, details: Event | None) -> None:
        self.served.status, self.served.status_details = status, details
        await self.out.send({"type": "response.done", "response": response_of(self.served, self.ga)})
        self.out.changed()
