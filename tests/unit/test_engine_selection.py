"""Settings alone choose the engines and the pipeline: the cloud chat engines come wrapped in the retry
policy, and a path whose service is not configured fails at start with the setting to fix."""

from __future__ import annotations

import pytest

from media_host.engines.factory import check_engines, cloud_chat
from media_host.engines.resilient_chat import ChatRetryStats, ResilientChatModel
from media_host.metrics import DerivedCounter, MediaMetrics
from media_host.pipelines.factory import check_pipeline
from switchboard.settings import SettingsError, load_settings


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
    metrics = MediaMetrics(dict, dict)
    counter = DerivedCounter("switchboard_chat_failures_total", "Cloud chat failures", "")
    metrics.add_source(lambda: counter.render_from(stats.samples()))
    text = metrics.render(lambda _stat: {})
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
