"""Answering an `IncomingCall`: de-duplicate, route, seed the session, answer with media, start the session.

Event Grid delivers at least once, sometimes the same event several times at once: the correlation id
is claimed in Redis (SET NX) before anything else, so exactly one delivery answers. If answering fails,
the claim is released and the error raised, so Event Grid's retry gets another chance.

Late deliveries never answer a dead call: an event older than ANSWERABLE_FOR is dropped before any
I/O (after DEDUPE_TTL_SECONDS the claim is gone, and Event Grid keeps retrying for a day); a session
that already has a call connection means the call was answered; and when ACS says the
incomingCallContext is dead (answered elsewhere, or the call ended), the event is acknowledged, not
raised, because no retry could ever succeed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

from callbacks.runtime import Worker
from callbacks.wire import IncomingCallData
from switchboard.logs import bind_call, mask_phone
from switchboard.session_models import CallSession
from switchboard.settings import UnknownNumber
from switchboard.tokens import Purpose

log = logging.getLogger(__name__)

ORCHESTRATION = "call_session"
MEDIA_PATH = "/api/v1/media/stream"
# A call rings for seconds (ACS documents no exact lifetime for incomingCallContext): an event this old
# cannot be answered any more. Well under DEDUPE_TTL_SECONDS, so a redelivery after the claim expired
# is caught here, and well over any ring, so no answerable call is ever dropped.
ANSWERABLE_FOR = timedelta(minutes=5)
# What ACS answers for an incomingCallContext that is dead (already answered, or the call is gone):
# final, so the event is acknowledged. 401/403 (our credentials) and 408/429/5xx stay retryable.
GONE_STATUSES = frozenset({400, 404, 409, 410})


class Orchestrations(Protocol):
    """The parts of `DurableOrchestrationClient` the ingress uses."""

    async def start_new(self, orchestration_function_name: str, instance_id: str | None = None,
                        client_input: Any | None = None) -> str: ...

    async def raise_event(self, instance_id: str, event_name: str, event_data: Any = None) -> None: ...

    async def get_status(self, instance_id: str) -> Any: ...


@dataclass(frozen=True)
class Answered:
    outcome: str  # answered | rejected | duplicate | stale (too old to answer) | gone (ACS: no such call)
    call_id: str
    scenario: str | None = None
    call_connection_id: str | None = None
    answer_ms: float | None = None  # event in to answer request out (our own work, then the request)


def callback_url(worker: Worker, call_id: str) -> str:
    token = worker.store.issue_token(call_id, Purpose.CALLBACK, worker.settings.token_ttl_seconds)
    return f"{worker.settings.callback_base_url}/api/callbacks/{quote(call_id, safe='')}?token={token}"


def media_url(worker: Worker, call_id: str) -> str:
    token = worker.store.issue_token(call_id, Purpose.MEDIA, worker.settings.token_ttl_seconds)
    return f"{worker.settings.media_host_public_url}{MEDIA_PATH}?token={token}"


def media_streaming(worker: Worker, call_id: str) -> Any:
    from azure.communication.callautomation import (  # noqa: PLC0415 - loaded with the ACS client
        AudioFormat,
        MediaStreamingAudioChannelType,
        MediaStreamingContentType,
        MediaStreamingOptions,
        StreamingTransportType,
    )

    # enable_dtmf_tones: without it ACS streams no DtmfData (keys never reach the pipelines). "When DTMF is
    # enabled Azure Communication Services sends a DtmfData type": ACS audio streaming quickstart,
    # learn.microsoft.com/azure/communication-services/how-tos/call-automation/audio-streaming-quickstart;
    # sent as mediaStreamingOptions.enableDtmfTones (azure-communication-callautomation 1.6.0,
    # _generated/models WebSocketMediaStreamingOptions). Start-media-streaming takes no options: ACS reuses these.
    return MediaStreamingOptions(
        transport_url=media_url(worker, call_id), transport_type=StreamingTransportType.WEBSOCKET,
        content_type=MediaStreamingContentType.AUDIO, audio_channel_type=MediaStreamingAudioChannelType.MIXED,
        start_media_streaming=True, enable_bidirectional=True, audio_format=AudioFormat.PCM24_K_MONO,
        enable_dtmf_tones=True)


def session_input(worker: Worker, session: CallSession) -> dict[str, Any]:
    """The `call_session` orchestration's input: everything it needs, so it reads no settings itself."""
    scenario = worker.agents.current.scenario(session.scenario)
    settings = worker.settings
    return {"call_id": session.call_id, "call_connection_id": session.call_connection_id,
            "scenario": session.scenario, "entry_agent": session.current_agent,
            "human_queue": scenario.spec.policy.human_queue, "max_handoffs": scenario.spec.policy.max_handoffs,
            "auth_required": sorted(a.name for a in scenario.agents.values() if a.spec.requires_auth),
            "connect_timeout_s": settings.call_connect_timeout_seconds,
            "max_duration_s": settings.call_max_duration_seconds,
            "media_restart_attempts": settings.media_restart_attempts}


