"""The Realtime API's events as the openai SDK models them: what the local Realtime server
(tests/support/realtime_server.py) sends must be a server event of its dialect, and what it receives a client event.

Grounded in the SDK's own generated models (openai 3.63.0, generated from OpenAI's OpenAPI spec):
GA `openai.types.realtime.RealtimeServerEvent` / `RealtimeClientEvent`, beta (Azure preview,
`OpenAI-Beta: realtime=v1`) `openai.types.beta.realtime.RealtimeServerEvent` / `RealtimeClientEvent`.
Each union is discriminated by `type`; its member is validated with pydantic. The SDK's models accept
unknown fields (they are lenient readers); the service is not: a client event with a field it does not
know is refused with `unknown_parameter` ("Unknown parameter: 'session.tools[0].meta'.", param
`session.tools[0].meta`: the service's words, quoted in livekit/agents#3210 and
openai/openai-realtime-api-beta#9), so unknown fields are problems here, both ways.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from openai.types.beta.realtime import RealtimeClientEvent as BetaClientEvent
from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent
from openai.types.realtime import RealtimeClientEvent as GaClientEvent
from openai.types.realtime import RealtimeServerEvent as GaServerEvent
from pydantic import BaseModel, ValidationError

Event = dict[str, Any]


# Fields of server events that the API reference's own examples show and the SDK's models lack (the
# session object's id/object/expires_at in session.created/updated, GA and beta; a transcription delta's
# obfuscation; cached token details in usage). The service sends them; nothing else unmodelled is sent.
DOCUMENTED_EXTRAS = {"session.id", "session.object", "session.expires_at", "obfuscation",
                     "response.usage.input_token_details.cached_tokens_details"}


class NonConformingEvent(AssertionError):
    """The local server was about to send an event the SDK's models reject: the test server is wrong."""


@dataclass(frozen=True)
class Problem:
    """Why the service would refuse a client event, in the shape of its `error` event."""

    code: str  # unknown_parameter, missing_required_parameter, invalid_value, invalid_type
    param: str | None
    message: str


def _members(union: object) -> dict[str, type[BaseModel]]:
    """The union's models by their `type` literal."""
    (inner, *_) = typing.get_args(union)  # Annotated[Union[...], PropertyInfo(discriminator="type")]
    members: dict[str, type[BaseModel]] = {}
    for model in typing.get_args(inner):
        for name in typing.get_args(model.model_fields["type"].annotation):
            members[name] = model
    return members


SERVER = {True: _members(GaServerEvent), False: _members(BetaServerEvent)}
CLIENT = {True: _members(GaClientEvent), False: _members(BetaClientEvent)}


def _path(location: tuple[int | str, ...]) -> str:
    """`session.tools[0].name`; cut at a union member's tag (a model name: the value matched none)."""
    path = ""
    for part in location:
        if isinstance(part, str) and part[:1].isupper():
            break
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _unknown_fields(value: object, path: str) -> list[str]:
    """Fields the models do not define, anywhere in a validated event."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        found += [f"{path}.{key}" if path else key for key in value.model_extra or {}]
        for name in type(value).model_fields:
            found += _unknown_fields(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list):
        for i, element in enumerate(value):
            found += _unknown_fields(element, f"{path}[{i}]")
    return found


def problems(event: Event, models: dict[str, type[BaseModel]]) -> list[Problem]:
    """Why `event` is not one of `models` (empty: it conforms)."""
    kind = event.get("type")
    model = models.get(kind) if isinstance(kind, str) else None
    if model is None:
        return [Problem("invalid_value", "type", f"Invalid value: {kind!r}. Not an event of this dialect.")]
    try:
        parsed = model.model_validate(event)
    except ValidationError as exc:
        found: dict[str, Problem] = {}
        for error in exc.errors():
            param = _path(error["loc"])
            in_union = any(isinstance(part, str) and part[:1].isupper() for part in error["loc"])
            if error["type"] == "missing" and not in_union:
                found.setdefault(param, Problem("missing_required_parameter", param,
                                                f"Missing required parameter: '{param}'."))
            else:
                where = ".".join(str(part) for part in error["loc"])
                detail = f"matches none of its types (e.g. {where}: {error['msg']})" if in_union else error["msg"]
                found.setdefault(param, Problem("invalid_value", param, f"Invalid value for '{param}': {detail}."))
        return list(found.values())
    return [Problem("unknown_parameter", param, f"Unknown parameter: '{param}'.")
            for param in _unknown_fields(parsed, "")]


def client_problems(event: Event, ga: bool) -> list[Problem]:
    """Why the service would refuse this client event (schema only; the server checks the rest)."""
    return problems(event, CLIENT[ga])


def check_server_event(event: Event, ga: bool) -> None:
    """Raise NonConformingEvent unless `event` is a server event of the dialect, as the SDK models it."""
    found = [p for p in problems(event, SERVER[ga])
             if not (p.code == "unknown_parameter" and p.param in DOCUMENTED_EXTRAS)]
    if found:
        raise NonConformingEvent(f"{'GA' if ga else 'beta'} {event.get('type')!r}: "
                                 + "; ".join(f"{p.code} {p.param}: {p.message}" for p in found))
