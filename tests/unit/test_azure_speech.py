"""The Azure Speech adapters without the service: configuration, SSML, SDK events to the interfaces.

No network. Real SDK objects are used where they can be built offline (SpeechConfig, push streams,
recognizers and synthesizers that are never started). SDK *event* objects cannot be built without a
native handle, so the events are tiny stand-ins with the same attribute names (`result.text`,
`result.reason`, `result.json`, `result.audio_data`, `result.result_id`, `cancellation_details`).
Stand-in "SDK threads" deliver them from real threads, as the SDK does.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
import wave
import xml.etree.ElementTree as ET
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import azure.cognitiveservices.speech as speechsdk
import pytest
from azure.core.credentials import AccessToken

from agents.schema import Voice
from media_host.engines.azure_speech import (
    AzureSpeechToText,
    AzureTextToSpeech,
    SpeechServiceError,
    SpeechTimeout,
    auth_mode,
    azure_speech_engines,
    build_ssml,
    describe_azure_speech,
    speech_config,
)
from media_host.engines.azure_speech.config import BURST_MS, SEGMENTATION_SILENCE_MS
from media_host.engines.azure_speech.events import (
    RecognitionCanceled,
    RecognitionState,
    Recognized,
    Recognizing,
    SessionStopped,
    SynthesisCanceled,
    SynthesisChunk,
    SynthesisCompleted,
    SynthesisRun,
    SynthesisStarted,
    canceled_event,
    confidence_from_json,
    recognized_event,
    recognizing_event,
    strip_wav_header,
)
from media_host.engines.azure_speech.recognizer import RecognizerPool, RecognizerSession
from media_host.engines.azure_speech.stt import AzureSttStream
from media_host.engines.azure_speech.synthesizer import PooledSynthesizer, SynthesizerPool
from media_host.engines.base import SpeechToText, SttStream, TextToSpeech
from switchboard.settings import Settings, SettingsError, load_settings

P = speechsdk.PropertyId
SSML_NS = "{http://www.w3.org/2001/10/synthesis}"
MSTTS_NS = "{https://www.w3.org/2001/mstts}"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("SPEECH_", "STT_ENGINE", "TTS_ENGINE", "ACS_", "AZURE_OPENAI_", "COSMOS_")):
            monkeypatch.delenv(name)


def settings(**overrides: Any) -> Settings:
    return load_settings(**overrides)


class FakeCredential:
    """A TokenCredential (the SDK checks the protocol) that is never asked: nothing connects."""

    def __init__(self) -> None:
        self.asked = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.asked += 1
        return AccessToken("token", 0)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        raise NotImplementedError


# --- SSML ----------------------------------------------------------------------------------------------


def test_ssml_names_the_voice_and_locale_and_nothing_else_by_default() -> None:
    ssml = build_ssml("Hello there.", Voice(azure="en-GB-SoniaNeural"), "en-GB")
    root = ET.fromstring(ssml)
    assert root.tag == f"{SSML_NS}speak"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "en-GB"
    voice = root.find(f"{SSML_NS}voice")
    assert voice is not None
    assert voice.get("name") == "en-GB-SoniaNeural"
    assert voice.text == "Hello there."
    assert "express-as" not in ssml
    assert "prosody" not in ssml


def test_ssml_escapes_the_text() -> None:
    text = 'Tom & Jerry <b>said</b> "hi" it\'s 5 > 3'
    ssml = build_ssml(text, Voice(), "en-US")
    assert "<b>" not in ssml
    assert "&amp;" in ssml
    assert "&lt;b&gt;" in ssml
    voice = ET.fromstring(ssml).find(f"{SSML_NS}voice")
    assert voice is not None
    assert voice.text == text  # read out exactly as written


def test_ssml_drops_control_characters_xml_forbids() -> None:
    ssml = build_ssml("a\x00b\x07c\td", Voice(), "en-US")
    voice = ET.fromstring(ssml).find(f"{SSML_NS}voice")
    assert voice is not None
    assert voice.text == "a b c\td"


def test_ssml_style_and_rate() -> None:
    ssml = build_ssml("Welcome back!", Voice(azure="en-US-JennyNeural", style="cheerful", rate="+10%"), "en-US")
    root = ET.fromstring(ssml)
    express = root.find(f"{SSML_NS}voice/{MSTTS_NS}express-as")
    assert express is not None
    assert express.get("style") == "cheerful"
    prosody = express.find(f"{SSML_NS}prosody")
    assert prosody is not None
    assert prosody.get("rate") == "+10%"
    assert prosody.text == "Welcome back!"


def test_ssml_rate_alone_and_other_locales() -> None:
    ssml = build_ssml("Bonjour", Voice(azure="fr-FR-DeniseNeural", rate="-5%"), "fr-FR")
    root = ET.fromstring(ssml)
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "fr-FR"
    assert root.find(f"{SSML_NS}voice/{SSML_NS}prosody") is not None
    assert "express-as" not in ssml


@pytest.mark.parametrize("locale", ["", "en_US", 'en-US" onload="x', "e"])
def test_ssml_rejects_a_bad_locale(locale: str) -> None:
    with pytest.raises(ValueError, match="locale"):
        build_ssml("hi", Voice(), locale)


def test_ssml_rejects_a_style_that_is_not_a_word() -> None:
    with pytest.raises(ValueError, match="style"):
        build_ssml("hi", Voice(style='sad"><x'), "en-US")


# --- configuration ----------------------------------------------------------------------------------------


def check_call_options(config: speechsdk.SpeechConfig) -> None:
    assert config.get_property(P.SpeechServiceConnection_SynthOutputFormat) == "raw-24khz-16bit-mono-pcm"
    assert config.output_format == speechsdk.OutputFormat.Detailed
    assert config.get_property(P.Speech_SegmentationSilenceTimeoutMs) == str(SEGMENTATION_SILENCE_MS)
    assert config.get_property_by_name("SPEECH-TransmitLengthBeforThrottleMs") == str(BURST_MS)
    assert config.get_property(P.SpeechServiceResponse_ProfanityOption) == "raw"


def test_config_key_and_region() -> None:
    s = settings(speech_key="secret-key", speech_region="westeurope")
    assert auth_mode(s) == "key+region"
    config = speech_config(s)
    assert config.get_property(P.SpeechServiceConnection_Region) == "westeurope"
    assert config.get_property(P.SpeechServiceConnection_Key) == "secret-key"
    assert config.get_property(P.SpeechServiceConnection_Endpoint) == ""
    assert config.token_credential is None
    check_call_options(config)


def test_config_key_and_endpoint_wins_over_region() -> None:
    s = settings(speech_key="k", speech_region="westeurope", speech_endpoint="https://sb.cognitiveservices.azure.com/")
    assert auth_mode(s) == "key+endpoint"
    config = speech_config(s)
    assert config.get_property(P.SpeechServiceConnection_Endpoint) == "https://sb.cognitiveservices.azure.com"
    assert config.get_property(P.SpeechServiceConnection_Key) == "k"
    assert config.get_property(P.SpeechServiceConnection_Region) == ""
    check_call_options(config)


def test_config_entra_id_uses_the_credential_without_asking_it_yet() -> None:
    s = settings(speech_endpoint="https://sb.cognitiveservices.azure.com")
    assert auth_mode(s) == "entra"
    credential = FakeCredential()
    config = speech_config(s, credential=credential)
    assert config.token_credential is credential
    assert config.get_property(P.SpeechServiceConnection_Key) == ""
    assert config.get_property(P.SpeechServiceConnection_Endpoint) == "https://sb.cognitiveservices.azure.com"
    assert credential.asked == 0  # tokens are asked for when a connection opens
    check_call_options(config)


def test_config_entra_id_defaults_to_default_azure_credential() -> None:
    config = speech_config(settings(speech_endpoint="https://sb.cognitiveservices.azure.com"))
    assert type(config.token_credential).__name__ == "DefaultAzureCredential"


def test_config_needs_speech_settings() -> None:
    with pytest.raises(SettingsError, match="SPEECH_ENDPOINT"):
        auth_mode(settings())


def test_factory_follows_the_engine_selection() -> None:
    assert azure_speech_engines(settings()) == (None, None)
    assert describe_azure_speech(settings()) == {}
    stt, tts = azure_speech_engines(settings(speech_key="k", speech_region="westeurope"))
    assert isinstance(stt, AzureSpeechToText)
    assert isinstance(tts, AzureTextToSpeech)
    assert (stt.sample_rate, tts.sample_rate) == (16000, 24000)
    as_stt: SpeechToText = stt  # the interfaces, checked by mypy
    as_tts: TextToSpeech = tts
    assert as_stt is stt
    assert as_tts is tts
    only_tts = azure_speech_engines(settings(speech_key="k", speech_region="westeurope", stt_engine="embedded"))
    assert only_tts[0] is None
    assert isinstance(only_tts[1], AzureTextToSpeech)
    described = describe_azure_speech(settings(speech_key="k", speech_region="westeurope", tts_engine="embedded"))
    assert described == {"stt": "azure speech 16 kHz (key+region, westeurope)"}
    assert "k" not in described["stt"].split()


# --- recognition events (pure) -------------------------------------------------------------------------------


def result_event(text: str, reason: Any = speechsdk.ResultReason.RecognizedSpeech, confidence: float | None = None,
                 ) -> SimpleNamespace:
    detailed = None if confidence is None else (
        f'{{"DisplayText": "{text}", "NBest": [{{"Confidence": {confidence}, "Display": "{text}"}}]}}')
    return SimpleNamespace(result=SimpleNamespace(text=text, reason=reason, json=detailed))


def cancel_event(reason: Any, code: Any = speechsdk.CancellationErrorCode.NoError, details: str = "") -> Any:
    return SimpleNamespace(cancellation_details=SimpleNamespace(reason=reason, code=code, error_details=details),
                           result=SimpleNamespace(text="", reason=speechsdk.ResultReason.Canceled))


def test_sdk_events_become_plain_values() -> None:
    assert recognizing_event(result_event("I want", speechsdk.ResultReason.RecognizingSpeech)) == Recognizing("I want")
    assert recognized_event(result_event(" I want to pay. ", confidence=0.9)) == Recognized("I want to pay.", 0.9)
    assert recognized_event(result_event("", speechsdk.ResultReason.NoMatch)) is None
    assert recognized_event(result_event("  ")) is None
    assert canceled_event(cancel_event(speechsdk.CancellationReason.EndOfStream)).is_error is False
    error = canceled_event(cancel_event(speechsdk.CancellationReason.Error,
                                        speechsdk.CancellationErrorCode.AuthenticationFailure, "401"))
    assert error == RecognitionCanceled(True, "Error", "AuthenticationFailure", "401")


def test_confidence_from_detailed_json() -> None:
    assert confidence_from_json('{"NBest": [{"Confidence": 0.87}, {"Confidence": 0.5}]}') == 0.87
    assert confidence_from_json('{"NBest": []}') is None
    assert confidence_from_json("not json") is None
    assert confidence_from_json(None) is None
    assert confidence_from_json('{"NBest": [{"Confidence": 1.7}]}') == 1.0


def is_done(state: RecognitionState) -> bool:
    return state.done  # a call, so mypy does not narrow the property across apply()


def test_partials_then_finals_are_joined() -> None:
    state = RecognitionState()
    assert state.partial() is None
    state.apply(Recognizing("I'd like"))
    assert state.partial() == "I'd like"
    state.apply(Recognizing("I'd like to pay"))
    state.apply(Recognized("I'd like to pay my bill.", 0.9))
    assert state.partial() == "I'd like to pay my bill."
    state.apply(Recognizing("today"))
    assert state.partial() == "I'd like to pay my bill. today"
    state.apply(Recognized("Today.", 0.6))
    state.apply(RecognitionCanceled(False, "EndOfStream", "NoError"))
    assert not is_done(state)
    state.apply(SessionStopped())
    assert is_done(state)
    transcript = state.transcript(12.5)
    assert transcript.text == "I'd like to pay my bill. Today."
    assert transcript.confidence == pytest.approx((0.9 * 24 + 0.6 * 6) / 30)
    assert transcript.engine_ms == 12.5


def test_no_speech_is_an_empty_transcript() -> None:
    state = RecognitionState()
    state.apply(SessionStopped())
    transcript = state.transcript()
    assert (transcript.text, transcript.confidence) == ("", 0.0)


def test_finals_without_confidence_count_as_certain() -> None:
    state = RecognitionState()
    state.apply(Recognized("Yes."))
    assert state.transcript().confidence == 1.0


def test_an_error_raises_unless_words_were_final() -> None:
    state = RecognitionState()
    state.apply(Recognizing("my account number is"))
    state.apply(RecognitionCanceled(True, "Error", "ServiceTimeout", "details from the service"))
    assert state.done
    with pytest.raises(SpeechServiceError) as caught:
        state.transcript()
    assert caught.value.code == "ServiceTimeout"
    assert "account" not in str(caught.value)  # never what was said
    assert "details" not in str(caught.value)
    kept = RecognitionState()
    kept.apply(Recognized("Hello."))
    kept.apply(RecognitionCanceled(True, "Error", "ConnectionFailure"))
    assert kept.transcript().text == "Hello."


def test_a_timeout_raises_unless_words_were_final() -> None:
    with pytest.raises(SpeechTimeout):
        RecognitionState().transcript(timed_out=True)
    state = RecognitionState()
    state.apply(Recognized("Hello."))
    assert state.transcript(timed_out=True).text == "Hello."


# --- the recognizer session, on real SDK objects that are never started ---------------------------------


def offline_config() -> speechsdk.SpeechConfig:
    return speechsdk.SpeechConfig(subscription="k", region="westeurope")  # contacts nothing


def test_recognizer_session_reads_sdk_events_into_its_sink() -> None:
    session = RecognizerSession.build(offline_config(), "en-US", 16000, prewarm=False)
    received: list[Any] = []
    session.on_recognized(result_event("ignored: no sink yet"))
    session.sink = received.append
    session.write(b"\x00\x01" * 320)  # into the real push stream
    session.on_recognizing(result_event("hel", speechsdk.ResultReason.RecognizingSpeech))
    session.on_recognized(result_event("Hello.", confidence=0.8))
    session.on_recognized(result_event("", speechsdk.ResultReason.NoMatch))
    session.on_canceled(cancel_event(speechsdk.CancellationReason.EndOfStream))
    session.on_recognized(SimpleNamespace())  # a malformed event is logged, never raised into the SDK
    session.on_session_stopped(SimpleNamespace(session_id="s"))
    session.end_audio()
    session.dispose()  # never started: nothing to stop
    session.dispose()
    assert received == [Recognizing("hel"), Recognized("Hello.", 0.8),
                        RecognitionCanceled(False, "EndOfStream", "NoError"), SessionStopped()]
    assert session.recognizer is None


# --- the stream, on a stand-in session delivering events from another thread ----------------------------


class FakeSession:
    """A recognizer session whose "service" answers `script` from a thread once the audio ends."""

    def __init__(self, script: list[Any] | None = None) -> None:
        self.script = script if script is not None else []
        self.sink: Callable[[Any], None] | None = None
        self.audio: list[bytes] = []
        self.started = self.ended = self.disposed = False
        self.threads: list[threading.Thread] = []

    def write(self, pcm: bytes) -> None:
        self.audio.append(pcm)

    def start(self) -> None:
        self.started = True

    def end_audio(self) -> None:
        self.ended = True
        sink = self.sink
        assert sink is not None

        def answer() -> None:
            for event in self.script:
                sink(event)

        thread = threading.Thread(target=answer)
        self.threads.append(thread)
        thread.start()

    def dispose(self) -> None:
        self.disposed = True


class FakeSource:
    def __init__(self, session: FakeSession, gate: asyncio.Event | None = None) -> None:
        self.session = session
        self.gate = gate
        self.disposed: list[Any] = []

    async def acquire(self, language: str) -> FakeSession:
        if self.gate is not None:
            await self.gate.wait()
        return self.session

    def dispose(self, session: Any) -> None:
        session.sink = None
        self.disposed.append(session)


SPOKEN = [Recognizing("I want"), Recognized("I want to pay.", 0.9), Recognizing("now"), Recognized("Now.", 0.9),
          RecognitionCanceled(False, "EndOfStream", "NoError"), SessionStopped()]


async def test_stream_buffers_early_audio_and_returns_the_joined_finals() -> None:
    gate = asyncio.Event()
    session = FakeSession(SPOKEN)
    source = FakeSource(session, gate)
    stream: SttStream = AzureSttStream(source, "en-US")
    stream.push(b"\x01\x00" * 160)
    stream.push(b"\x02\x00" * 160)
    gate.set()
    await asyncio.sleep(0.01)
    stream.push(b"\x03\x00" * 160)
    transcript = await stream.finish()
    assert transcript.text == "I want to pay. Now."
    assert transcript.confidence == pytest.approx(0.9)
    assert transcript.engine_ms > 0
    assert session.audio == [b"\x01\x00" * 160, b"\x02\x00" * 160, b"\x03\x00" * 160]
    assert session.started
    assert session.ended
    assert stream.partial() == "I want to pay. Now."
    assert await stream.finish() is transcript
    await stream.aclose()
    assert source.disposed == [session]
    assert session.sink is None
    stream.push(b"\x00\x00")  # after the end: ignored
    assert len(session.audio) == 3


async def test_stream_partial_follows_the_events() -> None:
    session = FakeSession()
    stream = AzureSttStream(FakeSource(session), "en-US")
    stream.push(b"\x00\x00" * 10)
    await asyncio.sleep(0.01)
    assert session.sink is not None
    session.sink(Recognizing("good morn"))  # as an SDK thread would
    await asyncio.sleep(0.01)
    assert stream.partial() == "good morn"
    await stream.aclose()


async def test_stream_rejects_half_samples() -> None:
    stream = AzureSttStream(FakeSource(FakeSession()), "en-US")
    with pytest.raises(ValueError, match="even"):
        stream.push(b"\x00")
    await stream.aclose()


async def test_stream_without_audio_asks_nothing() -> None:
    session = FakeSession()
    stream = AzureSttStream(FakeSource(session), "en-US")
    transcript = await stream.finish()
    assert (transcript.text, transcript.confidence) == ("", 0.0)
    assert not session.ended
    await stream.aclose()


async def test_stream_error_surfaces_from_finish() -> None:
    session = FakeSession([Recognizing("my card"), RecognitionCanceled(True, "Error", "AuthenticationFailure", "401"),
                           SessionStopped()])
    stream = AzureSttStream(FakeSource(session), "en-US")
    stream.push(b"\x00\x00" * 160)
    with pytest.raises(SpeechServiceError, match="AuthenticationFailure") as caught:
        await stream.finish()
    assert caught.value.reason == "Error"
    assert "card" not in str(caught.value)
    await stream.aclose()


async def test_stream_times_out_without_a_session_end() -> None:
    session = FakeSession([Recognizing("hello")])  # the service never ends the session
    stream = AzureSttStream(FakeSource(session), "en-US", finish_timeout_s=0.05)
    stream.push(b"\x00\x00" * 160)
    with pytest.raises(SpeechTimeout):
        await stream.finish()
    await stream.aclose()


async def test_stream_closed_before_its_session_arrives() -> None:
    gate = asyncio.Event()
    source = FakeSource(FakeSession(), gate)
    stream = AzureSttStream(source, "en-US")
    stream.push(b"\x00\x00" * 160)
    await stream.aclose()
    gate.set()
    await asyncio.sleep(0.01)
    assert source.disposed == []  # it was never handed out
    with pytest.raises(RuntimeError, match="closed"):
        await stream.finish()


# --- the recognizer pool, with stand-in sessions ------------------------------------------------------------


async def test_pool_lends_ready_sessions_and_refills() -> None:
    built: list[str] = []

    def build(language: str) -> Any:
        built.append(language)
        return FakeSession()

    pool = RecognizerPool(build, size=2)
    await pool.warm_up(["en-US"])
    assert pool.ready("en-US") == 2
    first = cast(FakeSession, await pool.acquire("en-US"))
    await pool.warm_up([])  # let the refill finish
    assert pool.ready("en-US") == 2
    assert built == ["en-US"] * 3
    second = cast(FakeSession, await pool.acquire("de-DE"))  # a new language: built on the spot, then pre-warmed
    await pool.warm_up([])
    assert pool.ready("de-DE") == 2
    pool.dispose(first)
    pool.dispose(second)
    await pool.aclose()
    assert first.disposed
    assert second.disposed
    assert pool.ready("en-US") == 0
    with pytest.raises(RuntimeError):
        await pool.acquire("en-US")


async def test_pool_releases_a_session_built_for_an_abandoned_stream() -> None:
    release = threading.Event()
    sessions: list[FakeSession] = []

    def build(language: str) -> Any:
        release.wait(5)
        sessions.append(FakeSession())
        return sessions[-1]

    pool = RecognizerPool(build, size=0)
    task = asyncio.create_task(pool.acquire("en-US"))
    await asyncio.sleep(0.01)
    task.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if sessions and sessions[0].disposed:
            break
        await asyncio.sleep(0.01)
    assert sessions[0].disposed
    await pool.aclose()


# --- synthesis events (pure) -----------------------------------------------------------------------------------


def wav_bytes(pcm: bytes, rate: int = 24000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def test_wav_header_is_stripped_and_raw_pcm_kept() -> None:
    pcm = bytes(range(200))
    assert strip_wav_header(wav_bytes(pcm)) == pcm
    assert strip_wav_header(pcm) == pcm
    assert strip_wav_header(b"RIFF") == b"RIFF"


def is_finished(run: SynthesisRun) -> bool:
    return run.finished


def test_synthesis_run_streams_in_order_and_ignores_stragglers() -> None:
    run = SynthesisRun()
    out = [run.feed(SynthesisChunk("old", b"\x09\x09"))]  # a previous synthesis's late chunk
    out.append(run.feed(SynthesisStarted("r1")))
    out.append(run.feed(SynthesisChunk("r1", wav_bytes(b"\x01\x02\x03"))))  # odd: one byte waits
    out.append(run.feed(SynthesisChunk("old", b"\x08\x08")))
    out.append(run.feed(SynthesisChunk("r1", b"\x04\x05\x06")))
    assert not is_finished(run)
    out.append(run.feed(SynthesisCompleted("r1")))
    assert is_finished(run)
    assert b"".join(out) == b"\x01\x02\x03\x04\x05\x06"
    assert all(len(chunk) % 2 == 0 for chunk in out)
    assert run.feed(SynthesisChunk("r1", b"\x07\x07")) == b""


def test_synthesis_cancel_raises_with_reason_and_code() -> None:
    run = SynthesisRun()
    run.feed(SynthesisStarted("r1"))
    with pytest.raises(SpeechServiceError) as caught:
        run.feed(SynthesisCanceled("r1", "Error", "TooManyRequests", "quota"))
    assert (caught.value.reason, caught.value.code, caught.value.details) == ("Error", "TooManyRequests", "quota")
    assert run.finished


# --- synthesis through the pool, on stand-in SDK synthesizers -------------------------------------------------


class FakeFuture:
    def __init__(self, done: threading.Event | None = None) -> None:
        self.done = done

    def get(self) -> None:
        if self.done is not None:
            self.done.wait(5)


class FakeSignal:
    def disconnect_all(self) -> None:
        pass


def audio_evt(result_id: str, audio: bytes = b"") -> SimpleNamespace:
    return SimpleNamespace(result=SimpleNamespace(result_id=result_id, audio_data=audio, cancellation_details=None))


class FakeSdkSynthesizer:
    """Speaks by calling the pooled synthesizer's handlers from a thread, as the SDK does."""

    synthesis_started = synthesizing = synthesis_completed = synthesis_canceled = FakeSignal()

    def __init__(self, play: Callable[[PooledSynthesizer, str], None]) -> None:
        self.play = play
        self.pooled: PooledSynthesizer | None = None
        self.ssml: list[str] = []
        self.stopped = 0
        self.finished = threading.Event()

    def speak_ssml_async(self, ssml: str) -> FakeFuture:
        self.ssml.append(ssml)
        self.finished.clear()
        assert self.pooled is not None
        pooled = self.pooled

        def run() -> None:
            self.play(pooled, f"r{len(self.ssml)}")
            self.finished.set()

        threading.Thread(target=run).start()
        return FakeFuture(self.finished)

    def stop_speaking_async(self) -> FakeFuture:
        self.stopped += 1
        return FakeFuture()


