"""The browser softphone transport on real sockets against a real Redis (docs/browser-protocol.md)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from local_stack.callers.browser import BrowserClient, http_request, start_message
from media_host.channel import CallChannel, CallInfo
from media_host.events import (
    AgentChanged,
    DtmfReceived,
    HangUp,
    Hypothesis,
    Recognition,
    SendDtmf,
    SpeechStarted,
    SpeechStopped,
    ToolCalled,
    TranscriptLine,
    Transfer,
    TurnCommitted,
    TurnLatency,
)
from media_host.pipelines import Pipeline
from media_host.pipelines.echo import EchoPipeline, tone
from media_host.server import MediaHost
from media_host.transports.browser import BrowserAdapter, create_session, register_routes
from switchboard.session_models import CallPhase, CallSession
from switchboard.tokens import Purpose, TokenError, TokenSigner
from tests.conftest import TEST_SECRET
from tests.support.media_harness import echo_pipelines, running_host

PATH = BrowserAdapter.path
TRANSFER_TARGET = "+18005550199"  # EchoPipeline's default


# --- helpers --------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def browser_host(redis_url: str, prompt_ms: int = 0, **overrides: Any) -> AsyncIterator[MediaHost]:
    async with running_host(redis_url, adapters=[BrowserAdapter], pipelines=echo_pipelines(prompt_ms=prompt_ms),
                            **overrides) as host:
        register_routes(host)
        yield host


def http_base(host: MediaHost) -> str:
    return f"http://127.0.0.1:{host.port}"


def ws_url(host: MediaHost, token: str | None) -> str:
    return f"ws://127.0.0.1:{host.port}{PATH}" + ("" if token is None else f"?token={token}")


async def new_call(host: MediaHost) -> dict[str, Any]:
    """A browser session made by the route's own logic (no HTTP needed)."""
    response = await create_session(host, b"")
    assert response.status_code == 201, response.body
    answer: dict[str, Any] = json.loads(response.body)
    return answer


async def post(host: MediaHost, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    return await asyncio.to_thread(http_request, "POST", f"{http_base(host)}/api/v1/realtime/sessions", body,
                                   5.0, headers)


def loud(rate: int, ms: int = 20) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * 1000 * t) * 0.5 * 32767).astype("<i2").tobytes()


def frame_size(rate: int) -> int:
    return rate // 50 * 2


async def expect_refused(url: str) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, open_timeout=5):
            pass
    response = refused.value.response
    return response.status_code, json.loads(response.body or b"{}")


async def expect_closed(url: str, messages: list[str | bytes]) -> tuple[list[dict[str, Any]], int | None, str]:
    """Send `messages`, read until the host closes; returns (JSON messages received, code, reason)."""
    received: list[dict[str, Any]] = []
    async with connect(url, open_timeout=5) as ws:
        with contextlib.suppress(ConnectionClosed):  # the host may close before the last one is sent
            for message in messages:
                await ws.send(message)
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(5):
                async for message in ws:
                    if isinstance(message, str):
                        received.append(json.loads(message))
        return received, ws.close_code, ws.close_reason or ""


# --- 1. the token route ---------------------------------------------------------------------------
async def test_token_route_creates_a_call_the_token_opens(redis_url: str) -> None:
    async with browser_host(redis_url) as host:
        status, answer = await post(host, json.dumps({"scenario": "clinic"}).encode())
        assert status == 201, answer
        call_id, token = answer["call_id"], answer["token"]
        clinic = host.agents.current.scenario("clinic")
        assert call_id.startswith("web-")
        assert answer["expires_in"] == host.settings.browser_token_ttl_seconds
        assert answer["ws_url"] == f"{PATH}?token={token}"
        assert (answer["scenario"], answer["agent"]) == ("clinic", clinic.entry_agent.name)
        session = await host.store.require(call_id)
        assert (session.scenario, session.current_agent, session.caller) == ("clinic", clinic.entry_agent.name, None)
        assert host.store.verify_token(token, Purpose.BROWSER, call_id).call_id == call_id
        with pytest.raises(TokenError):
            host.store.verify_token(token, Purpose.BROWSER, "web-another-call")

        client = await BrowserClient.connect(f"ws://127.0.0.1:{host.port}{answer['ws_url']}")
        assert client.ready == {"type": "ready", "protocol": 1, "call_id": call_id, "scenario": "clinic",
                                "agent": clinic.entry_agent.name, "resumed": False,
                                "output": {"encoding": "pcm16", "sample_rate": 16000, "frame_ms": 20}}
        await client.hangup()
        assert (await client.wait_closed())[0] == 1000

        # The same token reconnects to the same call; once greeted, the call is resumed.
        await host.store.update(call_id, lambda s: setattr(s, "greeted", True))
        again = await BrowserClient.connect(ws_url(host, token))
        assert (again.ready["call_id"], again.ready["resumed"]) == (call_id, True)
        await again.close()


