"""Properties of the three WebSocket protocols at the edge (ACS media, AudioCodes Bot API, browser).

Every sequence of frames a peer can send ends, in the real adapter, in a call that was opened (and fed
only whole PCM16 samples) or in a `ProtocolViolation` with a close code, a short reason and a metric
kind; never in any other exception. Valid messages are accepted and survive a round trip through their
model, and what the host sends parses back to what it meant. Inputs: (a) valid messages drawn from the
models' fields, (b) mutations of valid messages (tests/fuzz/mutate.py), (c) arbitrary text and bytes.

`FUZZ_EXAMPLES` sets the examples per property (default 100). Generation is derandomized (no database),
so `make test` tries the same inputs every time; `make fuzz` sets FUZZ_DERANDOMIZE=0 to try new ones
(a failure prints the example and how to reproduce it).
"""

from __future__ import annotations

import base64
import json
import os
from random import Random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media_host.transports import audiocodes_models as ac
from media_host.transports import browser_models as web
from media_host.transports.acs import AcsAdapter
from media_host.transports.acs_models import STOP_AUDIO, SUPPORTED_RATES, InboundMessage, audio_message
from media_host.transports.audiocodes import AudioCodesAdapter
from media_host.transports.browser import BrowserAdapter
from media_host.transports.browser_models import WIRE_RATES, parse_client_message
from switchboard.session_models import CallSession
from tests.fuzz import seeds
from tests.fuzz.edge import EdgeOutcome, check_violation, drive, run
from tests.fuzz.mutate import Frame
from tests.fuzz.scripts import acs_script, audiocodes_script, browser_script

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
SMOKE = settings(max_examples=EXAMPLES, derandomize=os.environ.get("FUZZ_DERANDOMIZE", "1") != "0", database=None,
                 deadline=None, suppress_health_check=list(HealthCheck))
CALL = "call-fuzz"
SESSIONS = {CALL: CallSession(call_id=CALL, scenario="banking", current_agent="auth")}
DIGITS = st.text(alphabet="0123456789*#ABCD", min_size=1, max_size=8)
arbitrary_frames = st.lists(st.one_of(st.text(max_size=400), st.binary(max_size=400)), max_size=6)
rngs = st.integers(min_value=0, max_value=2**64).map(Random)  # a plain generator: fast, and its seed is printed


