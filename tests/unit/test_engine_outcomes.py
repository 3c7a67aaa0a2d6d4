"""Where the engines' fallbacks go: the metrics page (switchboard_engine_outcomes_total, switchboard_engine_available),
the call's session events (one `engine_fallback` per fallback; a down engine once per call) and the call
record built from them; the chat stage's outcomes; and the chains the factory builds from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from media_host.engines import factory
from media_host.engines.azure_speech import AzureSpeechToText, AzureTextToSpeech, azure_speech_engines
from media_host.engines.base import ChatDelta, ChatRequest, EngineFallback, TextDelta
from media_host.engines.call_fallbacks import ENGINE_FALLBACK, CallFallbacks
from media_host.engines.chain import DOWN
from media_host.engines.embedded import build
from media_host.engines.fallback_stt import FallbackSpeechToText
from media_host.engines.fallback_tts import FallbackTextToSpeech
from media_host.engines.health import EngineHealth
from media_host.engines.metered_chat import MeteredChatModel, chat_fallback
from media_host.engines.outcomes import FALLBACK, EngineStats
from media_host.engines.resilient_chat import ChatDeadlineExceeded, ChatRetryStats, ChatUnavailable, ResilientChatModel
from media_host.metrics import MediaMetrics, engine_source
from switchboard.call_records import record_from_session
from switchboard.session_models import CallEvent, CallSession, CallState
from switchboard.settings import load_settings
from tests.support.faulty_engines import FaultySpeechToText, FaultyTextToSpeech
from tests.support.manual_clock import ManualClock

T0 = 1_714_555_800.0
AZURE_SPEECH = {"speech_key": "k", "speech_region": "swedencentral"}


# --- metrics -----------------------------------------------------------------------------------------------
async def test_engine_outcomes_and_availability_are_on_the_metrics_page() -> None:
    stats = EngineStats()
    stats.record("stt", "azure_speech", "error")
    stats.record("stt", "whisper", "fallback")
    stats.record("stt", "whisper", "fallback")
    health = EngineHealth(cooldown_s=30, clock=ManualClock())
    health.watch("stt:whisper")
    health.failed("stt:azure_speech", "error")
    metrics = MediaMetrics(dict, dict, lambda _stat: {})
    metrics.add_source(engine_source(stats.samples, health.samples))
    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}
    await health.aclose()
    outcomes = {(s.labels["stage"], s.labels["engine"], s.labels["outcome"]): s.value
                for s in families["switchboard_engine_outcomes"].samples}
    assert outcomes == {("stt", "azure_speech", "error"): 1.0, ("stt", "whisper", "fallback"): 2.0}
    available = {(s.labels["stage"], s.labels["engine"]): s.value
                 for s in families["switchboard_engine_available"].samples}
    assert available == {("stt", "azure_speech"): 0.0, ("stt", "whisper"): 1.0}


class _Model:
    name = "cloud"

    def __init__(self, failure: BaseException | None = None, *, after_words: int = 0) -> None:
        self.failure, self.after_words = failure, after_words

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        for _ in range(self.after_words):
            yield TextDelta("word ")
        if self.failure is not None:
            raise self.failure


async def _drain(model: MeteredChatModel) -> None:
    async for _ in model.stream(ChatRequest(messages=[], agent=None, tools=[])):  # type: ignore[arg-type]
        pass


@pytest.mark.parametrize(("model", "answered", "outcome"), [
    (_Model(after_words=2), "ok", "ok"),
    (_Model(after_words=1), FALLBACK, "fallback"),
    (_Model(ChatDeadlineExceeded("no first token")), "ok", "timeout"),
    (_Model(ConnectionError("reset")), "ok", "error"),
    (_Model(ConnectionError("reset"), after_words=1), "ok", "error"),  # broke off after its first words
    (_Model(ChatUnavailable("cloud", 30.0)), "ok", "skipped"),
])
async def test_chat_requests_are_counted_per_outcome(model: _Model, answered: str, outcome: str) -> None:
    stats = EngineStats()
    metered = MeteredChatModel(model, stats, answered=answered)
    if model.failure is None:
        await _drain(metered)
    else:
        with pytest.raises(type(model.failure)):
            await _drain(metered)
    assert stats.counts == {("chat", "cloud", outcome): 1}


def test_a_hung_cloud_chat_model_fails_at_the_first_token_deadline() -> None:
    settings = load_settings(openai_base_url="http://127.0.0.1:9/v1", chat_first_token_seconds=3.5)
    chat = factory.cloud_chat(settings, ChatRetryStats())
    assert isinstance(chat, ResilientChatModel)
    assert chat.budget_s == 3.5
    assert chat_fallback("cloud", "offline", ChatDeadlineExceeded("late")) == EngineFallback(
        "chat", "cloud", "offline", "timeout", error="ChatDeadlineExceeded")


# --- the call's record ------------------------------------------------------------------------------------
async def test_fallbacks_are_written_each_time_and_a_down_engine_once_per_call() -> None:
    written: list[tuple[str, dict[str, Any]]] = []

    async def record_event(kind: str, **data: Any) -> None:
        written.append((kind, data))

    log = CallFallbacks(record_event)
    failed = EngineFallback("tts", "azure_speech", "hibari", "error", error="SpeechServiceError", mid_sentence=True)
    skipped = EngineFallback("stt", "azure_speech", "whisper", DOWN)
    for note in (failed, skipped, skipped, failed):
        await log.add(note)

    class Stream:
        fallbacks = [skipped]

    await log.report(Stream())
    await log.report(object())  # a plain engine's stream: nothing to say
    assert written == [(ENGINE_FALLBACK, failed.event_data()), (ENGINE_FALLBACK, skipped.event_data()),
                       (ENGINE_FALLBACK, failed.event_data())]
    assert failed.event_data() == {"stage": "tts", "from": "azure_speech", "to": "hibari", "reason": "error",
                                   "error": "SpeechServiceError", "mid_sentence": True}


def test_engine_fallback_events_land_in_the_call_record() -> None:
    events = [CallEvent(kind=ENGINE_FALLBACK, agent="auth", at=T0 + 3,
                        data=EngineFallback("stt", "azure_speech", "whisper", "timeout", error="TimeoutError")
                        .event_data()),
              CallEvent(kind="tool_call", agent="auth", at=T0 + 4, data={"name": "x", "ok": True}),
              CallEvent(kind=ENGINE_FALLBACK, agent="auth", at=T0 + 5,
                        data=EngineFallback("tts", "azure_speech", None, "error", mid_sentence=True).event_data())]
    state = CallState(session=CallSession(call_id="call-1", scenario="banking", current_agent="auth",
                                          caller="+14255550123", created_at=T0), turns=[], handoffs=[], events=events)
    record = record_from_session(state, outcome=None, ended_at=datetime.fromtimestamp(T0 + 60, UTC), ttl_days=1,
                                 salt=b"s")
    assert [(f.stage, f.engine, f.to, f.reason, f.error, f.mid_sentence) for f in record.fallbacks] == [
        ("stt", "azure_speech", "whisper", "timeout", "TimeoutError", False),
        ("tts", "azure_speech", None, "error", None, True)]
    document = record.to_document()
    assert document["fallbacks"][0]["midSentence"] is False
    assert type(record).from_document(document) == record


# --- the chains built from settings --------------------------------------------------------------------------
async def test_azure_speech_falls_back_to_the_installed_embedded_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    whisper, hibari = FaultySpeechToText("none"), FaultyTextToSpeech("none", rate=24000)
    monkeypatch.setattr(build, "_cache", {})
    monkeypatch.setattr(build, "get_whisper_stt", lambda **_kw: whisper)
    monkeypatch.setattr(build, "get_tts", lambda _name: hibari)

    async def no_warm_up(*_engines: object) -> None:
        return None

    async def unwarmed(settings: Any) -> Any:
        return azure_speech_engines(settings)  # pre-warming would open connections to Azure

    monkeypatch.setattr(build, "warm_up", no_warm_up)
    monkeypatch.setattr(factory, "load_azure_speech", unwarmed)
    engines = await factory.build_engines(load_settings(**AZURE_SPEECH, stt_deadline_seconds=2.0,
                                                        tts_first_audio_seconds=4.0))
    assert isinstance(engines.stt, FallbackSpeechToText)
    assert isinstance(engines.tts, FallbackTextToSpeech)
    try:
        assert engines.stt.chain.names == ["azure_speech", "whisper"]
        assert engines.tts.chain.names == ["azure_speech", "hibari"]
        assert (engines.stt.chain.deadline_s, engines.tts.chain.deadline_s) == (2.0, 4.0)
        assert (engines.stt.sample_rate, engines.tts.sample_rate) == (16000, 24000)
        azure_stt, azure_tts = engines.stt.chain.links[0].engine, engines.tts.chain.links[0].engine
        assert isinstance(azure_stt, AzureSpeechToText)
        assert isinstance(azure_tts, AzureTextToSpeech)
        assert azure_stt.finish_timeout_s <= 2.0  # Azure's own time-outs, capped by the stage deadlines
        assert azure_tts.chunk_timeout_s == 4.0
        assert engines.description["stt"].startswith("azure speech 16 kHz")
        assert " -> faster-whisper" in engines.description["stt"]
        assert engines.description["tts"].endswith("-> hibari heart 24 kHz")
        assert engines.health is not None
        assert engines.stt.chain.health is engines.health is engines.tts.chain.health
        assert engines.chat is engines.fallback_chat  # no cloud model: the brain is the one chat model
        await engines.aclose()
    finally:
        await engines.stt.aclose()
        await engines.tts.aclose()
    # Off: Azure Speech alone, as before (test_engine_selection.py).
    assert factory.fallback_selection(load_settings(**AZURE_SPEECH, embedded_fallback=False)) == (False, None)
    assert factory.fallback_selection(load_settings()) == (False, None)  # embedded already: nothing behind it