def speaks(chunks: list[bytes], end: str = "completed", gate: threading.Event | None = None,
           ) -> Callable[[PooledSynthesizer, str], None]:
    def play(pooled: PooledSynthesizer, rid: str) -> None:
        pooled.on_started(audio_evt(rid))
        pooled.on_synthesizing(audio_evt("stale", b"\xff\xff"))
        for i, chunk in enumerate(chunks):
            pooled.on_synthesizing(audio_evt(rid, chunk))
            if gate is not None and i == 0:
                gate.wait(5)
        if end == "completed":
            pooled.on_completed(audio_evt(rid))
        elif end == "canceled":
            details = SimpleNamespace(reason=speechsdk.CancellationReason.Error,
                                      error_code=speechsdk.CancellationErrorCode.ConnectionFailure,
                                      error_details="connection lost")
            pooled.on_canceled(SimpleNamespace(result=SimpleNamespace(result_id=rid, cancellation_details=details)))
    return play


def fake_tts(play: Callable[[PooledSynthesizer, str], None], **kwargs: Any) -> tuple[AzureTextToSpeech,
                                                                                   list[FakeSdkSynthesizer]]:
    made: list[FakeSdkSynthesizer] = []

    def build() -> PooledSynthesizer:
        sdk = FakeSdkSynthesizer(play)
        pooled = PooledSynthesizer(sdk, None)
        sdk.pooled = pooled
        made.append(sdk)
        return pooled

    return AzureTextToSpeech(SynthesizerPool(build, size=1), **kwargs), made


