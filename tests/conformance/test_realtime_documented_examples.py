"""OpenAI Realtime API: the API reference's example events, checked against the openai SDK's models and read
by our edge (media_host/pipelines/realtime/protocol.py), in both dialects.

Grounded in:
- The reference's examples, verbatim, in tests/conformance/realtime_reference_examples.json: the
  `x-oaiMeta.example` of each event schema of OpenAI's OpenAPI spec (github.com/openai/openai-openapi),
  which the reference pages render. GA: openapi.yaml@f85dbe2 (2026-08-21),
  https://platform.openai.com/docs/api-reference/realtime-server-events and .../realtime-client-events.
  Beta (Azure's preview dialect): openapi.yaml@498c71d (2025-04-29, before GA), now
  https://platform.openai.com/docs/api-reference/realtime-beta-server-events and .../realtime-beta-client-events.
- The openai SDK's generated models, openai 3.63.0: `openai.types.realtime` (GA) and
  `openai.types.beta.realtime` (beta) RealtimeServerEvent / RealtimeClientEvent, through
  tests/support/realtime_events.py, as the local Realtime server uses them.

Not checkable without the service: the order and timing of a live session's events (the local server follows
the documented order, tests/support/realtime_responses.py), Azure's own deviations beyond the transcription
deployment (test_realtime_azure.py), and what the service does with a value the models accept.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from media_host.pipelines.realtime.protocol import ResponseDone, canonical_type, parse
from tests.support.realtime_events import CLIENT, DOCUMENTED_EXTRAS, SERVER, Problem, client_problems, problems

EXAMPLES = json.loads((Path(__file__).parent / "realtime_reference_examples.json").read_text())

# Examples the SDK's models (generated from the same spec's schemas) reject, and why. Kept exact: an
# example leaving this list (or joining it) fails the test.
ERRATA = {
    ("ga", "client", "response.create", 1): "its input has an item_reference, which the SDK's GA input items lack",
    ("ga", "server", "conversation.item.retrieved", 0): "assistant content typed `audio` (beta's; GA: output_audio)",
    ("ga", "server", "response.output_item.done", 0): "assistant content typed `text` (beta's; GA: output_text)",
    ("ga", "server", "input_audio_buffer.dtmf_event_received", 0): "its type has a leading space",
    ("beta", "client", "response.create", 0): "max_output_tokens: the beta field is max_response_output_tokens",
    ("beta", "server", "conversation.item.input_audio_transcription.completed", 0): "no usage, which the SDK's "
                                                                                   "model (newer) requires",
}

# What the pipeline reads of each server event it handles (RealtimeCall.handlers, responses.py, playback.py,
# holding.py, session.py): every documented example must carry it, under that name. `[]`: each element.
READS: dict[str, tuple[str, ...]] = {
    "error": ("error.type", "error.code", "error.message"),
    "rate_limits.updated": ("rate_limits[].name", "rate_limits[].limit", "rate_limits[].remaining"),
    "input_audio_buffer.speech_started": ("audio_start_ms", "item_id"),
    "input_audio_buffer.speech_stopped": ("audio_end_ms", "item_id"),
    "input_audio_buffer.committed": ("item_id",),
    "conversation.item.input_audio_transcription.completed": ("item_id", "transcript"),
    "conversation.item.input_audio_transcription.failed": ("item_id",),
    "response.created": ("response.id",),
    "response.output_item.added": ("response_id", "item.type"),
    "response.output_audio.delta": ("response_id", "item_id", "delta"),
    "response.output_audio.done": ("response_id", "item_id"),
    "response.output_audio_transcript.delta": ("response_id", "item_id", "delta"),
    "response.output_audio_transcript.done": ("response_id", "item_id", "transcript"),
    "response.function_call_arguments.done": ("response_id", "call_id", "arguments"),
    "response.done": ("response.id", "response.status", "response.output"),
    "session.updated": ("session",),
}


def published(text: str) -> list[dict[str, Any]]:
    """The events of an example as published: // comments and trailing commas dropped, one or more objects."""
    out, in_string, escaped, i = "", False, False, 0
    while i < len(text):
        char = text[i]
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
            continue
        out += char
        i += 1
    out = re.sub(r",(\s*[}\]])", r"\1", out)
    decoder, events, at = json.JSONDecoder(), [], 0
    while out[at:].strip():
        at += len(out[at:]) - len(out[at:].lstrip())
        event, at = decoder.raw_decode(out, at)
        events.append(event)
    return events


def examples(dialect: str, direction: str) -> list[tuple[str, int, dict[str, Any]]]:
    return [(e["event"], n, event) for e in EXAMPLES[dialect]["examples"] if e["direction"] == direction
            for n, event in enumerate(published(e["text"]))]


CASES = [(dialect, direction, name, n, event) for dialect in ("ga", "beta") for direction in ("server", "client")
         for name, n, event in examples(dialect, direction)]


