"""call_session: one orchestration per phone call, from answer to call record (instance id = call id).

    ringing --CallConnected--> connected --TransferRequested--> transferring --CallTransferAccepted--> transferred
      | connect timeout, max duration,  ^------------- CallTransferFailed ----+                         |
      v media failed, HangupRequested: we hang up                                                        v
    ending --CallDisconnected, or the grace timer--> ended: write the record, clean the session <--CallDisconnected

Handoffs, authentication, media restarts and participants change the state, not the phase. Every wait
also receives the external events (inbox.py), so nothing that arrives meanwhile is lost. Deterministic:
time comes from the context, settings from the input.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from datetime import timedelta
from enum import StrEnum
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskBase

from orchestrations import policy
from orchestrations.inbox import Inbox, Received
from orchestrations.models import (
    Activity,
    AgentHandoff,
    CallSessionInput,
    EndReason,
    Event,
    HangupRequested,
    Notice,
    TransferRequested,
    parse,
)
from switchboard.session_models import CallPhase, TransferStatus

log = logging.getLogger(__name__)

Orchestration = Generator[Any, Any, Any]

EVENTS_PER_EXECUTION = 50  # then continue_as_new, so the history stays small
HANGUP_GRACE = timedelta(seconds=15)  # after our hang-up, how long we wait for CallDisconnected
TRANSFER_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
IO_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
RECORD_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5000, max_number_of_attempts=5)


class Timer(StrEnum):
    """Timer expiries, handled like events."""

    CONNECT_TIMEOUT = "ConnectTimeout"
    MAX_DURATION = "MaxDuration"
    HANGUP_GRACE_OVER = "HangupGraceOver"


def call_session(context: df.DurableOrchestrationContext) -> Orchestration:
    """The life of one call: wait for it to connect, react to what happens on it, write its record."""
    call = CallOrchestration(context, CallSessionInput.model_validate(context.get_input()))
    while not call.over:
        if call.time_to_continue_as_new():
            context.continue_as_new(call.carry_over())
            return None
        event = yield from call.next_event()
        yield from call.handle(event)
    return (yield from call.finish())


class CallOrchestration:
    """One call as the orchestrator sees it: its state, its timers, and what it does about each event."""

    def __init__(self, context: df.DurableOrchestrationContext, call: CallSessionInput) -> None:
        self.context = context
        self.input = call
        self.session = call.state or policy.initial_state(call, context.current_utc_datetime)
        self.inbox = Inbox(context, list(Event))
        self.over = False
        self.handled = 0  # events handled in this execution
        self.deadline: TaskBase | None = context.create_timer(policy.at(self.session.deadline))
        self.connect_timer: TaskBase | None = None
        if self.session.state is CallPhase.RINGING and self.session.connect_deadline:
            self.connect_timer = context.create_timer(policy.at(self.session.connect_deadline))
        self.grace_timer: TaskBase | None = None

    # --- the loop ----------------------------------------------------------------------------------
    def next_event(self) -> Generator[Any, Any, Received]:
        self._publish()
        timers = [t for t in (self.deadline, self.connect_timer, self.grace_timer) if t is not None]
        got = yield from self.inbox.next(timers)
        if isinstance(got, Received):
            self.handled += 1
            self.session.events_handled += 1
            return got
        if got is self.deadline:
            self.deadline = None
            return Received(Timer.MAX_DURATION)
        if got is self.connect_timer:
            self.connect_timer = None
            return Received(Timer.CONNECT_TIMEOUT)
        self.grace_timer = None
        return Received(Timer.HANGUP_GRACE_OVER)

    def handle(self, event: Received) -> Orchestration:  # noqa: PLR0912 - one case per event reads as the call's life
        s, data = self.session, event.data
        match event.name:
            case Event.CALL_CONNECTED:
                self.on_connected()
            case Event.CALL_DISCONNECTED:
                s.end_reason = policy.end_reason_on_disconnect(s)
                self.over = True
            case Event.AGENT_HANDOFF:
                yield from self.on_handoff(data)
            case Event.AUTHENTICATED:
                s.authenticated = True
            case Event.TRANSFER_REQUESTED:
                request = parse(TransferRequested, data) or TransferRequested()  # no usable target: the human queue
                yield from self.transfer(policy.transfer_target(request.target, self.input.human_queue),
                                         request.reason or "requested")
            case Event.CALL_TRANSFER_ACCEPTED:
                self.on_transfer_accepted(data)
            case Event.CALL_TRANSFER_FAILED:
                if s.transfer is TransferStatus.PENDING and policy.is_current_transfer(s, data):
                    yield from self.transfer_failed({"reason": "transfer failed", **policy.result_code(data)})
                else:
                    self._ignore(event)
            case Event.HANGUP_REQUESTED:
                hangup = parse(HangupRequested, data) or HangupRequested()
                yield from self.hang_up(EndReason.AGENT_HANGUP, hangup.reason or None)
            case Event.MEDIA_STREAMING_STARTED:
                s.media = "streaming"
            case Event.MEDIA_STREAMING_STOPPED:
                s.media = "stopped"
            case Event.MEDIA_STREAMING_FAILED:
                yield from self.on_media_failed()
            case Event.PARTICIPANTS_UPDATED:
                update = policy.participants(data, s)
                if update is not None:
                    s.participants, s.participants_seq = update
            case Timer.CONNECT_TIMEOUT if s.connected_at is None and s.state is CallPhase.RINGING:
                yield from self.hang_up(EndReason.CONNECT_TIMEOUT)
            case Timer.MAX_DURATION:
                yield from self.hang_up(EndReason.MAX_DURATION)
            case Timer.HANGUP_GRACE_OVER:
                self.over = True
            case _:
                self._ignore(event)

    # --- what happens on a call ---------------------------------------------------------------------
    def on_connected(self) -> None:
        s = self.session
        if s.connected_at is None:
            s.connected_at = policy.iso(self.context.current_utc_datetime)
            s.connect_deadline = None
            self._cancel(self.connect_timer)
            self.connect_timer = None
        if s.state is CallPhase.RINGING:
            s.state = CallPhase.CONNECTED

    def on_handoff(self, data: dict[str, Any]) -> Orchestration:
        s = self.session
        handoff = parse(AgentHandoff, data)
        if handoff is None or s.state not in policy.LIVE:
            self._ignore(Received(Event.AGENT_HANDOFF, data))
            return
        s.authenticated = s.authenticated or handoff.authenticated
        decision = policy.decide_handoff(s, self.input, handoff.to_agent)
        if decision.verdict is policy.Verdict.ALLOW:
            s.handoffs += 1
            s.agent = handoff.to_agent
            s.agents.append(handoff.to_agent)
        elif decision.verdict is policy.Verdict.ESCALATE:
            yield from self.transfer(self.input.human_queue, "handoff limit")
        elif decision.denied:
            # The media host already switched (hot path): it switches back when it sees this.
            yield from self.notify(Notice.HANDOFF_DENIED, {
                "from_agent": handoff.from_agent, "to_agent": handoff.to_agent, "reason": decision.verdict.value})

    def transfer(self, target: str | None, reason: str) -> Orchestration:
        s = self.session
        if s.state not in (CallPhase.RINGING, CallPhase.CONNECTED):
            return  # one transfer at a time; none once the call is ending
        if target is None:
            yield from self.notify(Notice.TRANSFER_FAILED, {"reason": "no transfer target", "target": None})
            return
        s.transfer_attempts += 1
        s.transfer, s.transfer_target, s.state = TransferStatus.PENDING, target, CallPhase.TRANSFERRING
        done = yield from self._call(Activity.TRANSFER_CALL, {
            **self._ref(), "target": target, "operation_context": policy.transfer_context(s.transfer_attempts),
            "reason": reason}, TRANSFER_RETRY)
        if done is None and s.transfer is TransferStatus.PENDING:
            yield from self.transfer_failed({"reason": "transfer request failed"})

    def on_transfer_accepted(self, data: dict[str, Any]) -> None:
        s = self.session
        if not policy.is_current_transfer(s, data):
            self._ignore(Received(Event.CALL_TRANSFER_ACCEPTED, data))
            return
        s.transfer = TransferStatus.ACCEPTED
        if s.state in (CallPhase.RINGING, CallPhase.CONNECTED, CallPhase.TRANSFERRING):
            s.state = CallPhase.TRANSFERRED  # our leg drops next: CallDisconnected ends the session

    def transfer_failed(self, detail: dict[str, Any]) -> Orchestration:
        s = self.session
        s.transfer, s.state = TransferStatus.FAILED, policy.resting_phase(s)
        # The agent apologises and carries on.
        yield from self.notify(Notice.TRANSFER_FAILED, {"target": s.transfer_target, **detail})

    def on_media_failed(self) -> Orchestration:
        s = self.session
        if s.state not in policy.LIVE:
            return  # media stops failing when a call is handed over or hung up
        s.media = "failed"
        while s.media_restarts < self.input.media_restart_attempts:
            wait = policy.media_backoff(s.media_restarts)
            s.media_restarts += 1
            yield from self._wait(self.context.create_timer(self.context.current_utc_datetime + wait))
            if self.inbox.pending(Event.CALL_DISCONNECTED, Event.MEDIA_STREAMING_STARTED):
                return  # the call ended, or the media came back, while we waited
            if (yield from self._call(Activity.START_MEDIA_STREAMING, self._ref())) is not None:
                s.media = "restarting"
                return
        yield from self.notify(Notice.MEDIA_FAILED, {"restarts": s.media_restarts})
        yield from self.hang_up(EndReason.MEDIA_FAILED)

    def hang_up(self, reason: EndReason, detail: str | None = None) -> Orchestration:
        s = self.session
        if s.state is CallPhase.TRANSFERRED:  # our leg is handed over: nothing to hang up, and nothing left to wait for
            s.end_reason, self.over = policy.end_reason_on_disconnect(s), True
        if s.state in (CallPhase.ENDING, CallPhase.TRANSFERRED):
            return
        s.end_reason, s.end_detail, s.state = reason, detail, CallPhase.ENDING
        self._cancel(self.connect_timer)
        self.connect_timer = None
        if (yield from self._call(Activity.HANG_UP_CALL, self._ref(), IO_RETRY)) is None:
            self.over = True  # the call is already gone: no CallDisconnected will come
        else:
            self.grace_timer = self.context.create_timer(self.context.current_utc_datetime + HANGUP_GRACE)

    def notify(self, kind: Notice, data: dict[str, Any]) -> Orchestration:
        yield from self._call(Activity.NOTIFY_MEDIA_HOST, {
            **self._ref(), "kind": kind.value, "agent": self.session.agent, "data": data}, IO_RETRY)

    # --- the end, or the next execution -------------------------------------------------------------
    def finish(self) -> Orchestration:
        self._cancel_timers()
        s = self.session
        s.state = CallPhase.ENDED
        ended = self.context.current_utc_datetime
        written = yield from self._call(Activity.WRITE_CALL_RECORD, {
            **self._ref(), "outcome": policy.outcome(self.input, s, ended)}, RECORD_RETRY)
        cleaned = None
        if written is not None:  # without a record, the session (and its transcript) lives until its TTL
            cleaned = yield from self._call(Activity.CLEAN_SESSION, self._ref(), IO_RETRY)
        self._publish()
        return {**policy.outcome(self.input, s, ended), "record_written": written is not None,
                "session_cleaned": cleaned is not None}

    def time_to_continue_as_new(self) -> bool:
        return (policy.should_continue_as_new(self.handled, EVENTS_PER_EXECUTION, self.session.state)
                and self.inbox.empty and not self.inbox.unread_in_history())

    def carry_over(self) -> dict[str, Any]:
        self._cancel_timers()
        self.session.executions += 1
        self._publish()
        return self.input.model_copy(update={"state": self.session}).model_dump(mode="json")

    # --- helpers ------------------------------------------------------------------------------------
    def _call(self, name: Activity, payload: dict[str, Any],
              retry: df.RetryOptions | None = None) -> Generator[Any, Any, dict[str, Any] | None]:
        """Run an activity; its result, or None once it has failed (after its retries)."""
        task = (self.context.call_activity_with_retry(name.value, retry, payload) if retry
                else self.context.call_activity(name.value, payload))
        yield from self._wait(task)
        if isinstance(task.result, Exception):
            self.session.failures = [*self.session.failures, name.value][-20:]
            if not self.context.is_replaying:
                log.warning("activity failed", extra={"call_id": self.input.call_id, "activity": name.value})
            return None
        return task.result if isinstance(task.result, dict) else {}

    def _wait(self, task: TaskBase) -> Orchestration:
        self._publish()  # the status others read while we wait
        yield from self.inbox.wait(task)

    def _ref(self) -> dict[str, Any]:
        return {"call_id": self.input.call_id, "call_connection_id": self.input.call_connection_id}

    def _publish(self) -> None:
        self.context.set_custom_status(policy.custom_status(self.session))

    def _ignore(self, event: Received) -> None:
        if not self.context.is_replaying:
            log.info("event ignored", extra={"call_id": self.input.call_id, "event": event.name,
                                             "state": self.session.state.value})

    @staticmethod
    def _cancel(timer: TaskBase | None) -> None:
        if timer is not None and not timer.is_completed:
            timer.cancel()  # always cancel the losing timers

    def _cancel_timers(self) -> None:
        for timer in (self.deadline, self.connect_timer, self.grace_timer):
            self._cancel(timer)
        self.deadline = self.connect_timer = self.grace_timer = None
