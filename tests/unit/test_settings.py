from __future__ import annotations

import os
import subprocess
import sys

import pytest

from switchboard.settings import PROJECT_ROOT, SettingsError, load_settings

AZURE_ENV_PREFIXES = ("ACS_", "SPEECH_", "AZURE_OPENAI_", "OPENAI_", "COSMOS_", "REDIS_", "SIGNING_SECRET",
                      "CALLBACK_BASE_URL", "MEDIA_HOST_PUBLIC_URL", "PIPELINE", "STT_ENGINE", "TTS_ENGINE",
                      "CHAT_ENGINE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(AZURE_ENV_PREFIXES):
            monkeypatch.delenv(name)


def test_no_azure_settings_selects_the_embedded_default() -> None:
    s = load_settings()
    assert s.embedded
    assert s.selection() == {
        "mode": "embedded", "redis": "embedded-valkey", "call_control": "local-acs", "call_records": "sqlite",
        "pipeline": "cascade", "stt": "embedded", "tts": "embedded-hibari", "chat": "offline",
    }
    assert s.media_host_port == 8765


def test_azure_settings_select_cloud_components(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "ACS_ENDPOINT": "https://acs.communication.azure.com", "CALLBACK_BASE_URL": "https://func.example",
        "MEDIA_HOST_PUBLIC_URL": "wss://media.example", "SIGNING_SECRET": "s" * 32,
        "SPEECH_KEY": "k", "SPEECH_REGION": "swedencentral",
        "AZURE_OPENAI_ENDPOINT": "https://aoai.example", "AZURE_OPENAI_CHAT_DEPLOYMENT": "gpt-4o-mini",
        "COSMOS_ENDPOINT": "https://cosmos.example", "REDIS_URL": "rediss://cache.example:6380",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    sel = load_settings().selection()
    assert sel == {"mode": "azure", "redis": "external", "call_control": "acs", "call_records": "cosmos",
                   "pipeline": "cascade", "stt": "azure", "tts": "azure", "chat": "azure_openai"}


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.setenv("SPEECH_KEY", "")
    s = load_settings()
    assert s.redis_url is None
    assert s.speech_key is None
    assert s.embedded


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("REDIS_URL", "localhost:6379", "Invalid setting REDIS_URL: must be a Redis URL"),
        ("ACS_ENDPOINT", "not a url", "Invalid setting ACS_ENDPOINT: must be a http(s) URL"),
        ("MEDIA_HOST_PUBLIC_URL", "https://media.example", "Invalid setting MEDIA_HOST_PUBLIC_URL"),
        ("MEDIA_HOST_PORT", "eighty", "Invalid setting MEDIA_HOST_PORT"),
        ("MEDIA_HOST_PORT", "70000", "Invalid setting MEDIA_HOST_PORT"),
        ("LOG_LEVEL", "LOUD", "Invalid setting LOG_LEVEL"),
        ("STT_ENGINE", "whisper", "Invalid setting STT_ENGINE"),
        ("ACS_CONNECTION_STRING", "endpoint=nope", "Invalid setting ACS_CONNECTION_STRING"),
    ],
)
def test_invalid_settings_name_the_setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                           expected: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_acs_without_its_companions_names_the_missing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACS_ENDPOINT", "https://acs.communication.azure.com")
    with pytest.raises(SettingsError, match="CALLBACK_BASE_URL is required when ACS is configured"):
        load_settings()


def test_engine_forced_to_azure_without_speech_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STT_ENGINE", "azure")
    with pytest.raises(SettingsError, match="STT_ENGINE=azure needs SPEECH_KEY"):
        load_settings()


def test_secret_values_never_appear_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACS_CONNECTION_STRING", "endpoint=nope;accesskey=TOP-SECRET-VALUE")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "TOP-SECRET-VALUE" not in str(info.value)


def test_media_host_fails_at_start_with_one_clear_line() -> None:
    env = {**os.environ, "REDIS_URL": "localhost:6379"}
    proc = subprocess.run([sys.executable, "-m", "media_host"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "media_host: Invalid setting REDIS_URL: must be a Redis URL starting with " \
                                  "redis:// or rediss:// or unix://"
    assert "Traceback" not in proc.stderr


def test_entra_id_for_redis_needs_a_tls_url_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_USE_ENTRA_ID", "true")
    monkeypatch.setenv("REDIS_URL", "rediss://switchboard.swedencentral.redis.azure.net:10000")
    s = load_settings()
    assert s.redis_use_entra_id
    assert s.redis_url == "rediss://switchboard.swedencentral.redis.azure.net:10000"
    assert not load_settings(redis_use_entra_id=False, redis_url="redis://localhost:6379").redis_use_entra_id


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, "Invalid settings: REDIS_USE_ENTRA_ID needs REDIS_URL"),
        ("redis://cache.example:6379", "Invalid settings: REDIS_USE_ENTRA_ID needs a REDIS_URL starting with "
                                       "rediss://"),
        ("rediss://:TOP-SECRET-VALUE@cache.example:10000", "Invalid settings: REDIS_USE_ENTRA_ID needs a "
                                                            "REDIS_URL without a user name or password"),
        ("rediss://someone:TOP-SECRET-VALUE@cache.example:10000", "Invalid settings: REDIS_USE_ENTRA_ID needs a "
                                                                  "REDIS_URL without a user name or password"),
        ("rediss://cache.example:10000/0?password=TOP-SECRET-VALUE", "Invalid settings: REDIS_USE_ENTRA_ID "
                                                                     "needs a REDIS_URL without a user name"),
    ],
)
def test_entra_id_for_redis_names_what_is_wrong_never_the_value(monkeypatch: pytest.MonkeyPatch, url: str | None,
                                                                expected: str) -> None:
    monkeypatch.setenv("REDIS_USE_ENTRA_ID", "1")
    if url is not None:
        monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(expected)
    assert "TOP-SECRET-VALUE" not in message
    assert "cache.example" not in message
    assert "\n" not in message