async def settled(pool: SynthesizerPool) -> None:
    await asyncio.gather(*list(pool._tasks))


async def collect(tts: AzureTextToSpeech, text: str, voice: Voice | None = None,
                  into: list[bytes] | None = None) -> list[bytes]:
    chunks = into if into is not None else []
    async for chunk in tts.synthesize(text, voice or Voice(), "en-US"):
        chunks.append(chunk)
    return chunks


async def test_tts_streams_chunks_in_order_without_a_header() -> None:
    tts, made = fake_tts(speaks([wav_bytes(b"\x01\x02\x03\x04"), b"\x05\x06", b"\x07\x08"]))
    await tts.warm_up()
    assert tts.pool.idle == 1
    chunks = await collect(tts, "Your balance is $5 & change.", Voice(azure="en-US-AndrewNeural", style="calm"))
    assert chunks == [b"\x01\x02\x03\x04", b"\x05\x06", b"\x07\x08"]
    assert len(made) == 1
    assert 'name="en-US-AndrewNeural"' in made[0].ssml[0]
    assert "$5 &amp; change." in made[0].ssml[0]
    await settled(tts.pool)
    assert tts.pool.idle == 1  # given back for the next sentence
    assert await collect(tts, "Again.") == [b"\x01\x02\x03\x04", b"\x05\x06", b"\x07\x08"]
    assert len(made) == 1  # the same synthesizer, reused
    assert made[0].stopped == 0
    await tts.aclose()