async def test_token_route_defaults_and_bad_requests(redis_url: str) -> None:
    async with browser_host(redis_url) as host:
        banking = host.agents.current.scenario(host.settings.default_scenario)
        for body in (b"", b"{}", b'{"scenario": null, "extra": 1}'):
            status, answer = await post(host, body)
            assert status == 201, answer
            assert (answer["scenario"], answer["agent"]) == (banking.name, banking.entry_agent.name)
        for body, error in [
            (b"{not json", "malformed_json"),
            (b'["banking"]', "invalid_request"),
            (b'{"scenario": 5}', "invalid_request"),
            (b'{"scenario": ""}', "invalid_request"),
            (b'{"scenario": "no-such-scenario"}', "unknown_scenario"),
            (json.dumps({"scenario": "banking", "pad": "x" * 4096}).encode(), "body_too_large"),
        ]:
            status, answer = await post(host, body)
            assert (status, answer["error"]) == (400, error), body[:40]
            assert answer["detail"]
            assert host.metrics.errors.get(transport="browser", kind=f"session_{error}") >= 1
        status, answer = await asyncio.to_thread(http_request, "GET", f"{http_base(host)}/api/v1/realtime/sessions")
        assert (status, answer["error"]) == (405, "method_not_allowed")


async def test_get_on_the_token_route_is_405(redis_url: str) -> None:
    async with browser_host(redis_url) as host:
        status, answer = await asyncio.to_thread(http_request, "GET", f"{http_base(host)}/api/v1/realtime/sessions")
        assert (status, answer["error"]) == (405, "method_not_allowed")


async def test_token_route_is_a_real_post(redis_url: str) -> None:
    async with browser_host(redis_url) as host:
        status, answer = await post(host, b'{"scenario": "banking"}')
        assert status == 201
        assert answer["scenario"] == "banking"


async def test_creating_calls_needs_the_access_key_when_one_is_set(redis_url: str) -> None:
    async with browser_host(redis_url, browser_access_key="k" * 32) as host:
        assert (await post(host, b"{}"))[0] == 401
        assert (await post(host, b"{}", {"Authorization": "Bearer wrong"}))[0] == 401
        status, answer = await post(host, b"{}", {"Authorization": f"Bearer {'k' * 32}"})
        assert status == 201
        assert answer["token"]


async def test_creating_calls_is_off_outside_the_embedded_default_without_a_key(redis_url: str) -> None:
    # Any Azure service configured means production.
    async with browser_host(redis_url, cosmos_endpoint="https://cosmos.example") as host:
        status, answer = await post(host, b"{}")
        assert (status, answer["error"]) == (403, "disabled")


async def test_tokens_for_another_purpose_or_expired_are_refused(redis_url: str) -> None:
    async with browser_host(redis_url) as host:
        call_id = (await new_call(host))["call_id"]
        cases = {
            "missing token": None,
            "malformed token": "not-a-token",
            "bad token signature": TokenSigner("another-secret-0123456789abcdef").issue(call_id, Purpose.BROWSER, 60),
            "token is not valid for browser": host.store.issue_token(call_id, Purpose.MEDIA, 600),
            "token expired": TokenSigner(TEST_SECRET, clock=lambda: time.time() - 3600).issue(
                call_id, Purpose.BROWSER, 60),
        }
        before = host.metrics.errors.get(transport="browser", kind="unauthorized")
        for detail, token in cases.items():
            status, body = await expect_refused(ws_url(host, token))
            assert (status, body) == (401, {"error": "unauthorized", "detail": detail})
        assert host.metrics.errors.get(transport="browser", kind="unauthorized") == before + len(cases)