def pcm_chunks(rate: int) -> st.SearchStrategy[list[bytes]]:
    """Audio a peer may send: whole samples, from one sample to one second."""
    # Large binaries are slow to draw: the one-second boundary is covered by two fixed sizes instead.
    sizes = st.one_of(st.binary(min_size=2, max_size=2048), st.sampled_from((bytes(rate * 2), bytes(rate * 2 - 2))))
    return st.lists(sizes.map(lambda b: b[: len(b) // 2 * 2]), max_size=4)


def handled(outcome: EdgeOutcome) -> None:
    """The property every input must meet: a typed outcome, and a violation that can close a socket."""
    if outcome.closed is not None:
        check_violation(outcome.closed)


# --- ACS media -----------------------------------------------------------------------------------------


def acs_audio_frame(pcm: bytes, silent: bool) -> str:
    return json.dumps({"kind": "AudioData", "audioData": {"data": base64.b64encode(pcm).decode(), "silent": silent,
                                                          "timestamp": "2026-01-01T00:00:00Z"}})


@SMOKE
@given(rate=st.sampled_from(SUPPORTED_RATES), data=st.data())
def test_acs_valid_streams_are_accepted_and_round_trip(rate: int, data: st.DataObject) -> None:
    chunks = data.draw(pcm_chunks(rate))
    frames: list[Frame] = [json.dumps(seeds.acs_metadata(Random(rate), rate))]
    frames += [acs_audio_frame(chunk, data.draw(st.booleans())) for chunk in chunks]
    frames += [json.dumps({"kind": "DtmfData", "dtmfData": {"data": data.draw(DIGITS)}})]
    outcome = run(drive(AcsAdapter, frames, admission={"call_id": CALL}, sessions=SESSIONS))
    assert outcome.label == "accepted", outcome.closed
    assert outcome.channel is not None
    assert outcome.channel.audio_bytes == sum(map(len, chunks))
    for text in frames:
        assert isinstance(text, str)
        message = InboundMessage.model_validate_json(text)
        assert InboundMessage.model_validate_json(message.model_dump_json(by_alias=True)) == message


@SMOKE
@given(rng=rngs)
def test_acs_mutated_streams_end_in_a_typed_outcome(rng: Random) -> None:
    script = acs_script(rng, 0)
    handled(run(drive(AcsAdapter, script.frames, admission={"call_id": CALL}, sessions=SESSIONS)))


@SMOKE
@given(frames=arbitrary_frames)
def test_acs_arbitrary_frames_end_in_a_typed_outcome(frames: list[Frame]) -> None:
    handled(run(drive(AcsAdapter, frames, admission={"call_id": CALL}, sessions=SESSIONS)))


@SMOKE
@given(pcm=st.binary(max_size=1920))
def test_acs_outbound_audio_round_trips(pcm: bytes) -> None:
    doc = json.loads(audio_message(base64.b64encode(pcm).decode()))
    assert doc["Kind"] == "AudioData"
    assert doc["StopAudio"] is None
    assert base64.b64decode(doc["AudioData"]["Data"]) == pcm
    assert json.loads(STOP_AUDIO) == seeds.payload("acs_media_out_stop_audio")


# --- AudioCodes Bot API --------------------------------------------------------------------------------


@SMOKE
@given(formats=st.lists(st.sampled_from(seeds.AUDIOCODES_FORMATS), max_size=4), known=st.sampled_from(
    list(ac.MEDIA_FORMATS)), conversation=st.uuids().map(str), data=st.data())
def test_audiocodes_valid_sessions_are_accepted_and_round_trip(formats: list[str], known: str, conversation: str,
                                                               data: st.DataObject) -> None:
    offered = [*formats, known]
    chosen = ac.choose_format(offered)
    assert chosen is not None
    chunks = data.draw(st.lists(st.one_of(st.binary(min_size=2, max_size=2048),
                                          st.just(bytes(chosen.bytes_per_second))), max_size=4))
    chunks = [c if chosen.mulaw else c[: len(c) // 2 * 2] for c in chunks]
    initiate = seeds.audiocodes("session_initiate", conversation, supportedMediaFormats=offered)
    frames: list[Frame] = [json.dumps(initiate), json.dumps(seeds.audiocodes("user_stream_start", conversation))]
    frames += [json.dumps(seeds.audiocodes("user_stream_chunk", conversation,
                                           audioChunk=base64.b64encode(c).decode())) for c in chunks]
    frames += [json.dumps(seeds.audiocodes("activities_dtmf", conversation)),
               json.dumps(seeds.audiocodes("user_stream_stop", conversation))]
    outcome = run(drive(AudioCodesAdapter, frames))
    assert outcome.label == "accepted", outcome.closed
    per_byte = 2 if chosen.mulaw else 1  # µ-law bytes become PCM16 samples
    assert outcome.channel is not None
    assert outcome.channel.audio_bytes == per_byte * sum(map(len, chunks))
    for text in frames:
        assert isinstance(text, str)
        message = ac.INBOUND.validate_json(text)
        again = ac.INBOUND.validate_python(message.model_dump(by_alias=True, exclude_unset=True))
        assert again == message


@SMOKE
@given(rng=rngs)
def test_audiocodes_mutated_sessions_end_in_a_typed_outcome(rng: Random) -> None:
    handled(run(drive(AudioCodesAdapter, audiocodes_script(rng, 0).frames)))


@SMOKE
@given(frames=arbitrary_frames)
def test_audiocodes_arbitrary_frames_end_in_a_typed_outcome(frames: list[Frame]) -> None:
    handled(run(drive(AudioCodesAdapter, frames)))


@SMOKE
@given(text=st.text(), confidence=st.floats(0, 1), stream=st.integers(1, 10**6), pcm=st.binary(max_size=960),
       target=st.text(max_size=40))
def test_audiocodes_outbound_messages_parse_back(text: str, confidence: float, stream: int, pcm: bytes,
                                                 target: str) -> None:
    b64 = base64.b64encode(pcm).decode()
    assert json.loads(ac.play_stream_chunk(str(stream), b64)) == {"type": "playStream.chunk",
                                                                  "streamId": str(stream), "audioChunk": b64}
    assert json.loads(ac.hypothesis(text))["alternatives"] == [{"text": text}]
    assert json.loads(ac.recognition(text, confidence))["alternatives"] == [{"text": text, "confidence": confidence}]
    assert json.loads(ac.session_error(text)) == {"type": "session.error", "reason": text}
    [activity] = json.loads(ac.transfer_activity(target, text))["activities"]
    assert activity["name"] == "transfer"
    assert activity["activityParams"]["transferTarget"] == ac.transfer_target(target)


# --- browser softphone ---------------------------------------------------------------------------------


@SMOKE
@given(rate=st.sampled_from(WIRE_RATES), digits=DIGITS.filter(lambda d: "#" not in d), ping=st.text(max_size=64),
       data=st.data())
def test_browser_valid_calls_are_accepted_and_round_trip(rate: int, digits: str, ping: str,
                                                         data: st.DataObject) -> None:
    chunks = data.draw(pcm_chunks(rate))
    texts = [json.dumps(seeds.browser_start(Random(rate), rate)), json.dumps({"type": "dtmf", "digits": digits}),
             json.dumps({"type": "ping", "id": ping}), json.dumps({"type": "x-future", "n": 1})]
    outcome = run(drive(BrowserAdapter, [texts[0], *chunks, *texts[1:]], admission={"call_id": CALL},
                        sessions=SESSIONS))
    assert outcome.label == "accepted", outcome.closed
    assert outcome.channel is not None
    assert outcome.channel.audio_bytes == sum(map(len, chunks))
    for text in texts[:3]:
        message = parse_client_message(text)
        assert isinstance(message, web.Start | web.Dtmf | web.Ping)
        assert parse_client_message(message.model_dump_json(exclude_none=True)) == message


@SMOKE
@given(rng=rngs)
def test_browser_mutated_calls_end_in_a_typed_outcome(rng: Random) -> None:
    script = browser_script(rng, 0)
    handled(run(drive(BrowserAdapter, script.frames, admission={"call_id": CALL}, sessions=SESSIONS)))


@SMOKE
@given(frames=arbitrary_frames)
def test_browser_arbitrary_frames_end_in_a_typed_outcome(frames: list[Frame]) -> None:
    handled(run(drive(BrowserAdapter, frames, admission={"call_id": CALL}, sessions=SESSIONS)))


@SMOKE
@given(text=st.text(), agent=st.one_of(st.none(), st.text(max_size=20)), final=st.booleans(),
       marks=st.dictionaries(st.text(max_size=12), st.floats(0, 1e6), max_size=3))
def test_browser_server_messages_parse_back(text: str, agent: str | None, final: bool,
                                            marks: dict[str, float]) -> None:
    assert json.loads(web.transcript("agent", text, agent=agent, final=final)) == {
        "type": "transcript", "speaker": "agent", "text": text, "agent": agent, "final": final, "interrupted": False}
    assert json.loads(web.error(1007, text)) == {"type": "error", "code": 1007, "reason": text}
    assert json.loads(web.pong(text)) == {"type": "pong", "id": text}
    assert json.loads(web.latency(marks))["marks"] == {k: round(v, 1) for k, v in marks.items()}