def refusals(dialect: str, direction: str, event: dict[str, Any]) -> list[Problem]:
    """What the SDK's models (as the local server applies them) refuse in an event."""
    ga = dialect == "ga"
    if direction == "client":
        return client_problems(event, ga)
    return [p for p in problems(event, SERVER[ga])
            if not (p.code == "unknown_parameter" and p.param in DOCUMENTED_EXTRAS)]


@pytest.mark.parametrize(("dialect", "direction", "name", "n", "event"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}-{c[3]}" for c in CASES])
def test_each_documented_example_is_an_event_of_its_dialect(
        dialect: str, direction: str, name: str, n: int, event: dict[str, Any]) -> None:
    found = refusals(dialect, direction, event)
    erratum = ERRATA.get((dialect, direction, name, n))
    if erratum is None:
        assert found == [], f"the SDK's models reject the documented {name}"
    else:
        assert found, f"listed as an erratum ({erratum}) but the SDK's models accept it now"


def test_the_allowed_unmodelled_fields_are_those_the_examples_show() -> None:
    """The local server may send a field the SDK does not model only if the reference's examples show it."""
    shown = {p.param for dialect in ("ga", "beta") for _, _, event in examples(dialect, "server")
             for p in problems(event, SERVER[dialect == "ga"]) if p.code == "unknown_parameter"}
    assert shown == DOCUMENTED_EXTRAS


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_our_edge_reads_every_documented_server_event(dialect: str) -> None:
    """protocol.parse takes each documented event (as its JSON text) and names it in the GA dialect the
    pipeline speaks: a GA server event's name, whichever dialect sent it."""
    for name, _, event in examples(dialect, "server"):
        parsed = parse(json.dumps(event))
        assert parsed is not None, name
        assert parsed["type"] == canonical_type(event["type"])
        if (dialect, "server", name, 0) not in ERRATA:
            assert parsed["type"] in SERVER[True], f"{name} is read as {parsed['type']}, not a GA event"
        assert {k: v for k, v in parsed.items() if k != "type"} == {k: v for k, v in event.items() if k != "type"}


def _present(value: Any, path: list[str]) -> bool:
    if not path:
        return value is not None
    head, rest = path[0], path[1:]
    if head.endswith("[]"):
        items = value.get(head[:-2]) if isinstance(value, dict) else None
        return isinstance(items, list) and bool(items) and all(_present(item, rest) for item in items)
    return isinstance(value, dict) and head in value and _present(value[head], rest)


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_every_field_the_pipeline_reads_is_in_the_documented_events(dialect: str) -> None:
    seen = set()
    for name, _, event in examples(dialect, "server"):
        parsed = parse(json.dumps(event))
        assert parsed is not None
        for path in READS.get(parsed["type"], ()):
            assert _present(parsed, path.split(".")), f"{dialect} {name}: no {path}"
        seen.add(parsed["type"])
    assert set(READS) <= seen, f"no documented example of {sorted(set(READS) - seen)}"


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_response_done_is_read_as_the_sdk_reads_it(dialect: str) -> None:
    """The decision to run tools rests on response.done: our reading of status, output and calls agrees
    with the SDK model's, for every documented response.done, and for one of a cancelled function call."""
    ga = dialect == "ga"
    documented = [event for name, _, event in examples(dialect, "server") if name == "response.done"]
    cancelled = {"type": "response.done", "event_id": "event_1", "response": {
        "object": "realtime.response", "id": "resp_2", "status": "cancelled",
        "status_details": {"type": "cancelled", "reason": "turn_detected"}, "output": [
            {"id": "item_1", "object": "realtime.item", "type": "function_call", "status": "incomplete",
             "name": "transfer", "call_id": "call_1", "arguments": "{\"reas"}]}}
    for event in [*documented, cancelled]:
        assert refusals(dialect, "server", event) == []
        model = SERVER[ga]["response.done"].model_validate(event).response  # type: ignore[attr-defined]
        parsed = parse(json.dumps(event))
        assert parsed is not None
        done = ResponseDone.parse(parsed)
        assert (done.id, done.status) == (model.id, model.status)
        assert len(done.output) == len(model.output or [])
        calls = [item for item in model.output or [] if item.type == "function_call"]
        assert [c.call_id for c in done.calls] == [c.call_id for c in calls if c.status in (None, "completed")]
        assert list(done.unfinished) == [c.call_id for c in calls if c.status not in (None, "completed")]
        assert done.completed == (model.status == "completed")
    assert not ResponseDone.parse(cancelled).completed


def test_the_documented_client_events_are_ones_the_local_server_accepts() -> None:
    """The stand-in is no stricter than the reference: each documented client event of the dialect passes
    its schema check (but the errata above)."""
    for dialect in ("ga", "beta"):
        for name, n, event in examples(dialect, "client"):
            if (dialect, "client", name, n) not in ERRATA:
                assert client_problems(event, dialect == "ga") == [], f"{dialect} {name}"
        assert set(CLIENT[dialect == "ga"]) >= {name for name, _, _ in examples(dialect, "client")}
