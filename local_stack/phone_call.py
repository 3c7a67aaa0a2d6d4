"""One simulated phone call through a running local stack, from the caller's side.

The caller dials the scenario's number: the local ACS publishes IncomingCall through Event Grid to
the function host, which answers; ACS then opens the media socket to the media host, and the scripted
caller speaks each line once the agent has finished (or over it, to barge in). Meanwhile the call's
monitor feed (transcript lines, handoffs, tool calls, turn latency) is printed as it happens. The call
ends when the agent transfers or hangs up, or when the caller hangs up after the last line.

The caller stays on the line when the media socket drops: ACS reports MediaStreamingFailed, the
orchestration restarts streaming, and the same caller carries on over the new socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from websockets.exceptions import WebSocketException

from local_stack.acs import INTERRUPTED, UNSUCCESSFUL, AcsCallConnection, AcsRequest, MediaLost, MediaOffer
from local_stack.callers.acs_caller import AcsMediaClient
from local_stack.callers.scripted import Line, Said, ScriptedCaller, Voiced
from local_stack.stack import LocalStack

Printer = Callable[[str], None]
AfterAnswer = Callable[[int], Awaitable[None]]
HEAR_LAST_REPLY_S = 30.0  # how long the caller waits for the agent's answer to the last line
CALL_END_S = 20.0  # then, how long for the call to end (a transfer, a hang-up) before the caller hangs up


@dataclass
class CallResult:
    call_id: str
    answer: AcsRequest | None = None
    media: AcsMediaClient | None = None
    said: list[Said] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # the monitor feed, in order
    status: dict[str, Any] | None = None  # the orchestration's final status (GET /api/calls/{id})
    record: dict[str, Any] | None = None  # the call record (GET /api/calls/{id}/record)
    caller_hung_up: bool = False
    started: float = field(default_factory=time.monotonic)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]


def describe(event: dict[str, Any]) -> str | None:
    """One readable console line for a monitor event (None for those not worth a line)."""
    match event["type"]:
        case "transcript" if event["speaker"] == "agent":
            cut = " [interrupted]" if event.get("interrupted") else ""
            return f"agent ({event.get('agent') or '?'}): {event['text']}{cut}"
        case "transcript":
            return f"caller: {event['text']}"
        case "handoff":
            return f"-> handoff {event.get('previous') or '?'} -> {event['agent']}" + (
                f" ({event['reason']})" if event.get("reason") else "")
        case "tool":  # arguments may hold what the caller said (account numbers): name and outcome only
            return f"   tool {event['name']}: {'ok' if event['ok'] else 'failed'} in {event['elapsed_ms']:.0f} ms"
        case "transfer":
            return f"-> transfer to {event['target']}" + (f" ({event['reason']})" if event.get("reason") else "")
        case "hangup":
            return "-> agent hangs up"
        case "barge_in":
            return "   (caller barged in: agent audio stopped)"
    return None


class PhoneCall:
    def __init__(self, stack: LocalStack, lines: list[Line], voice: Voiced, *, to: str,
                 caller: str = "+14255550123", printer: Printer = print, json_lines: bool = False,
                 after_answer: AfterAnswer | None = None) -> None:
        self.stack = stack
        self.lines = lines
        self.voice = voice
        self.to = to
        self.caller_number = caller
        self.print = printer
        self.json_lines = json_lines  # LOG_FORMAT=json: one JSON object per line instead of readable text
        self.after_answer = after_answer  # awaited with i once the agent has answered line i (tests: faults)
        self.result: CallResult | None = None
        self._done = asyncio.Event()
        self._conversation: asyncio.Task[None] | None = None

    def _say(self, text: str, event: dict[str, Any] | None = None) -> None:
        started = self.result.started if self.result else time.monotonic()
        elapsed = time.monotonic() - started
        if self.json_lines:
            call_id = self.result.call_id if self.result else None
            self.print(json.dumps({"t_s": round(elapsed, 3), "call_id": call_id, **(event or {"message": text})}))
        else:
            self.print(f"[{elapsed:6.1f}s] {text}")

    async def run(self, timeout: float = 150.0) -> CallResult:
        """Place the call and return once it is over and its record is written."""
        call_id = str(uuid.uuid4())  # the correlation id: the call's id everywhere
        self.result = result = CallResult(call_id)
        self.stack.expect_media(call_id, self._media)
        async with asyncio.timeout(timeout), self.stack.monitor(call_id) as feed:
            watcher = asyncio.create_task(self._watch(feed))
            try:
                assert self.stack.incoming_calls is not None
                self._say(f"dialling {self.to}: IncomingCall -> Event Grid -> function host")
                await self.stack.acs.ring(self.stack.incoming_calls, self.to, self.caller_number,
                                          correlation_id=call_id)
                result.answer = await self.stack.acs.wait_for_answer(call_id, timeout=10)
                self._say("answered; ACS opens the media socket to the media host")
                await self._done.wait()
                await self._ended(call_id)
            finally:
                for task in (watcher, self._conversation):
                    if task is not None:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
        return result

    # --- the caller, on the media legs ------------------------------------------------------------------
    async def _media(self, offer: MediaOffer) -> None:
        """One media socket ACS opens: the first starts the caller; a later one (a media restart)
        carries the same caller on. A socket that fails or breaks is reported to ACS (MediaLost)."""
        assert self.result is not None
        media = self.result.media
        if media is None:
            media = self.result.media = AcsMediaClient.for_offer(offer)  # streams as the call asked
            self._conversation = asyncio.create_task(self._converse(media, offer.call), name="caller")
        elif media.sockets:
            self._say("media restart: ACS opens the socket again, the caller still on the line")
        try:
            await media.connect(offer.url, offer.headers)
        except (OSError, WebSocketException, TimeoutError) as exc:
            self._say(f"media socket refused ({str(exc) or type(exc).__name__}): ACS reports MediaStreamingFailed")
            raise MediaLost(UNSUCCESSFUL, str(exc) or type(exc).__name__) from None
        try:
            closed = asyncio.create_task(media.closed.wait())
            ended = asyncio.create_task(offer.ended.wait())
            await asyncio.wait({closed, ended}, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            ended.cancel()
            if not offer.ended.is_set() and media.close_code != 1000:  # 1000: the app ended the stream itself
                how = f"{media.close_code} {media.close_reason or ''}".strip()
                self._say(f"media socket lost ({how}): ACS reports MediaStreamingFailed")
                raise MediaLost(INTERRUPTED, how)
        finally:
            await media.disconnect()

    async def _converse(self, media: AcsMediaClient, call: AcsCallConnection) -> None:
        """The caller's side of the call, over however many sockets it takes."""
        assert self.result is not None
        caller = ScriptedCaller(media, self.voice)
        over = asyncio.create_task(call.over.wait())
        try:
            for i, line in enumerate(self.lines):
                said = asyncio.create_task(caller.say(line))
                await asyncio.wait({said, over}, return_when=asyncio.FIRST_COMPLETED)
                if not said.done():
                    said.cancel()
                    break
                self.result.said.append(said.result())
                if self.after_answer is not None and not over.done():
                    with contextlib.suppress(TimeoutError):
                        await caller.answered(HEAR_LAST_REPLY_S)
                    await self.after_answer(i)
            if not over.done():
                with contextlib.suppress(TimeoutError):
                    await caller.answered(HEAR_LAST_REPLY_S)
                await asyncio.wait({over}, timeout=CALL_END_S)
        except TimeoutError:
            self._say("the agent never answered")
        finally:
            over.cancel()
            if not call.over.is_set():
                self._say("caller hangs up")
                self.result.caller_hung_up = True
                self.stack.acs.caller_hangs_up(call.call_connection_id)
            self._done.set()

    # --- what the stack says about the call --------------------------------------------------------------
    async def _watch(self, feed: AsyncIterator[dict[str, Any]]) -> None:
        assert self.result is not None
        async for event in feed:
            self.result.events.append(event)
            line = describe(event)
            if line is not None:
                self._say(line, event)

    async def _ended(self, call_id: str) -> None:
        """Wait for the orchestration to finish, then fetch its status and the call record."""
        assert self.result is not None
        url = f"{self.stack.functions_url}/api/calls/{call_id}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            orchestration: dict[str, Any] = {}
            for _ in range(300):  # the record is written once CallDisconnected has reached the orchestration
                async with http.get(url) as resp:
                    body = await resp.json(content_type=None)
                orchestration = (body or {}).get("orchestration") or {}
                if orchestration.get("runtime_status") not in (None, "Pending", "Running"):
                    break
                await asyncio.sleep(0.1)
            self.result.status = orchestration
            async with http.get(f"{url}/record") as resp:
                self.result.record = await resp.json(content_type=None) if resp.status == 200 else None
        output = orchestration.get("output") or {}
        self._say(f"call over: orchestration {orchestration.get('runtime_status')}, "
                  f"end reason {json.dumps(output.get('end_reason'))}, record "
                  f"{'written' if self.result.record else 'missing'}")
