"""The call APIs (function-key auth): place a call, read its status and record, transfer it, hang it up.

Transfers and hang-ups are raised to the call's orchestration, which owns every Call Automation action
on a live call, so an API request and the agent can never act on a call at the same time.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from callbacks.acs_events import CallEnded, raise_event
from callbacks.incoming import ORCHESTRATION, Orchestrations, callback_url, media_streaming, session_input
from callbacks.replies import Reply, error, refused
from callbacks.runtime import Worker
from callbacks.wire import WireError, is_call_id, json_body
from switchboard.logs import bind_call, mask_phone
from switchboard.session_models import CallSession

log = logging.getLogger(__name__)

E164 = r"^\+[1-9][0-9]{6,14}$"
M = TypeVar("M", bound=BaseModel)


class NewCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(pattern=E164)
    scenario: str | None = Field(None, max_length=64)
    caller_id: str | None = Field(None, pattern=E164, description="Number shown to the callee")


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str | None = Field(None, pattern=E164)
    reason: str = Field("requested through the API", max_length=200)


def _parse(model: type[M], body: bytes) -> M | Reply:
    try:
        return model.model_validate(json_body(body) if body else {})
    except WireError as exc:
        return refused(exc)
    except ValidationError as exc:
        first = exc.errors()[0]
        return error(400, "bad_request", f"{'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']}")


async def place_call(worker: Worker, client: Orchestrations, body: bytes) -> Reply:
    request = _parse(NewCall, body)
    if isinstance(request, Reply):
        return request
    catalog = worker.agents.current
    name = request.scenario or worker.settings.default_scenario
    if name not in catalog.scenarios:
        return error(400, "bad_request", f"unknown scenario {name!r}")
    scenario = catalog.scenario(name)
    caller_id = request.caller_id or next(iter(scenario.spec.phone_numbers), None)
    if caller_id is None:
        return error(400, "bad_request", "caller_id is required: the scenario has no phone number")
    call_id = str(uuid.uuid4())
    with bind_call(call_id):
        from azure.communication.callautomation import PhoneNumberIdentifier  # noqa: PLC0415

        session = CallSession(call_id=call_id, scenario=name, current_agent=scenario.spec.entry_agent,
                              caller=request.to, callee=caller_id, context={"direction": "outbound"})
        await worker.store.create(session)
        try:
            created = await worker.acs.create_call(
                PhoneNumberIdentifier(request.to), callback_url(worker, call_id),
                media_streaming=media_streaming(worker, call_id), operation_context="outbound",
                source_caller_id_number=PhoneNumberIdentifier(caller_id),
                cognitive_services_endpoint=worker.settings.speech_endpoint)
        except Exception:
            await worker.store.delete(call_id)
            log.exception("placing the call failed")
            return error(502, "acs_error", "ACS did not accept the call")
        session.call_connection_id = created.call_connection_id
        session.correlation_id = created.correlation_id

        def placed(stored: CallSession) -> None:  # callbacks for this call carry ACS's correlation id
            stored.call_connection_id, stored.correlation_id = created.call_connection_id, created.correlation_id

        await worker.store.update(call_id, placed)
        await client.start_new(ORCHESTRATION, call_id, session_input(worker, session))
        log.info("outbound call placed", extra={"scenario": name, "callee": mask_phone(request.to)})
        return Reply(201, {"call_id": call_id, "call_connection_id": created.call_connection_id, "scenario": name})


def _status_body(status: Any) -> dict[str, Any] | None:
    runtime = getattr(status, "runtime_status", None)
    if runtime is None:
        return None
    return {"runtime_status": getattr(runtime, "value", str(runtime)), "custom_status": status.custom_status,
            "output": status.output, "created_time": str(status.created_time or ""),
            "last_updated_time": str(status.last_updated_time or "")}


def _malformed_id() -> Reply:
    """An id no call can have: refused before it reaches the Durable client, which puts it in a URL."""
    return error(400, "bad_request", "malformed call id")


async def call_status(worker: Worker, client: Orchestrations, call_id: str) -> Reply:
    if not is_call_id(call_id):
        return _malformed_id()
    orchestration = _status_body(await client.get_status(call_id))
    session = await worker.store.get(call_id)
    if orchestration is None and session is None:
        return error(404, "unknown_call", "no such call")
    live: dict[str, Any] | None = None
    if session is not None:
        live = {"scenario": session.scenario, "agent": session.current_agent, "status": session.status.value,
                "caller": mask_phone(session.caller), "turns": len(await worker.store.turns(call_id)),
                "handoffs": len(await worker.store.handoffs(call_id))}
    return Reply(200, {"call_id": call_id, "orchestration": orchestration, "session": live})


async def transfer(worker: Worker, client: Orchestrations, call_id: str, body: bytes) -> Reply:
    if not is_call_id(call_id):
        return _malformed_id()
    request = _parse(TransferRequest, body)
    if isinstance(request, Reply):
        return request
    if await worker.store.get(call_id) is None:
        return error(404, "unknown_call", "no such call in progress")
    return await _request(client, call_id, "TransferRequested", request.model_dump(exclude_none=True), "transfer")


async def hang_up(worker: Worker, client: Orchestrations, call_id: str) -> Reply:
    if not is_call_id(call_id):
        return _malformed_id()
    if await worker.store.get(call_id) is None:
        return error(404, "unknown_call", "no such call in progress")
    return await _request(client, call_id, "HangupRequested", {"reason": "requested through the API"}, "hang-up")


async def _request(client: Orchestrations, call_id: str, name: str, data: dict[str, Any], what: str) -> Reply:
    """Raise a request to the call's orchestration; a finished or unreachable one is an error, not a crash."""
    try:
        await raise_event(client, call_id, name, data)
    except CallEnded:  # its session outlived it (e.g. the record is still to be written)
        return error(409, "call_ended", "the call has ended")
    except Exception:
        log.exception("raising %s failed", name)
        return error(503, "unavailable", "the call's orchestration could not be reached; retry")
    return Reply(202, {"call_id": call_id, "requested": what})


async def call_record(worker: Worker, call_id: str) -> Reply:
    if not is_call_id(call_id):
        return _malformed_id()
    record = await worker.records.get(call_id)
    if record is None:
        return error(404, "not_found", "no record for this call (yet)")
    return Reply(200, record.model_dump(mode="json", by_alias=True))