# --- 2. a whole conversation ----------------------------------------------------------------------
@pytest.mark.parametrize("rate", [8000, 16000, 24000])
async def test_conversation_barge_in_echo_transfer_hangup(redis_url: str, rate: int) -> None:
    async with browser_host(redis_url, prompt_ms=5000) as host:
        answer = await BrowserClient.create_session(http_base(host))
        client = await BrowserClient.connect(ws_url(host, answer["token"]), sample_rate=rate, frame_ms=20)
        assert client.ready["output"] == {"encoding": "pcm16", "sample_rate": rate, "frame_ms": 20}
        size = frame_size(rate)

        await client.wait_audio(3 * size)  # the prompt tone is playing
        await client.send_audio(loud(rate))  # one frame, loud: barge-in
        stop = await client.wait_event("stop_audio")
        await client.wait_event("speech_started")
        interrupted = await client.wait_event("transcript")
        assert (interrupted["speaker"], interrupted["interrupted"], interrupted["final"]) == ("agent", True, True)
        prompt_heard = stop["_at"]
        assert prompt_heard >= 3 * size
        assert prompt_heard < rate * 2 * 5  # cut well before the 5 s tone ended

        payload = random.Random(rate).randbytes(size * 15)
        for offset in range(0, len(payload), 700):  # chunks that do not line up with frames
            await client.send_audio(payload[offset:offset + 700])
        await client.wait_audio(prompt_heard + len(payload))
        assert bytes(client.audio[prompt_heard:]) == payload  # no prompt after stop_audio, the echo byte-exact

        await client.dtmf("0")
        transfer = await client.wait_event("transfer")
        assert transfer["target"] == TRANSFER_TARGET
        assert (await client.ping("after-transfer"))["id"] == "after-transfer"  # the call goes on

        await client.hangup()
        assert await client.wait_closed() == (1000, "call ended")
        assert bytes(client.audio[prompt_heard:]) == payload
    # The host drains before `running_host` returns, so every call has been counted by now.
    assert host.metrics.calls.get(transport="browser", outcome="transfer_requested") == 1


async def test_pipeline_hangup_is_announced_then_closed(redis_url: str) -> None:
    async with browser_host(redis_url) as host:
        client = await BrowserClient.connect(ws_url(host, (await new_call(host))["token"]))
        await client.dtmf("#")
        assert await client.wait_closed() == (1000, "call ended")
        assert [e["reason"] for e in client.of_type("hangup")] == ["caller pressed #"]
        assert not client.of_type("error")


class ShowcasePipeline:
    """Emits one of every outbound event, speaks one utterance, hangs up on `#`."""

    inbound_rate: int | None = None
    outbound_rate: int | None = None

    async def run(self, call: CallChannel) -> None:
        for event in (SpeechStarted(), SpeechStopped(), Hypothesis("my card"), Recognition("my card is lost"),
                      TranscriptLine("caller", "my card is lost"), TurnCommitted(),
                      AgentChanged("cards", "auth", "lost card"),
                      ToolCalled("block_card", True, {"card_number": "4111111111111111"}, 12.345),
                      TurnLatency({"stt_final": 120.04, "first_audio": 480.0}),
                      TranscriptLine("agent", "I have blocked it.", agent="cards"), SendDtmf("1"),
                      Transfer("+18005550100", "fraud team")):
            call.send(event)
        call.start_utterance()
        call.play(tone(call.outbound_rate, 100))
        call.end_utterance()
        while True:
            item = await call.receive()
            if isinstance(item, DtmfReceived) and "#" in item.digits:
                call.send(HangUp("goodbye"))
                return


async def test_every_event_the_page_can_show_and_no_tool_arguments(redis_url: str) -> None:
    async with running_host(redis_url, adapters=[BrowserAdapter], pipelines=lambda _info: ShowcasePipeline()) as host:
        client = await BrowserClient.connect(ws_url(host, (await new_call(host))["token"]))
        end = await client.wait_event("audio_end")
        assert (end["utterance"], end["_at"]) == (1, 3200)  # 100 ms at 16 kHz, then the marker
        await client.wait_event("transfer")
        await client.dtmf("#")
        assert await client.wait_closed() == (1000, "call ended")
    shown = [{k: v for k, v in e.items() if k != "_at"} for e in client.events if e["type"] != "audio_end"]
    assert shown == [
        {"type": "speech_started"},
        {"type": "speech_stopped"},
        {"type": "transcript", "speaker": "caller", "text": "my card", "agent": None, "final": False,
         "interrupted": False},
        {"type": "transcript", "speaker": "caller", "text": "my card is lost", "agent": None, "final": True,
         "interrupted": False},
        {"type": "turn_committed"},
        {"type": "agent", "agent": "cards", "previous": "auth", "reason": "lost card"},
        {"type": "tool", "name": "block_card", "ok": True, "elapsed_ms": 12.3},
        {"type": "latency", "marks": {"stt_final": 120.0, "first_audio": 480.0}},
        {"type": "transcript", "speaker": "agent", "text": "I have blocked it.", "agent": "cards", "final": True,
         "interrupted": False},
        {"type": "transfer", "target": "+18005550100", "reason": "fraud team"},
        {"type": "hangup", "reason": "goodbye"},
    ]
    assert "4111" not in json.dumps(client.events)


