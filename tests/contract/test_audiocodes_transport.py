"""The AudioCodes Bot API adapter over real WebSockets, against a real host and Redis.

The far end is `AudioCodesClient`, a simulated VAIC driven by the fixture payloads. The host runs
the echo pipeline: the caller's audio comes back as play streams, DTMF 0 transfers and # hangs up.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from media_host.channel import CallChannel, CallInfo
from media_host.events import (
    Hypothesis,
    Recognition,
    SendDtmf,
    SpeechStarted,
    SpeechStopped,
    TranscriptLine,
    Transfer,
    TurnCommitted,
)
from media_host.pipelines import Pipeline
from media_host.pipelines.echo import EchoPipeline, tone
from media_host.server import MediaHost
from media_host.transports.audiocodes import AudioCodesAdapter
from switchboard.session_models import CallEvent
from tests.support.audiocodes_client import AudioCodesClient, payload
from tests.support.media_harness import AUDIOCODES_TOKEN, echo_pipelines, running_host


def pattern(n: int, size: int = 640) -> bytes:
    """A recognisable 20 ms frame (640 bytes at 16 kHz): frame `n` of the caller's speech."""
    return (n % 30000 + 1000).to_bytes(2, "little", signed=True) * (size // 2)


def loud(size: int) -> bytes:
    return (12000).to_bytes(2, "little", signed=True) * (size // 2)


@contextlib.asynccontextmanager
async def ac_host(redis_url: str, **kw: Any) -> AsyncIterator[MediaHost]:
    async with running_host(redis_url, adapters=[AudioCodesAdapter], **kw) as host:
        yield host


@contextlib.asynccontextmanager
async def streaming_call(host: MediaHost, formats: list[str] | None = None,
                         **initiate: Any) -> AsyncIterator[AudioCodesClient]:
    assert host.port is not None
    async with AudioCodesClient(host.port) as vaic:
        accepted = await vaic.initiate(formats, **initiate)
        assert accepted["type"] == "session.accepted", accepted
        await vaic.start_stream()
        yield vaic


def errors(host: MediaHost) -> dict[str, float]:
    return {dict(k)["kind"]: v for k, v in host.metrics.errors.values.items() if dict(k)["transport"] == "audiocodes"}


def check_activity(message: dict[str, Any], name: str) -> dict[str, Any]:
    """One outbound event activity with an id and an ISO 8601 UTC timestamp; returns its activityParams."""
    assert message["type"] == "activities"
    (activity,) = message["activities"]
    assert activity["type"] == "event"
    assert activity["name"] == name
    uuid.UUID(activity["id"])
    assert activity["timestamp"].endswith("Z")
    assert datetime.fromisoformat(activity["timestamp"].replace("Z", "+00:00")).utcoffset() is not None
    params: dict[str, Any] = activity["activityParams"]
    return params


# --- a whole session -----------------------------------------------------------------------------------

async def test_full_session_from_initiate_to_end(redis_url: str) -> None:
    async with ac_host(redis_url) as host:
        assert host.port is not None
        async with AudioCodesClient(host.port) as vaic:
            # The fixture offers lpcm16, lpcm16_24 and mulaw: we take the 24 kHz one (no resampling).
            assert await vaic.initiate() == payload("session_accepted", mediaFormat="raw/lpcm16_24")
            await vaic.send_fixture("activities_start")
            await vaic.start_stream()
            frames = [pattern(n, 960) for n in range(10)]
            for frame in frames:
                await vaic.send_audio(frame)
            await vaic.wait_for(lambda c: len(c.played()) >= 9600)
            start = vaic.received("playStream.start")[0]
            assert start == {"type": "playStream.start", "streamId": "1", "mediaFormat": "raw/lpcm16_24"}
            assert start.keys() <= payload("play_stream_start").keys()
            assert vaic.played() == b"".join(frames)  # the echo, byte for byte
            assert vaic.streams["1"].chunks == 10  # 20 ms each, like the fixture's 960-byte chunk

            await vaic.dtmf("0")
            params = check_activity(await vaic.expect("activities"), "transfer")
            assert params == {"transferTarget": "tel:+18005550199", "handoverReason": "caller pressed 0"}
            assert params.keys() <= payload("activities_transfer")["activities"][0]["activityParams"].keys()

            await vaic.stop_stream()
            await vaic.end()
            assert await vaic.closed() == (1000, "call ended")
        session = await host.store.get(vaic.conversation_id)
        assert session is not None
        assert session.scenario == "banking"  # botName "my_bot_name" is no scenario: the default
        assert session.current_agent == host.agents.current.scenario("banking").entry_agent.name
        assert session.caller == "+14255550123"
        assert session.callee == "my_bot_name"
        assert session.context["audiocodes"]["mediaFormat"] == "raw/lpcm16_24"
        assert session.context["audiocodes"]["start"]["locale"] == "en-US"
        assert errors(host) == {}


async def test_hash_hangs_up_and_the_socket_closes_normally(redis_url: str) -> None:
    async with ac_host(redis_url) as host, streaming_call(host) as vaic:
        await vaic.dtmf("#")
        params = check_activity(await vaic.expect("activities"), "hangup")
        assert params == {"hangupReason": "caller pressed #"}
        assert params.keys() == payload("activities_hangup")["activities"][0]["activityParams"].keys()
        assert await vaic.closed() == (1000, "call ended")
        assert vaic.received("session.error") == []


# https://techdocs.audiocodes.com/voice-ai-connect/Content/VAIG_Combined/receive-dtmf.htm (AudioCodes Bot API)
DOCUMENTED_DTMF = {"type": "event", "name": "DTMF", "value": "123"}


@pytest.mark.parametrize("name", ["DTMF", "dtmf"])  # as documented; the case is not significant (audiocodes.py)
async def test_dtmf_as_vaic_sends_it_reaches_the_pipeline(redis_url: str, name: str) -> None:
    async with ac_host(redis_url) as host, streaming_call(host) as vaic:
        # The documented activity, as is but for the digits: echo hangs up on "#" (1, 2, 3 do nothing).
        await vaic.send({"type": "activities", "conversationId": vaic.conversation_id,
                         "activities": [DOCUMENTED_DTMF | {"name": name}, DOCUMENTED_DTMF | {"name": name,
                                                                                               "value": "#"}]})
        params = check_activity(await vaic.expect("activities"), "hangup")
        assert params == {"hangupReason": "caller pressed #"}
        assert await vaic.closed() == (1000, "call ended")
        assert errors(host) == {}


async def test_dtmf_digits_vaic_would_ignore_are_not_sent(redis_url: str) -> None:
    class Scripted(EchoPipeline):
        async def run(self, call: CallChannel) -> None:
            for digits in ("12A", "", "1" * 21, "*0#"):
                call.send(SendDtmf(digits))
            await super().run(call)

    async with ac_host(redis_url, pipelines=lambda _info: Scripted()) as host:
        assert host.port is not None
        async with AudioCodesClient(host.port) as vaic:
            await vaic.initiate()
            assert check_activity(await vaic.expect("activities"), "sendDtmf") == {"dtmfDigits": "*0#"}
            await vaic.end()
            await vaic.closed()
        assert len(vaic.received("activities")) == 1


async def test_barge_in_stops_the_play_stream_at_once(redis_url: str) -> None:
    async with ac_host(redis_url, pipelines=echo_pipelines(prompt_ms=2000)) as host, \
            streaming_call(host, ["raw/lpcm16_24"]) as vaic:
        await vaic.wait_for(lambda c: "1" in c.streams and c.streams["1"].chunks >= 5)  # the prompt plays
        spoke_at = time.monotonic()
        await vaic.send_audio(loud(960))
        await vaic.expect("userStream.speech.started", limit=1.0)
        assert await vaic.expect("playStream.stop", limit=1.0) == payload("play_stream_stop", streamId="1")
        assert time.monotonic() - spoke_at < 0.5
        prompt = vaic.streams["1"]
        assert len(prompt.audio) < 48000 * 2 * 3 // 4  # well short of the 2 s prompt
        # From now on the caller is echoed, in a new play stream, and nothing more of the prompt comes.
        frames = [pattern(n, 960) for n in range(5)]
        for frame in frames:
            await vaic.send_audio(frame)
        await vaic.wait_for(lambda c: "2" in c.streams and len(c.streams["2"].audio) >= 4800)
        assert vaic.played("2") == b"".join(frames)
        assert prompt.chunks_after_stop == 0
        kinds = [m["type"] for m in vaic.messages]
        assert kinds.index("userStream.speech.started") < kinds.index("playStream.stop")


@pytest.mark.parametrize("media_format", ["raw/lpcm16", "raw/lpcm16_8", "raw/mulaw"])
async def test_each_media_format_end_to_end(redis_url: str, media_format: str) -> None:
    async with ac_host(redis_url) as host, streaming_call(host, [media_format], botName="clinic") as vaic:
        assert vaic.media_format == media_format
        if media_format == "raw/lpcm16":  # the fixture's own 20 ms chunk, as VAIC sent it
            for _ in range(3):
                await vaic.send_fixture("user_stream_chunk")
            sent = vaic.decode(base64.b64decode(payload("user_stream_chunk")["audioChunk"])) * 3
        else:
            sent = tone(8000, 200, level=0.3)
            for at in range(0, len(sent), 320):
                await vaic.send_audio(sent[at:at + 320])
        await vaic.wait_for(lambda c: len(c.played()) >= len(sent))
        assert vaic.received("playStream.start")[0]["mediaFormat"] == media_format
        got = np.frombuffer(vaic.played(), dtype="<i2").astype(np.int32)
        want = np.frombuffer(sent, dtype="<i2").astype(np.int32)
        if media_format == "raw/mulaw":  # 160 µ-law bytes per 20 ms chunk, within the codec's error
            assert len(vaic.streams["1"].audio) == 1600
            assert np.max(np.abs(got - want)) <= 0.04 * np.max(np.abs(want))
        else:
            assert np.array_equal(got, want)
        await vaic.end()
        assert await vaic.closed() == (1000, "call ended")
        session = await host.store.get(vaic.conversation_id)
        assert session is not None
        assert session.scenario == "clinic"  # botName names a scenario
        assert session.current_agent == host.agents.current.scenario("clinic").entry_agent.name


async def test_resume_after_a_dropped_socket(redis_url: str) -> None:
    seen: list[CallInfo] = []

    def pipelines(info: CallInfo) -> Pipeline:
        seen.append(info)
        return EchoPipeline()

    async with ac_host(redis_url, pipelines=pipelines) as host:
        assert host.port is not None
        async with streaming_call(host, ["raw/lpcm16"]) as first:
            await first.send_audio(pattern(1))
            await first.wait_for(lambda c: c.played() == pattern(1))
            assert first.ws is not None
            first.ws.transport.abort()  # the network drops: no close frame, no session.end
        async with AudioCodesClient(host.port, conversation_id=first.conversation_id) as again:
            assert await again.resume() == payload("session_accepted", mediaFormat="raw/lpcm16")
            await again.start_stream()
            await again.send_audio(pattern(2))
            await again.wait_for(lambda c: c.played() == pattern(2))
            await again.end()
            assert await again.closed() == (1000, "call ended")
    assert [(info.call_id, info.resumed) for info in seen] == [(first.conversation_id, False),
                                                                (first.conversation_id, True)]
    assert seen[1].state is not None
    assert seen[1].state.session.scenario == "banking"


class EchoWritingItsEnd(EchoPipeline):
    """Echo, and write down that the call on this socket ended (after it has, as a cascade saves its state)."""

    async def run(self, call: CallChannel) -> None:
        await super().run(call)
        await call.append_event(CallEvent(kind="echo_ended"))


async def test_resume_while_the_old_socket_is_open_closes_the_old_one(redis_url: str) -> None:
    seen: list[CallInfo] = []

    def pipelines(info: CallInfo) -> Pipeline:
        seen.append(info)
        return EchoWritingItsEnd()

    async with ac_host(redis_url, pipelines=pipelines) as host:
        assert host.port is not None
        async with streaming_call(host, ["raw/lpcm16"]) as first:
            await first.send_audio(pattern(1))
            await first.wait_for(lambda c: c.played() == pattern(1))
            # VAIC thinks the socket dropped, but it is still open here: it resumes on a new one.
            async with AudioCodesClient(host.port, conversation_id=first.conversation_id) as again:
                assert await again.resume() == payload("session_accepted", mediaFormat="raw/lpcm16")
                assert await first.closed() == (1000, "superseded: session.resume on a new socket")
                assert first.received("session.error") == []  # VAIC would disconnect the call on one
                await again.start_stream()
                await again.send_audio(pattern(2))
                await again.wait_for(lambda c: c.played() == pattern(2))
                assert first.played() == pattern(1)  # only the new socket carries the conversation
                assert host.metrics.active.collect()[(("transport", "audiocodes"),)] == 1
                assert errors(host)["stale_socket"] == 1
                await again.end()
                assert await again.closed() == (1000, "call ended")
    assert [(info.call_id, info.resumed) for info in seen] == [(first.conversation_id, False),
                                                                (first.conversation_id, True)]
    assert seen[1].state is not None  # the new socket resumed from the session as the old call left it
    assert [e.kind for e in seen[1].state.events] == ["echo_ended"]


async def test_pipeline_events_have_the_documented_shape(redis_url: str) -> None:
    class Scripted(EchoPipeline):
        async def run(self, call: CallChannel) -> None:
            for event in (SpeechStarted(), SpeechStopped(), TurnCommitted(), Hypothesis("how are"),
                          Recognition("how are you.", 0.83), TranscriptLine("caller", "ignored"),
                          SendDtmf("12"), Transfer("sip:agent@example.com", "")):
                call.send(event)
            await super().run(call)

    async with ac_host(redis_url, pipelines=lambda _info: Scripted()) as host:
        assert host.port is not None
        async with AudioCodesClient(host.port) as vaic:
            await vaic.initiate()
            for name in ("started", "stopped", "committed", "hypothesis", "recognition"):
                assert await vaic.expect(f"userStream.speech.{name}") == payload(f"user_stream_speech_{name}")
            # "Sending DTMF digits": the digits go in activityParams.dtmfDigits (VAIC ignores anything else).
            assert check_activity(await vaic.expect("activities"), "sendDtmf") == {"dtmfDigits": "12"}
            transfer = check_activity(await vaic.expect("activities"), "transfer")
            assert transfer == {"transferTarget": "sip:agent@example.com"}


async def test_connection_validate_is_answered_and_closed(redis_url: str) -> None:
    async with ac_host(redis_url) as host:
        assert host.port is not None
        async with AudioCodesClient(host.port) as vaic:
            await vaic.send_fixture("connection_validate")
            assert await vaic.expect("connection.validated") == payload("connection_validated")
            assert await vaic.closed() == (1000, "connection validated")
        assert errors(host) == {}
        assert host.metrics.calls.values == {}  # a probe is not a call


async def test_idle_timeout_counts_every_message_not_only_audio(redis_url: str) -> None:
    async with ac_host(redis_url, audiocodes_idle_timeout_seconds=0.4) as host, streaming_call(host) as vaic:
        await vaic.stop_stream()  # VAIC pauses the user stream; other messages still show it is there
        for _ in range(10):
            await vaic.send({"type": "activities", "conversationId": vaic.conversation_id,
                             "activities": [{"type": "event", "name": "noSuchEvent"}]})
            await asyncio.sleep(0.1)  # pacing the far end, not synchronisation
        assert vaic.open
        code, reason = await vaic.closed()
        assert code == 1001
        assert reason is not None
        assert reason.startswith("idle timeout")
        assert vaic.received("session.error") == [{"type": "session.error", "reason": reason}]


# --- bad input: each closes only its own socket (or is ignored), and a healthy call carries on ---------

class HealthyCall:
    """An AudioCodes call streaming 16 kHz audio in real time in the background, checking its echo."""

    def __init__(self, host: MediaHost) -> None:
        assert host.port is not None
        self.client = AudioCodesClient(host.port)
        self.sent: list[bytes] = []
        self._running = True
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HealthyCall:
        await self.client.__aenter__()
        assert (await self.client.initiate(["raw/lpcm16"]))["type"] == "session.accepted"
        await self.client.start_stream()
        self._task = asyncio.create_task(self._stream())
        await self.client.wait_for(lambda c: len(c.played()) >= 3 * 640)
        return self

    async def _stream(self) -> None:
        while self._running:
            frame = pattern(len(self.sent))
            self.sent.append(frame)
            await self.client.send_audio(frame)
            await asyncio.sleep(0.02)  # real-time pacing

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._running = False
        await self._task
        try:
            if exc[0] is None:
                expected = b"".join(self.sent)
                await self.client.wait_for(lambda c: len(c.played()) >= len(expected))
                assert self.client.played() == expected, "the healthy call lost or reordered audio"
                arrival = self.client.chunk_arrival
                gaps = [b - a for a, b in itertools.pairwise(arrival)]
                assert max(gaps) < 0.5, f"the healthy call stalled for {max(gaps):.2f} s"
                assert self.client.open, "the healthy call was closed"
                await self.client.end()
                assert await self.client.closed() == (1000, "call ended")
        finally:
            await self.client.__aexit__()


async def _alive_then_end(vaic: AudioCodesClient, *, start: bool = False) -> None:
    """The socket survived what was sent: it still echoes, and ends normally."""
    if start:
        await vaic.start_stream()
    await vaic.send_audio(pattern(99))
    await vaic.wait_for(lambda c: pattern(99) in c.played())
    await vaic.end()


async def _duplicate(vaic: AudioCodesClient, port: int) -> None:
    async with streaming_call_on(port, vaic.conversation_id) as other:
        await other.end()
    await vaic.initiate(["raw/lpcm16"])


@contextlib.asynccontextmanager
async def streaming_call_on(port: int, conversation_id: str) -> AsyncIterator[AudioCodesClient]:
    async with AudioCodesClient(port, conversation_id=conversation_id) as vaic:
        assert (await vaic.initiate(["raw/lpcm16"]))["type"] == "session.accepted"
        yield vaic
        await vaic.closed()


Action = Callable[[AudioCodesClient, int], Awaitable[object]]  # what the bad socket sends (given the port)


def chunk(**fields: Any) -> Action:
    return lambda vaic, _port: vaic.send_fixture("user_stream_chunk", **fields)


# name: (state before, what is sent, close code, close reason (and session.error) prefix, error metric kind)
BAD_INPUT: dict[str, tuple[str, Action, int, str, str]] = {
    "non-JSON text": ("streaming", lambda v, _: v.send("this is not json"), 1007, "malformed JSON", "malformed_json"),
    "binary frame": ("streaming", lambda v, _: v.send(b"\x00\x01"), 1003, "binary frames are not accepted",
                     "binary_frame"),
    "unknown type (ignored)": ("streaming", lambda v, _: _sent_then_alive(v, {"type": "userStream.bogus"}), 1000,
                               "call ended", "unknown_type"),
    "invalid message": ("streaming", lambda v, _: v.send({"type": "userStream.chunk"}), 1007,
                        "invalid message: audioChunk: Field required", "invalid_message"),
    "bad base64": ("streaming", chunk(audioChunk="!!not-base64!!"), 1007, "audioChunk is not valid base64",
                   "bad_base64"),
    "odd byte count": ("streaming", chunk(audioChunk="AQID"), 1007, "audioChunk has an odd number of bytes",
                       "odd_length"),
    "chunk over 1 s": ("streaming", lambda v, _: v.send_audio(bytes(48000)), 1009, "audio chunk longer than 1 s",
                       "frame_too_large"),
    "chunk before start (ignored)": ("initiated", lambda v, _: _chunk_before_start(v), 1000, "call ended",
                                     "out_of_order"),
    "another conversation's id": ("streaming", chunk(conversationId="someone-else"), 1008,
                                  "conversationId does not match this session", "conversation_mismatch"),
    "second session.initiate": ("streaming", lambda v, _: v.send_fixture("session_initiate"), 1008,
                                "session already started on this socket", "duplicate_session"),
    "message before session.initiate": ("connected", lambda v, _: v.send_fixture("user_stream_start"), 1008,
                                        "expected session.initiate first, not userStream.start", "not_initiated"),
    "no supported media format": ("connected", lambda v, _: v.initiate(["wav/lpcm16", "raw/opus"]), 1007,
                                  "no supported media format; offered wav/lpcm16, raw/opus", "unsupported_format"),
    "invalid conversationId": ("connected", lambda v, _: v.initiate(conversationId="has spaces;*"), 1007,
                               "invalid conversationId", "bad_conversation_id"),
    "conversation already exists": ("connected", _duplicate, 1008, "conversation already exists",
                                    "duplicate_conversation"),
    "resume of an unknown conversation": ("connected", lambda v, _: v.resume(), 1008, "conversation not found",
                                          "unknown_call"),
}


async def _sent_then_alive(vaic: AudioCodesClient, message: dict[str, Any]) -> None:
    await vaic.send({**message, "conversationId": vaic.conversation_id})
    await _alive_then_end(vaic)


async def _chunk_before_start(vaic: AudioCodesClient) -> None:
    await vaic.send_audio(pattern(1))
    await _alive_then_end(vaic, start=True)


@pytest.mark.parametrize("case", list(BAD_INPUT))
async def test_bad_input_affects_only_its_own_socket(redis_url: str, case: str) -> None:
    state, action, code, reason, kind = BAD_INPUT[case]
    async with ac_host(redis_url) as host, HealthyCall(host):
        assert host.port is not None
        async with AudioCodesClient(host.port) as vaic:
            if state != "connected":
                assert (await vaic.initiate(["raw/lpcm16"]))["type"] == "session.accepted"
            if state == "streaming":
                await vaic.start_stream()
            await action(vaic, host.port)
            got_code, got_reason = await vaic.closed()
        assert got_code == code
        assert (got_reason or "").startswith(reason)
        errors_sent = vaic.received("session.error")
        assert errors_sent == ([] if code == 1000 else [{"type": "session.error", "reason": got_reason}])
        assert errors(host) == {kind: 1}


@pytest.mark.parametrize(("headers", "detail"), [
    ({}, "missing bearer token"),
    ({"Authorization": "Bearer not-the-token"}, "invalid bearer token"),
    ({"Authorization": f"Basic {AUDIOCODES_TOKEN}"}, "missing bearer token"),
])
async def test_bad_tokens_are_refused_at_the_upgrade(redis_url: str, headers: dict[str, str], detail: str) -> None:
    async with ac_host(redis_url) as host, HealthyCall(host):
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"ws://127.0.0.1:{host.port}/ws", additional_headers=headers):
                pass
        assert info.value.response.status_code == 401
        assert info.value.response.body is not None
        assert b'"unauthorized"' in info.value.response.body
        assert detail.encode() in info.value.response.body


async def test_unconfigured_endpoint_is_refused(redis_url: str) -> None:
    async with ac_host(redis_url, audiocodes_bot_token=None) as host:
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"ws://127.0.0.1:{host.port}/ws",
                               additional_headers={"Authorization": f"Bearer {AUDIOCODES_TOKEN}"}):
                pass
        assert info.value.response.status_code == 503


async def test_over_capacity_call_gets_session_error_and_1013(redis_url: str) -> None:
    async with ac_host(redis_url, media_max_calls=1) as host, HealthyCall(host):
        assert host.port is not None
        async with AudioCodesClient(host.port) as second:
            assert await second.initiate() == {"type": "session.error", "reason": "over capacity"}
            assert await second.closed() == (1013, "over capacity")
        assert errors(host) == {"over_capacity": 1}