async def test_tts_says_nothing_for_blank_text() -> None:
    tts, made = fake_tts(speaks([b"\x01\x02"]))
    assert await collect(tts, "   ") == []
    assert made == []


async def test_tts_cancel_raises_and_the_synthesizer_is_not_reused() -> None:
    tts, made = fake_tts(speaks([b"\x01\x02"], end="canceled"))
    received: list[bytes] = []
    with pytest.raises(SpeechServiceError) as caught:
        await collect(tts, "Secret text", into=received)
    assert received == [b"\x01\x02"]
    assert (caught.value.reason, caught.value.code) == ("Error", "ConnectionFailure")
    assert "Secret" not in str(caught.value)
    await settled(tts.pool)
    assert tts.pool.idle == 0
    assert made[0].pooled is not None
    assert made[0].pooled.synthesizer is None  # released
    await tts.aclose()


async def test_tts_barge_in_stops_the_synthesis_then_returns_the_synthesizer() -> None:
    gate = threading.Event()
    tts, made = fake_tts(speaks([b"\x01\x02", b"\x03\x04"], gate=gate))
    stream = tts.synthesize("A long answer.", Voice(), "en-US")
    assert await anext(stream) == b"\x01\x02"
    await stream.aclose()  # the caller spoke over the agent
    gate.set()
    await settled(tts.pool)
    assert made[0].stopped == 1
    assert tts.pool.idle == 1
    await tts.aclose()


async def test_tts_times_out_when_the_service_goes_quiet() -> None:
    gate = threading.Event()
    tts, made = fake_tts(speaks([b"\x01\x02", b"\x03\x04"], gate=gate), chunk_timeout_s=0.05)
    with pytest.raises(SpeechTimeout):
        await collect(tts, "Hello.")
    gate.set()
    await settled(tts.pool)
    assert made[0].stopped == 1
    assert tts.pool.idle == 0
    await tts.aclose()


def test_pooled_synthesizer_wires_a_real_headless_synthesizer() -> None:
    pooled = PooledSynthesizer.build(offline_config(), prewarm=False)  # SpeechSynthesizer(audio_config=None)
    received: list[Any] = []
    pooled.sink = received.append
    pooled.on_started(audio_evt("r1"))
    pooled.on_synthesizing(audio_evt("r1", b"\x01\x02"))
    pooled.on_completed(audio_evt("r1"))
    pooled.dispose()
    assert received == [SynthesisStarted("r1"), SynthesisChunk("r1", b"\x01\x02"), SynthesisCompleted("r1")]
    assert pooled.synthesizer is None

