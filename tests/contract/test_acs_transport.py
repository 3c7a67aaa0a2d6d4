"""The ACS media-streaming adapter over real WebSockets, against a real host and Redis."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from local_stack.callers.acs import audio, metadata
from local_stack.callers.acs_client import AcsClient
from media_host.channel import CallInfo
from media_host.pipelines import Pipeline
from media_host.pipelines.echo import EchoPipeline
from media_host.server import MediaHost
from media_host.transports.acs import AcsAdapter
from switchboard.tokens import Purpose, TokenSigner
from tests.support.media_harness import echo_pipelines, running_host, seed_call

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "payloads"
LOUD = (12000).to_bytes(2, "little", signed=True) * 480  # a 20 ms square-ish frame at 24 kHz, far above VAD
QUIET = bytes(960)


def pattern(n: int, size: int = 960) -> bytes:
    """A recognisable frame: frame `n` of the caller's speech."""
    return (n % 30000 + 1000).to_bytes(2, "little", signed=True) * (size // 2)


@contextlib.asynccontextmanager
async def acs_host(redis_url: str, **kw: object) -> AsyncIterator[MediaHost]:
    async with running_host(redis_url, adapters=[AcsAdapter], **kw) as host:  # type: ignore[arg-type]
        yield host


async def test_full_stream_with_barge_in(redis_url: str) -> None:
    async with acs_host(redis_url, pipelines=echo_pipelines(prompt_ms=3000)) as host:
        call_id, token = await seed_call(host)
        assert host.port is not None
        async with AcsClient(host.port, token) as acs:
            # The prompt plays as 20 ms frames at the wire rate, in the documented outbound shape.
            await acs.wait_for(lambda r: len(r.audio) >= 10)
            assert all(len(frame) == 960 for frame in acs.received.audio)
            for _ in range(5):
                await acs.send_frame(QUIET)
                await asyncio.sleep(0.02)
            assert acs.received.stops == []
            # The caller speaks over the prompt: StopAudio, the queue is flushed, no prompt audio follows.
            await acs.send_frame(LOUD)
            await acs.wait_for(lambda r: len(r.stops) == 1)
            prompt_frames = acs.received.stops[0]
            await acs.send_frame(pattern(7))
            await acs.wait_for(lambda r: pattern(7) in r.audio)
            assert acs.received.audio[prompt_frames:] == [pattern(7)]  # nothing of the prompt after StopAudio
            metrics = await _get_metrics(host)
            assert 'switchboard_barge_ins_total{transport="acs"} 1' in metrics
            assert "switchboard_playout_queue_frames 0" in metrics
            # Then the caller's audio is echoed back, frame for frame.
            for n in range(20):
                await acs.send_frame(pattern(n))
            await acs.wait_for(lambda r: pattern(19) in r.audio)
            assert [f for f in acs.received.audio if f in {pattern(n) for n in range(20)}][-20:] == \
                [pattern(n) for n in range(20)]
        events = await host.store.events(call_id)
        assert events == []  # the socket closing is not a hang-up request


async def test_a_live_echo_drops_the_backlog_a_stall_leaves(redis_url: str) -> None:
    async with acs_host(redis_url, pipelines=echo_pipelines(max_backlog_ms=40)) as host:
        _, token = await seed_call(host)
        assert host.port is not None
        async with AcsClient(host.port, token) as acs:
            for n in range(30):  # 600 ms of audio at once, as after a 600 ms stall of the network
                await acs.send_frame(pattern(n))
            await asyncio.sleep(0.8)  # let real-time playout run out what it kept
            await acs.send_frame(pattern(99))
            await acs.wait_for(lambda r: pattern(99) in r.audio)
            echoed = acs.received.audio
        # Only about 40 ms (plus the far end's lead) was kept; the newest frame was not queued behind 600 ms.
        assert len(echoed) < 10
        assert echoed[-1] == pattern(99)


async def test_outbound_messages_have_the_documented_shape(redis_url: str) -> None:
    expected = json.loads((FIXTURES / "acs_media_out_audio_data.json").read_text())
    stop = json.loads((FIXTURES / "acs_media_out_stop_audio.json").read_text())
    async with acs_host(redis_url, pipelines=echo_pipelines(prompt_ms=1000)) as host:
        _, token = await seed_call(host)
        assert host.port is not None
        async with connect(f"ws://127.0.0.1:{host.port}/api/v1/media/stream?token={token}") as ws:
            await ws.send(metadata(24000))
            first = json.loads(await ws.recv())
            assert first.keys() == expected.keys()
            assert first["AudioData"].keys() == expected["AudioData"].keys()
            assert first["StopAudio"] is None
            await ws.send(audio(LOUD))
            while (doc := json.loads(await ws.recv()))["Kind"] != "StopAudio":
                pass
            assert doc == stop


async def test_sixteen_khz_fixture_stream_is_echoed(redis_url: str) -> None:
    meta = (FIXTURES / "acs_media_audio_metadata.json").read_text()
    frame_message = (FIXTURES / "acs_media_audio_data.json").read_text()
    frame = base64.b64decode(json.loads(frame_message)["audioData"]["data"])
    async with acs_host(redis_url) as host:
        _, token = await seed_call(host)
        assert host.port is not None
        async with AcsClient(host.port, token, rate=16000, send_metadata=False) as acs:
            await acs.send(meta)
            for _ in range(3):
                await acs.send(frame_message)
            await acs.wait_for(lambda r: len(r.audio) >= 3)
            assert acs.received.audio[:3] == [frame] * 3
            assert len(frame) == 640


async def test_dtmf_asks_the_control_plane_to_transfer_and_hang_up(redis_url: str) -> None:
    async with acs_host(redis_url) as host:
        call_id, token = await seed_call(host)
        assert host.port is not None
        async with AcsClient(host.port, token) as acs:
            await acs.send(json.dumps({"kind": "DtmfData", "dtmfData": {"data": "0"}}))
            await acs.send(json.dumps({"kind": "DtmfData", "dtmfData": {"data": "#"}}))
            assert await acs.closed() == (1000, "call ended")
        kinds = [(e.kind, e.data.get("target")) for e in await host.store.events(call_id)]
        assert kinds == [("transfer_requested", "+18005550199"), ("hangup_requested", None)]


async def test_unmixed_audio_keeps_only_the_first_speaker(redis_url: str) -> None:
    async with acs_host(redis_url) as host:
        _, token = await seed_call(host)
        assert host.port is not None
        async with AcsClient(host.port, token) as acs:
            await acs.send_frame(pattern(1), participant="4:+14255550123")
            await acs.send_frame(pattern(2), participant="8:acs:agent")
            await acs.send_frame(pattern(3), participant="4:+14255550123")
            await acs.wait_for(lambda r: len(r.audio) >= 2)
            assert acs.received.audio[:2] == [pattern(1), pattern(3)]


async def test_silent_frames_without_data_are_silence(redis_url: str) -> None:
    async with acs_host(redis_url) as host:
        _, token = await seed_call(host)
        assert host.port is not None
        async with AcsClient(host.port, token) as acs:
            await acs.send(json.dumps({"kind": "AudioData", "audioData": {"silent": True}}))
            await acs.send(json.dumps({"kind": "TranscriptionData", "transcriptionData": {"text": "x"}}))  # ignored
            await acs.send_frame(pattern(5))
            await acs.wait_for(lambda r: len(r.audio) >= 2)
            assert acs.received.audio[:2] == [QUIET, pattern(5)]


async def test_a_reconnecting_socket_resumes_the_call(redis_url: str) -> None:
    seen: list[CallInfo] = []

    def pipelines(info: CallInfo) -> Pipeline:
        seen.append(info)
        return EchoPipeline()

    async with acs_host(redis_url, pipelines=pipelines) as host:
        call_id, token = await seed_call(host, greeted=True)
        assert host.port is not None
        async with AcsClient(host.port, token) as acs:
            await acs.send_frame(pattern(1))
            await acs.wait_for(lambda r: len(r.audio) >= 1)
    assert len(seen) == 1
    assert seen[0].resumed
    assert seen[0].call_id == call_id
    assert seen[0].correlation_id == "corr-1"
    assert seen[0].parameters["call_connection_id"] == "conn-1"
    assert seen[0].state is not None
    assert seen[0].state.session.scenario == "banking"


async def test_over_capacity_calls_are_closed_with_a_reason(redis_url: str) -> None:
    async with acs_host(redis_url, media_max_calls=1) as host:
        _, token1 = await seed_call(host)
        _, token2 = await seed_call(host)
        assert host.port is not None
        async with AcsClient(host.port, token1) as first:
            await first.send_frame(pattern(1))
            await first.wait_for(lambda r: len(r.audio) >= 1)
            async with AcsClient(host.port, token2) as second:
                assert await second.closed() == (1013, "over capacity")
            await first.send_frame(pattern(2))
            await first.wait_for(lambda r: pattern(2) in r.audio)  # the first call is unaffected


async def test_idle_socket_is_closed(redis_url: str) -> None:
    async with acs_host(redis_url, media_idle_timeout_seconds=0.3) as host:
        _, token = await seed_call(host)
        assert host.port is not None
        async with AcsClient(host.port, token) as acs:
            code, reason = await acs.closed()
            assert code == 1001
            assert reason is not None
            assert reason.startswith("idle timeout")


async def _get_metrics(host: MediaHost) -> str:
    assert host.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await reader.read()
    writer.close()
    return data.decode().split("\r\n\r\n", 1)[1]


async def test_metrics_count_calls_and_frames(redis_url: str) -> None:
    async with acs_host(redis_url) as host:
        _, token = await seed_call(host)
        assert host.port is not None
        async with AcsClient(host.port, token) as acs:
            for n in range(5):
                await acs.send_frame(pattern(n))
            await acs.wait_for(lambda r: len(r.audio) >= 5)
            live = await _get_metrics(host)
            assert 'switchboard_active_calls{transport="acs"} 1' in live
            assert 'switchboard_frames_in_total{transport="acs"} 5' in live
        await asyncio.sleep(0.1)  # let the host finish the call it just lost
        after = await _get_metrics(host)
        assert 'switchboard_active_calls{transport="acs"} 0' in after
        assert 'switchboard_frames_out_total{transport="acs"} 5' in after
        assert 'switchboard_calls_total{outcome="caller_hung_up",transport="acs"} 1' in after


# --- bad input: each closes only its own socket, and a healthy call beside it carries on -------------

class HealthyCall:
    """An ACS call streaming at real-time pace in the background, checking its echo keeps coming."""

    def __init__(self, host: MediaHost, token: str) -> None:
        assert host.port is not None
        self.client = AcsClient(host.port, token)
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> HealthyCall:
        await self.client.__aenter__()
        self._task = asyncio.create_task(self._stream())
        await self.client.wait_for(lambda r: len(r.audio) >= 3)
        return self

    async def _stream(self) -> None:
        while True:
            await self.client.send_frame(pattern(self.sent))
            self.sent += 1
            await asyncio.sleep(0.02)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        sent = self.sent
        await self.client.wait_for(lambda r: len(r.audio) >= sent)
        audio_frames = self.client.received.audio
        assert audio_frames == [pattern(n) for n in range(sent)], "the healthy call lost or reordered audio"
        gaps = [b - a for a, b in zip(self.client.received.arrival, self.client.received.arrival[1:], strict=False)]
        assert max(gaps) < 0.5, f"the healthy call stalled for {max(gaps):.2f} s"
        assert self.client.close_code is None, "the healthy call was closed"
        await self.client.__aexit__()


BadCase = Callable[[MediaHost, str], Awaitable[tuple[int | None, str | None]]]


async def _send_then_close(host: MediaHost, token: str, *messages: str | bytes,
                           with_metadata: bool = True) -> tuple[int | None, str | None]:
    assert host.port is not None
    async with AcsClient(host.port, token, send_metadata=with_metadata) as bad:
        for message in messages:
            await bad.send(message)
        return await bad.closed()


BAD_INPUT: dict[str, tuple[BadCase, int, str]] = {
    "non-JSON text": (lambda h, t: _send_then_close(h, t, "this is not json"), 1007, "malformed JSON"),
    "binary frame": (lambda h, t: _send_then_close(h, t, b"\x00\x01"), 1003, "binary frames are not accepted"),
    "audio before metadata": (lambda h, t: _send_then_close(h, t, audio(QUIET), with_metadata=False), 1008,
                              "AudioData before AudioMetadata"),
    "bad base64": (lambda h, t: _send_then_close(h, t, json.dumps({"kind": "AudioData", "audioData": {
        "data": "!!not-base64!!"}})), 1007, "audio data is not valid base64"),
    "odd byte count": (lambda h, t: _send_then_close(h, t, audio(b"\x01\x02\x03")), 1007,
                       "audio data has an odd number of bytes"),
    "oversized frame": (lambda h, t: _send_then_close(h, t, audio(bytes(96000))), 1009, "audio frame too large"),
    "unsupported rate": (lambda h, t: _send_then_close(h, t, metadata(44100), with_metadata=False), 1007,
                         "unsupported audio format: PCM 44100 Hz x1"),
    "message over the size limit": (lambda h, t: _send_then_close(h, t, "x" * 300_000), 1009, ""),
    # A peer-chosen string in the reason must not make the close frame too long (it would not close at all).
    "long encoding name": (lambda h, t: _send_then_close(h, t, metadata(16000, encoding="X" * 500),
                                                         with_metadata=False), 1007, "unsupported audio format: XXX"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
async def test_bad_input_closes_only_its_socket(redis_url: str, case: str) -> None:
    make, code, reason = BAD_INPUT[case]
    async with acs_host(redis_url) as host:
        _, healthy_token = await seed_call(host)
        _, bad_token = await seed_call(host)
        async with HealthyCall(host, healthy_token):
            got_code, got_reason = await make(host, bad_token)
            assert got_code == code
            assert (got_reason or "").startswith(reason)


async def test_unknown_call_is_refused_after_metadata(redis_url: str) -> None:
    async with acs_host(redis_url) as host:
        token = host.store.issue_token("no-such-call", Purpose.MEDIA, 60)
        async with HealthyCall(host, (await seed_call(host))[1]):
            assert await _send_then_close(host, token) == (1008, "unknown call")


@pytest.mark.parametrize(("case", "make_token", "detail"), [
    ("missing", lambda host, call: None, "missing token"),
    ("forged", lambda host, call: TokenSigner("another-secret-0123456789").issue(call, Purpose.MEDIA, 60),
     "bad token signature"),
    ("expired", lambda host, call: host.store.signer.issue(call, Purpose.MEDIA, -1), "token expired"),
    ("wrong purpose", lambda host, call: host.store.issue_token(call, Purpose.CALLBACK, 60),
     "token is not valid for media"),
])
async def test_bad_tokens_are_refused_at_the_upgrade(redis_url: str, case: str,
                                                     make_token: Callable[[MediaHost, str], str | None],
                                                     detail: str) -> None:
    async with acs_host(redis_url) as host:
        call_id, healthy_token = await seed_call(host)
        async with HealthyCall(host, healthy_token):
            token = make_token(host, call_id)
            query = f"?token={token}" if token else ""
            with pytest.raises(InvalidStatus) as info:
                async with connect(f"ws://127.0.0.1:{host.port}/api/v1/media/stream{query}"):
                    pass
            assert info.value.response.status_code == 401
            assert json.loads(info.value.response.body) == {"error": "unauthorized", "detail": detail}
