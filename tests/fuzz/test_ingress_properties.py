"""Properties of the HTTP ingress parsers: Event Grid deliveries, Call Automation callbacks, the call
APIs' bodies and ids (callbacks/wire.py, callbacks/calls_api.py), and the media host's request targets
(media_host/http.py).

Whatever the body, a parser returns typed events or raises `WireError` (whose text is the 400's
reason); valid payloads round-trip through their models. Inputs are the captured payloads
(tests/fixtures/payloads), mutations of them, and arbitrary bytes and JSON. `FUZZ_EXAMPLES` as in
test_ws_edge_properties.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from random import Random
from typing import Any, TypeVar, cast

from hypothesis import given
from hypothesis import strategies as st

from callbacks import calls_api, eventgrid, wire
from callbacks.incoming import Orchestrations
from callbacks.replies import Reply
from callbacks.runtime import Worker
from local_stack.acs import incoming_call_event
from media_host.http import request_path, request_query
from tests.fuzz import seeds
from tests.fuzz.mutate import Json, dumps, frame
from tests.fuzz.test_ws_edge_properties import SMOKE, rngs

T = TypeVar("T")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)


def as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", errors="surrogatepass")


def mutated(rng: Random, valid: Json, vocabulary: tuple[str, ...]) -> bytes:
    return as_bytes(frame(valid, rng, vocabulary, valid=0.1, mutated=0.7))


def incoming(rng: Random) -> Json:
    return incoming_call_event(rng.choice(("+18005550100", "+18005550200")), "+14255550123",
                               correlation_id=seeds.uuid_from(rng))


def callbacks(rng: Random) -> Json:
    return seeds.callback_array(rng, seeds.uuid_from(rng), seeds.uuid_from(rng), "c2VydmVy")


def typed_or_refused(parse: Callable[[], T]) -> T | None:
    """What `parse` returns, or None when it refused the input, with a WireError that gives a reason."""
    try:
        return parse()
    except wire.WireError as exc:
        reason = str(exc)
    assert reason
    return None


bodies = st.one_of(st.binary(max_size=300), json_values.map(lambda v: dumps(v).encode()))


# --- Event Grid ----------------------------------------------------------------------------------------


@SMOKE
@given(rng=rngs)
def test_valid_incoming_calls_parse_and_round_trip(rng: Random) -> None:
    event = incoming(rng)
    [parsed] = wire.grid_events(json.dumps([event]).encode())
    call = wire.incoming_call(parsed.data)
    assert wire.is_call_id(call.correlation_id)
    assert wire.incoming_call(call.model_dump(by_alias=True)) == call


@SMOKE
@given(rng=rngs)
def test_mutated_deliveries_are_typed_or_refused_with_a_reason(rng: Random) -> None:
    body = mutated(rng, [incoming(rng)] if rng.random() < 0.8 else seeds.validation_events(rng), seeds.GRID_TYPES)
    events = typed_or_refused(lambda: wire.grid_events(body)) or []
    for event in (e for e in events if e.kind == wire.INCOMING_CALL):
        call = typed_or_refused(lambda event=event: wire.incoming_call(event.data))  # type: ignore[misc]
        assert call is None or wire.is_call_id(call.correlation_id)  # it becomes a Durable instance id


@SMOKE
@given(body=bodies)
def test_arbitrary_deliveries_are_typed_or_refused_with_a_reason(body: bytes) -> None:
    typed_or_refused(lambda: wire.grid_events(body))


@SMOKE
@given(origin=st.one_of(st.none(), st.text(max_size=60)))
def test_abuse_protection_allows_event_grid_only(origin: str | None) -> None:
    status, headers = eventgrid.abuse_protection(origin)
    allowed = origin is not None and origin.strip().lower() == "eventgrid.azure.net"
    assert (status, bool(headers)) == ((200, True) if allowed else (400, False))


# --- Call Automation callbacks -------------------------------------------------------------------------


@SMOKE
@given(rng=rngs)
def test_valid_callbacks_parse_and_round_trip(rng: Random) -> None:
    events = wire.callback_events(json.dumps(callbacks(rng)).encode())
    for event in events:
        assert event.name == event.type.removeprefix("Microsoft.Communication.")
        assert wire.CallbackEvent.model_validate(event.model_dump(by_alias=True)) == event
        assert event.details.call_connection_id


@SMOKE
@given(rng=rngs)
def test_mutated_callbacks_are_typed_or_refused_with_a_reason(rng: Random) -> None:
    body = mutated(rng, callbacks(rng), seeds.CALLBACK_TYPES)
    for event in typed_or_refused(lambda: wire.callback_events(body)) or []:
        _ = event.details  # what the handler reads next must not fail on an accepted event


@SMOKE
@given(body=bodies)
def test_arbitrary_callbacks_are_typed_or_refused_with_a_reason(body: bytes) -> None:
    typed_or_refused(lambda: wire.callback_events(body))


# --- call APIs -----------------------------------------------------------------------------------------


@SMOKE
@given(rng=rngs, data=st.data())
def test_call_api_bodies_are_a_request_or_a_400(rng: Random, data: st.DataObject) -> None:
    valid = {"to": "+14255550123", "scenario": "banking"} if rng.random() < 0.5 else {"target": "+18005550199"}
    body = data.draw(st.one_of(bodies, st.just(mutated(rng, valid, ("to", "target")))))
    for model in (calls_api.NewCall, calls_api.TransferRequest):
        parsed = calls_api._parse(model, body)
        if isinstance(parsed, Reply):
            assert parsed.status in (400, 413)
            assert parsed.body["error"]["message"]
        else:
            assert isinstance(parsed, model)


class Untouchable:
    """A worker and a Durable client that must not be reached."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{name} was reached with a malformed call id")


async def _replies(call_id: str) -> list[Reply]:
    worker, client = cast(Worker, Untouchable()), cast(Orchestrations, Untouchable())
    return [await calls_api.call_status(worker, client, call_id), await calls_api.hang_up(worker, client, call_id),
            await calls_api.transfer(worker, client, call_id, b"{}"), await calls_api.call_record(worker, call_id)]


@SMOKE
@given(call_id=st.text(max_size=200))
def test_malformed_call_ids_never_reach_the_durable_client(call_id: str) -> None:
    if wire.is_call_id(call_id):
        assert not set(call_id) & set("/\\?#% \t\r\n")
        assert len(call_id) <= 128
        return
    for reply in asyncio.run(_replies(call_id)):
        assert (reply.status, reply.body["error"]["code"]) == (400, "bad_request")


# --- the media host's request targets ------------------------------------------------------------------


@SMOKE
@given(target=st.text(max_size=200))
def test_request_targets_split_without_raising(target: str) -> None:
    path, query = request_path(target), request_query(target)
    assert "?" not in path
    assert "#" not in path
    assert path == target or target.startswith(path)
    assert "#" not in query
    if target.startswith("//") and "?" not in target and "#" not in target:
        assert path == target  # never read as an authority: `//host/health` is not `/health`
