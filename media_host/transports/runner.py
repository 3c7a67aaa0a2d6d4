"""Runs one call on one socket, whatever the transport: bind, pump audio and events, end cleanly.

Five tasks per call: the reader (wire to channel), the audio sender (playout to wire), the control
sender (events to wire), the pipeline, and an idle watchdog. The first to finish decides how the
call ends; the rest are cancelled, except the control sender: it finishes the event in hand and those
queued before it stops (an agent's hang-up on ACS is an HTTP request to the Function App, still in
flight when the pipeline returns), bounded by CONTROL_DRAIN_S. Whatever happens, only this socket is
affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from websockets.exceptions import ConnectionClosed

from media_host.channel import CallChannel
from media_host.events import CallerHungUp, CallStarted, Outbound
from media_host.pipelines import Pipeline
from media_host.playout import UtteranceEnd
from media_host.telemetry import call_span
from media_host.transports.base import CloseCode, HostServices, NotACall, ProtocolViolation, WireAdapter
from switchboard.logs import bind_call

log = logging.getLogger(__name__)

PIPELINE_GRACE_S = 2.0  # after the caller's socket closes, time for the pipeline to record the end
# At the end of a call, time for the control requests in hand and queued to complete: more than the
# Function App control plane's attempts and backoff take (media_host/control_plane.py, ~16 s at worst).
CONTROL_DRAIN_S = 20.0


async def _read(adapter: WireAdapter, channel: CallChannel) -> None:
    async for message in adapter.ws:
        await adapter.on_message(message, channel)


async def _send_audio(adapter: WireAdapter, channel: CallChannel) -> None:
    next_audio = channel.next_audio
    while True:
        item = await next_audio()
        if isinstance(item, UtteranceEnd):
            await adapter.send_utterance_end(item)
        else:
            await adapter.send_audio(item)


class ControlSender:
    """Sends the call's control events in order until the channel's control queue is closed and empty."""

    def __init__(self, adapter: WireAdapter, channel: CallChannel, host: HostServices) -> None:
        self.adapter = adapter
        self.channel = channel
        self.host = host
        self.in_hand: Outbound | None = None

    async def run(self) -> None:
        while (event := await self.channel.next_control()) is not None:
            self.in_hand = event
            try:
                await self.adapter.send_control(event, self.channel)
            except ConnectionClosed:
                pass  # the reader ends the call; what goes to the control plane instead still goes
            except Exception:  # one event lost, loudly; the next (a hang-up after a StopAudio) still goes
                self.host.metrics.errors.inc(transport=self.adapter.transport, kind="control_failed")
                log.exception("sending %s failed", type(event).__name__)
            self.in_hand = None

    def pending(self) -> list[str]:
        held = [self.in_hand] if self.in_hand is not None else []
        return [type(e).__name__ for e in (*held, *self.channel.queued_control)]

    async def finish(self, task: asyncio.Task[None]) -> None:
        """The call is ending: `task` (running `run`) sends the event in hand and those queued, for up to
        CONTROL_DRAIN_S; then it is cancelled, with an error naming what it had not sent."""
        self.channel.close_control()
        pending = self.pending()
        if pending:
            log.info("call ending: %d control request(s) still to send", len(pending),
                     extra={"pending": ",".join(pending)})
        try:
            await asyncio.wait({task}, timeout=CONTROL_DRAIN_S)
        finally:
            if not task.done():
                unsent = self.pending()
                task.cancel()
                self.host.metrics.errors.inc(transport=self.adapter.transport, kind="control_unsent")
                log.error("control requests still in flight %g s after the call ended: cancelled", CONTROL_DRAIN_S,
                          extra={"call_id": self.channel.call_id, "pending": ",".join(unsent)})
                await asyncio.gather(task, return_exceptions=True)


async def _watchdog(channel: CallChannel, idle_timeout: float) -> None:
    while True:
        await asyncio.sleep(min(1.0, idle_timeout / 4))
        if time.monotonic() - channel.last_inbound_at > idle_timeout:
            raise ProtocolViolation(CloseCode.GOING_AWAY, f"idle timeout: nothing received for {idle_timeout:g} s",
                                    "idle_timeout")


async def open_call(adapter: WireAdapter, host: HostServices) -> tuple[CallChannel, Pipeline] | None:
    """Read the opening messages and build the channel; on failure close the socket and return None."""
    timeout = host.settings.media_open_timeout_seconds
    try:
        info = await asyncio.wait_for(adapter.open(), timeout=timeout)
    except TimeoutError:
        await _fail(adapter, host, ProtocolViolation(CloseCode.POLICY, f"no call started within {timeout:g} s",
                                                     "open_timeout"))
        return None
    except ProtocolViolation as violation:
        await _fail(adapter, host, violation)
        return None
    except (ConnectionClosed, NotACall):
        return None
    except Exception:  # the store is down, a bug in an adapter: this socket only, counted and logged
        log.exception("could not open the call", extra={"transport": adapter.transport})
        await _fail(adapter, host, ProtocolViolation(CloseCode.INTERNAL, "internal error", "internal"))
        return None
    try:
        pipeline = host.pipeline_for(info)
        channel = CallChannel(info, store=host.store, catalog=host.agents.current,
                              inbound_rate=pipeline.inbound_rate, outbound_rate=pipeline.outbound_rate,
                              writer=host.writer)
    except Exception:
        log.exception("could not start the pipeline", extra={"transport": adapter.transport})
        await _fail(adapter, host, ProtocolViolation(CloseCode.INTERNAL, "internal error", "pipeline_start"))
        return None
    return channel, pipeline


async def _fail(adapter: WireAdapter, host: HostServices, violation: ProtocolViolation) -> None:
    host.metrics.errors.inc(transport=adapter.transport, kind=violation.kind)
    log.warning("closing socket: %s", violation.reason, extra={"transport": adapter.transport,
                                                                 "kind": violation.kind})
    with contextlib.suppress(ConnectionClosed):
        await adapter.finish(violation.code, violation.reason)


async def run_call(adapter: WireAdapter, channel: CallChannel, pipeline: Pipeline, host: HostServices,
                   on_end: Callable[[CallChannel, str], None]) -> None:
    info = channel.info
    outcome = "completed"
    with bind_call(info.call_id, info.correlation_id), call_span(info):
        log.info("call connected", extra={"transport": adapter.transport, "wire_rate": info.wire_rate,
                                          "resumed": info.resumed})
        channel.feed_event(CallStarted(dict(info.parameters)))
        reader = asyncio.create_task(_read(adapter, channel), name="reader")
        runner = asyncio.create_task(pipeline.run(channel), name="pipeline")
        sender = ControlSender(adapter, channel, host)  # ends only through sender.finish
        control = asyncio.create_task(sender.run(), name="control")
        tasks = {reader, runner,
                 asyncio.create_task(_send_audio(adapter, channel), name="audio"),
                 asyncio.create_task(_watchdog(channel, adapter.idle_timeout()), name="watchdog")}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            first = done.pop()
            error = first.exception()
            if first is reader and error is None:  # the far end closed the socket
                if not channel.agent_hung_up:
                    channel.feed_event(CallerHungUp("socket closed"))
                await asyncio.wait({runner}, timeout=PIPELINE_GRACE_S)
                outcome = channel.outcome("caller_hung_up")
            elif first is runner and error is None:
                await sender.finish(control)  # a hang-up activity goes out before the close
                await adapter.finish(CloseCode.NORMAL, "call ended")
                outcome = channel.outcome("completed")
            elif isinstance(error, ProtocolViolation):
                outcome = f"closed:{error.kind}"
                await _fail(adapter, host, error)
            elif isinstance(error, ConnectionClosed):
                outcome = "connection_lost"
            elif error is not None:
                outcome = "error"
                host.metrics.errors.inc(transport=adapter.transport, kind="internal")
                log.error("call failed in %s", first.get_name(), exc_info=error)
                await adapter.finish(CloseCode.INTERNAL, "internal error")
        except ConnectionClosed:
            outcome = "connection_lost"
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await sender.finish(control)  # after the pipeline: nothing is queued once it is gone
            on_end(channel, outcome)
            adapter.call_finished()
            log.info("call ended", extra={"outcome": outcome, "frames_in": channel.frames_in,
                                          "frames_out": channel.frames_out,
                                          "late_frames": channel.late_frames})