class ResamplingEcho(EchoPipeline):
    inbound_rate: int | None = 16000
    outbound_rate: int | None = 16000


async def test_48k_wire_is_resampled_to_and_from_the_pipeline_rate(redis_url: str) -> None:
    def make(_info: CallInfo) -> Pipeline:
        return ResamplingEcho(max_backlog_ms=None)  # the test sends 1 s at once

    async with running_host(redis_url, adapters=[BrowserAdapter], pipelines=make) as host:
        client = await BrowserClient.connect(ws_url(host, (await new_call(host))["token"]), sample_rate=48000)
        rate, seconds = 48000, 1.0
        t = np.arange(int(rate * seconds)) / rate
        tone = (np.sin(2 * np.pi * 440 * t) * 0.3 * 32767).astype("<i2").tobytes()
        for offset in range(0, len(tone), 3840):
            await client.send_audio(tone[offset:offset + 3840])
        await client.wait_audio(int(rate * 0.7) * 2)  # all of it but the resamplers' hold-back
        echoed = np.frombuffer(bytes(client.audio), dtype="<i2").astype(np.float64)
        spectrum = np.abs(np.fft.rfft(echoed[-rate // 2:]))
        assert abs(np.argmax(spectrum) * 2 - 440) <= 4  # bins of 2 Hz over half a second
        await client.close()


async def test_over_capacity_is_refused_with_an_error_then_1013(redis_url: str) -> None:
    async with browser_host(redis_url, media_max_calls=1) as host:
        first = await BrowserClient.connect(ws_url(host, (await new_call(host))["token"]))
        received, code, reason = await expect_closed(ws_url(host, (await new_call(host))["token"]), [])
        assert (received, code, reason) == ([{"type": "error", "code": 1013, "reason": "over capacity"}], 1013,
                                            "over capacity")
        await first.ping()
        await first.close()


# --- 3. bad input closes one socket, never the call next to it ----------------------------------------
class HealthyCall:
    """A concurrent call that sends a distinct frame, waits for its echo and checks it, over and over."""

    def __init__(self, client: BrowserClient) -> None:
        self.client = client
        self.echoed = 0
        self._stop = asyncio.Event()
        self._progress = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        rng, size, sent = random.Random(1), frame_size(self.client.sample_rate), 0
        while not self._stop.is_set():
            frame = rng.randbytes(size)
            await self.client.send_audio(frame)
            sent += size
            await self.client.wait_audio(sent, within=1.0)  # an interruption fails here
            assert bytes(self.client.audio[sent - size:sent]) == frame
            self.echoed += 1
            self._progress.set()

    async def advance(self, frames: int) -> None:
        target = self.echoed + frames
        async with asyncio.timeout(5):
            while self.echoed < target:
                if self._task.done():
                    self._task.result()
                    raise AssertionError("the healthy call stopped")
                self._progress.clear()
                waiter = asyncio.ensure_future(self._progress.wait())
                try:
                    await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()

    async def finish(self) -> None:
        self._stop.set()
        await self._task
        assert not self.client.is_closed
        assert not self.client.of_type("error")
        await self.client.ping("still-there")
        await self.client.close()


@dataclasses.dataclass(frozen=True)
class Violation:
    messages: list[str | bytes]
    code: int
    reason: str
    kind: str
    call: str = "fresh"  # "fresh" session, "missing" (no session in Redis) or "ended"


START = start_message(16000)
VIOLATIONS: dict[str, Violation] = {
    "malformed JSON first": Violation(["{nope"], 1007, "malformed JSON", "malformed_json"),
    "malformed JSON mid-call": Violation([START, "{nope"], 1007, "malformed JSON", "malformed_json"),
    "not an object": Violation([START, "[1, 2]"], 1007, "a message must be a JSON object", "not_an_object"),
    "no type": Violation([START, '{"digits": "1"}'], 1007, "a message must have a string `type`", "missing_type"),
    "audio before start": Violation([b"\x00\x00" * 160], 1008, "audio before start", "audio_before_start"),
    "dtmf before start": Violation(['{"type": "dtmf", "digits": "1"}'], 1008, "dtmf before start", "out_of_order"),
    "start twice": Violation([START, START], 1008, "start sent twice", "duplicate_start"),
    "odd byte count": Violation([START, b"\x00" * 321], 1007, "audio frame has an odd number of bytes",
                                "odd_length"),
    "frame over 1 s": Violation([START, b"\x00" * (32000 + 2)], 1009, "audio frame longer than 1 s",
                                "frame_too_large"),
    "text too large": Violation([START, json.dumps({"type": "ping", "pad": "x" * 5000})], 1009,
                                "text message larger than 4096 characters", "message_too_large"),
    "bad dtmf digits": Violation([START, '{"type": "dtmf", "digits": "1; drop"}'], 1007,
                                 "invalid dtmf message: digits: String should match pattern '^[0-9*#A-Da-d]{1,32}$'",
                                 "invalid_message"),
    "unsupported rate": Violation([start_message(44100)], 1007, "unsupported audio format: pcm16 44100 Hz x1",
                                  "unsupported_format"),
    "unsupported encoding": Violation([start_message(16000, "opus")], 1007,
                                      "unsupported audio format: opus 16000 Hz x1", "unsupported_format"),
    "stereo": Violation([start_message(16000, channels=2)], 1007, "unsupported audio format: pcm16 16000 Hz x2",
                        "unsupported_format"),
    "unknown call": Violation([START], 1008, "unknown call", "unknown_call", call="missing"),
    "ended call": Violation([START], 1008, "call has ended", "call_ended", call="ended"),
}


async def _token_for(host: MediaHost, call: str) -> str:
    if call == "fresh":
        return str((await new_call(host))["token"])
    call_id = f"web-{uuid.uuid4()}"
    if call == "ended":
        await host.store.create(CallSession(call_id=call_id, scenario="banking", current_agent="auth",
                                            status=CallPhase.ENDED))
    return host.store.issue_token(call_id, Purpose.BROWSER, 60)


async def _violation(host: MediaHost, case: Violation) -> None:
    before = host.metrics.errors.get(transport="browser", kind=case.kind)
    received, code, reason = await expect_closed(ws_url(host, await _token_for(host, case.call)), case.messages)
    assert (code, reason) == (case.code, case.reason)
    assert received[-1] == {"type": "error", "code": case.code, "reason": case.reason}
    assert [m["type"] for m in received[:-1]] in ([], ["ready"])
    assert host.metrics.errors.get(transport="browser", kind=case.kind) == before + 1


async def _unknown_type_is_ignored(host: MediaHost) -> None:
    before = host.metrics.errors.get(transport="browser", kind="unknown_type")
    client = await BrowserClient.connect(ws_url(host, (await new_call(host))["token"]))
    for _ in range(3):
        await client.send_json(type="video", data="ignored")
    await client.send_json(type="ping", extra_field="ignored too")
    await client.wait_event("pong")
    await client.send_audio(b"\x01\x00" * 320)
    await client.wait_audio(640)
    assert not client.of_type("error")
    assert host.metrics.errors.get(transport="browser", kind="unknown_type") == before + 3
    await client.hangup()
    assert (await client.wait_closed())[0] == 1000


async def _unauthorized(host: MediaHost) -> None:
    call_id = (await new_call(host))["call_id"]
    for token in (None, "forged.token", host.store.issue_token(call_id, Purpose.MEDIA, 600)):
        status, _body = await expect_refused(ws_url(host, token))
        assert status == 401


BadCase = Callable[[MediaHost], Awaitable[None]]
CASES: dict[str, BadCase] = {
    **{name: functools.partial(_violation, case=case) for name, case in VIOLATIONS.items()},
    "unknown type": _unknown_type_is_ignored,
    "unauthorized": _unauthorized,
}


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_input_closes_only_that_socket(redis_url: str, name: str) -> None:
    async with browser_host(redis_url) as host:
        healthy = HealthyCall(await BrowserClient.connect(ws_url(host, (await new_call(host))["token"])))
        await healthy.advance(3)
        await CASES[name](host)
        await healthy.advance(5)
        await healthy.finish()