def _gone(exc: Exception) -> bool:
    """Whether ACS refused the answer because the call can no longer be answered (final)."""
    from azure.core.exceptions import HttpResponseError  # noqa: PLC0415 - only on this failure path

    return isinstance(exc, HttpResponseError) and exc.status_code in GONE_STATUSES


async def answer_incoming(worker: Worker, client: Orchestrations, call: IncomingCallData,
                          received_at: float | None = None, sent_at: datetime | None = None) -> Answered:
    """`received_at`: `time.perf_counter()` when the event arrived (for the answer-time figure);
    `sent_at`: the event's own time (`eventTime` / `time`), which a redelivery keeps."""
    with bind_call(call.correlation_id, call.correlation_id):
        if sent_at is not None:
            age = datetime.now(UTC) - (sent_at if sent_at.tzinfo else sent_at.replace(tzinfo=UTC))
            if age > ANSWERABLE_FOR:
                log.warning("dropping an IncomingCall too old to answer (a late redelivery)",
                            extra={"age_s": round(age.total_seconds())})
                return Answered("stale", call.correlation_id)
        return await _answer(worker, client, call, received_at if received_at is not None else time.perf_counter())


async def _answer(worker: Worker, client: Orchestrations, call: IncomingCallData, received_at: float) -> Answered:
    call_id = call.correlation_id
    settings = worker.settings
    if not await worker.store.claim("incoming", call_id, settings.dedupe_ttl_seconds):
        log.info("incoming call already handled (redelivery)")
        return Answered("duplicate", call_id)
    catalog = worker.agents.current
    scenario = catalog.scenario_for_number(call.to.number)
    if scenario is None and settings.unknown_number_action is UnknownNumber.DEFAULT:
        scenario = catalog.scenario(settings.default_scenario)
    if scenario is None:
        log.info("no scenario for the called number: rejecting", extra={"callee": mask_phone(call.to.number)})
        try:
            await worker.acs.reject_call(call.incoming_call_context, call_reject_reason="none")
        except Exception as exc:
            if _gone(exc):
                log.warning("the call can no longer be rejected (it ended): event dropped")
                return Answered("gone", call_id)
            await worker.store.release("incoming", call_id)  # a redelivery must get to reject it
            raise
        return Answered("rejected", call_id)
    session = CallSession(call_id=call_id, scenario=scenario.name, current_agent=scenario.spec.entry_agent,
                          correlation_id=call_id, caller=call.from_.number or call.from_.raw_id,
                          callee=call.to.number)
    answered, unanswered = None, False  # unanswered: a session is stored that no answer ever completed
    try:
        created = await worker.store.create(session)
        existing = None if created else await worker.store.get(call_id)
        unanswered = created or existing is not None
        if existing is not None and existing.call_connection_id:  # answered; its claim has since expired
            log.info("incoming call already answered (redelivery after the de-duplication key expired)")
            return Answered("duplicate", call_id)
        acs, callback, media = worker.acs, callback_url(worker, call_id), media_streaming(worker, call_id)
        answer_ms = (time.perf_counter() - received_at) * 1000
        answered = await acs.answer_call(
            call.incoming_call_context, callback, media_streaming=media, operation_context="answer",
            cognitive_services_endpoint=settings.speech_endpoint)
        session.call_connection_id = answered.call_connection_id
        await worker.store.update(call_id, lambda s: setattr(s, "call_connection_id", answered.call_connection_id))
        await client.start_new(ORCHESTRATION, call_id, session_input(worker, session))
    except Exception as exc:
        if answered is None and _gone(exc):  # no retry can succeed: acknowledge, keep the claim
            log.warning("the call can no longer be answered (answered already, or it ended): event dropped",
                        extra={"status": getattr(exc, "status_code", None)})
            if unanswered:  # no call will ever use it
                await worker.store.delete(call_id)
            return Answered("gone", call_id)
        if answered is None:  # nothing reached the caller: a redelivery may answer
            log.exception("answering the call failed; a redelivery may retry")
            await worker.store.release("incoming", call_id)
        else:  # answered once already: answering again would fail, so the call is left to ACS timeouts
            log.exception("the call was answered but its session could not start")
        raise
    log.info("call answered", extra={"scenario": scenario.name, "caller": mask_phone(session.caller),
                                     "answer_ms": round(answer_ms, 1)})
    return Answered("answered", call_id, scenario.name, answered.call_connection_id, answer_ms)
