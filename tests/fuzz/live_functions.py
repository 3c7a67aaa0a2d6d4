"""The Function App's HTTP endpoints under fuzz, through the local function host (real aiohttp, real
azure-functions request objects, the real ACS SDK against LocalAcs, the real Durable client):

- `eventgrid`: the webhook (`POST`/`OPTIONS /api/eventgrid/incoming-call`) and the Event Grid trigger
  (`/runtime/webhooks/eventgrid?functionName=on_incoming_call`), with IncomingCall and validation events;
- `callbacks`: Call Automation callbacks (`/api/callbacks/{id}?token=`) and media-host events
  (`/api/calls/{id}/events/{name}?token=`) for calls answered at the start;
- `call_apis`: `POST /api/calls`, `GET`/`DELETE /api/calls/{id}`, `.../transfer`, `.../record`, `/api/health`.

Tokens are named by variant in the input and made when it runs (they expire), so a saved input replays.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from random import Random
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from local_stack.acs import incoming_call_event
from switchboard.tokens import Purpose, TokenSigner
from tests.fuzz import seeds
from tests.fuzz.mutate import WEIRD_TEXT, Json, dumps, frame, mutate, random_bytes, random_text
from tests.fuzz.report import Outcome, reason_head
from tests.support.functions_harness import BANKING, CALLER, CLINIC, UNKNOWN, Harness

TOKENS = ("valid", "valid", "valid", "valid", "other_call", "forged", "expired", "wrong_purpose", "missing",
          "garbage")


@dataclass
class Call:
    call_id: str
    connection_id: str
    server_call_id: str


@dataclass
class HttpInput:
    target: str
    index: int
    method: str
    path: str  # percent-encoded, with its query; `{token}` is replaced by the token variant when it runs
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    token: str = ""  # variant: valid | other_call | forged | expired | wrong_purpose | missing | garbage
    call_id: str = ""  # the call the token is for

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "body": base64.b64encode(self.body).decode()}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> HttpInput:
        return cls(**{**doc, "body": base64.b64decode(doc["body"])})


def _encode(doc: Json | bytes | str) -> bytes:
    return doc if isinstance(doc, bytes) else (doc if isinstance(doc, str) else dumps(doc)).encode()


def _body(rng: Random, valid: Json, vocabulary: tuple[str, ...]) -> bytes:
    """The valid body, a mutation of it, damaged text, or anything at all."""
    roll = rng.random()
    if roll < 0.35:
        return _encode(valid)
    if roll < 0.92:
        return _encode(frame(valid, rng, vocabulary, valid=0.0, mutated=0.75))
    return rng.choice((b"", random_bytes(rng, 800), random_text(rng, 800).encode(), b"[]", b"{}", b"null"))


def _weird_id(rng: Random) -> str:
    return rng.choice((*WEIRD_TEXT[:12], "a/b", "..", ".", "x" * 3000, "%00", "call?x=1", "café", "@entity@k"))


def _call_id(rng: Random, pool: list[Call]) -> str:
    roll = rng.random()
    if roll < 0.7:
        return rng.choice(pool).call_id
    return seeds.uuid_from(rng) if roll < 0.85 else _weird_id(rng)


def _path_id(call_id: str) -> str:
    return quote(call_id, safe="")


# --- eventgrid -----------------------------------------------------------------------------------------


def eventgrid_input(rng: Random, index: int, pool: list[Call]) -> HttpInput:
    schema = "cloudevents" if rng.random() < 0.3 else "eventgrid"
    event = incoming_call_event(rng.choice((BANKING, CLINIC, UNKNOWN)), CALLER, correlation_id=seeds.uuid_from(rng),
                                schema=schema)  # type: ignore[arg-type]
    delivery: Json = event if schema == "cloudevents" and rng.random() < 0.5 else [event]
    if rng.random() < 0.15:
        delivery = seeds.validation_events(rng)
    body = _body(rng, delivery, seeds.GRID_TYPES)
    roll = rng.random()
    if roll < 0.5:
        return HttpInput("eventgrid", index, "POST", "/api/eventgrid/incoming-call", body,
                         {"Content-Type": "application/json"})
    if roll < 0.85:
        kind = rng.choice(("Notification", "Notification", "SubscriptionValidation", "", "Nope"))
        name = "on_incoming_call" if rng.random() < 0.9 else rng.choice(("nope", "acs_callbacks", "x" * 300))
        return HttpInput("eventgrid", index, "POST", f"/runtime/webhooks/eventgrid?functionName={quote(name)}", body,
                         {"aeg-event-type": kind, "Content-Type": "application/json"})
    origin = rng.choice(("eventgrid.azure.net", "EventGrid.Azure.Net ", "evil.example", "", "*", "eventgrid.net,x"))
    method = "OPTIONS" if roll < 0.95 else rng.choice(("GET", "PUT", "DELETE"))
    headers = {"WebHook-Request-Origin": origin} if rng.random() < 0.9 else {}
    return HttpInput("eventgrid", index, method, "/api/eventgrid/incoming-call", b"", headers)


# --- callbacks -----------------------------------------------------------------------------------------


def callbacks_input(rng: Random, index: int, pool: list[Call]) -> HttpInput:
    call = rng.choice(pool)
    call_id = call.call_id if rng.random() < 0.9 else _call_id(rng, pool)
    token = rng.choice(TOKENS)
    if rng.random() < 0.7:
        events = seeds.callback_array(rng, call.call_id, call.connection_id, call.server_call_id)
        headers = {"Content-Type": "application/json"}
        if rng.random() < 0.2:
            headers["Authorization"] = rng.choice(("Bearer x.y.z", "Bearer", "junk", "Bearer " + "a" * 5000))
        return HttpInput("callbacks", index, "POST", f"/api/callbacks/{_path_id(call_id)}?token={{token}}",
                         _body(rng, events, seeds.CALLBACK_TYPES), headers, token, call_id)
    name, data = seeds.media_host_event(rng)
    if rng.random() < 0.15:
        name = rng.choice(("Nope", "CallConnected", "agenthandoff", "x" * 100, "%2e%2e"))
    return HttpInput("callbacks", index, "POST", f"/api/calls/{_path_id(call_id)}/events/{name}?token={{token}}",
                     _body(rng, data, ("reason", "target")), {"Content-Type": "application/json"}, token, call_id)


# --- call APIs -----------------------------------------------------------------------------------------


def call_apis_input(rng: Random, index: int, pool: list[Call]) -> HttpInput:
    roll = rng.random()
    path_id = _path_id(_call_id(rng, pool))
    if roll < 0.3:
        new = {"to": f"+1425555{rng.randrange(10000):04d}", "scenario": rng.choice(("banking", "clinic"))}
        if rng.random() < 0.3:
            new["caller_id"] = BANKING
        return HttpInput("call_apis", index, "POST", "/api/calls", _body(rng, new, ("to", "scenario")))
    if roll < 0.5:
        return HttpInput("call_apis", index, "GET", f"/api/calls/{path_id}")
    if roll < 0.6:
        return HttpInput("call_apis", index, "DELETE", f"/api/calls/{path_id}")
    if roll < 0.8:
        transfer = mutate({"target": "+18005550199", "reason": "fuzz"}, rng) if rng.random() < 0.6 else {}
        return HttpInput("call_apis", index, "POST", f"/api/calls/{path_id}/transfer", _encode(transfer))
    if roll < 0.9:
        return HttpInput("call_apis", index, "GET", f"/api/calls/{path_id}/record")
    path = rng.choice(("/api/health", "/api/calls", f"/api/calls/{path_id}/transfer", "/api/nope"))
    return HttpInput("call_apis", index, rng.choice(("GET", "PUT", "PATCH", "POST")), path, b"{}")


GENERATORS = {"eventgrid": eventgrid_input, "callbacks": callbacks_input, "call_apis": call_apis_input}


# --- running -------------------------------------------------------------------------------------------


def resolve_token(item: HttpInput, harness: Harness, pool: list[Call]) -> str:
    call_id = item.call_id
    variant = item.token
    if variant == "missing" or not variant:
        return ""
    if variant == "garbage":
        return quote(random_text(Random(item.index), 200), safe="")
    if variant == "forged":
        return TokenSigner("another-secret-0123456789").issue(call_id, Purpose.CALLBACK, 60)
    if variant == "expired":
        return harness.store.signer.issue(call_id, Purpose.CALLBACK, -1)
    if variant == "wrong_purpose":
        return harness.token(call_id, Purpose.MEDIA)
    if variant == "other_call":
        return harness.token(next((c.call_id for c in pool if c.call_id != call_id), "someone-else"))
    return harness.token(call_id)


async def send(item: HttpInput, harness: Harness, pool: list[Call], session: aiohttp.ClientSession) -> Outcome:
    path = item.path.replace("{token}", resolve_token(item, harness, pool)) if item.token else item.path
    url = URL(harness.host_url + path, encoded=True)  # as generated: no client-side normalisation
    try:
        async with session.request(item.method, url, data=item.body, headers=item.headers) as response:
            raw = await response.read()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return Outcome("dropped", type(exc).__name__)
    detail = ""
    try:
        doc = json.loads(raw) if raw else {}
    except ValueError:
        doc = {}
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, dict):
            detail = f"{err.get('code')}: {reason_head(str(err.get('message', '')))}"
        elif isinstance(err, str):
            detail = err
    status = response.status
    if status == 500 and detail == "internal":  # a function raised: the log line says whether by design
        return Outcome("error", "500 function raised")
    kind = "accepted" if status < 400 else "refused"
    return Outcome(kind, f"{status} {detail}".strip())
