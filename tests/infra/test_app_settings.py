"""The settings the template gives each app are the settings the code reads, and they select Azure for
everything: no setting name is misspelt, none the code needs is missing, no key stands in for an identity."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from switchboard.settings import Settings, load_settings
from tests.infra import bicep

# Names the platform or the Azure SDKs read, not our settings class.
PLATFORM = {
    "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential",  # Functions host, identity-based
    "APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "AZURE_CLIENT_ID",  # DefaultAzureCredential: which user-assigned identity
    # The Durable Task Scheduler backend (durableBackend): host.json overrides and the scheduler connection
    "AzureFunctionsJobHost__extensions__durableTask__storageProvider__type",
    "AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName",
    "AzureFunctionsJobHost__extensions__durableTask__extendedSessionsEnabled",
    "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
}

# Settings with no default that the code reads but the template leaves unset, and why.
UNSET_ON_PURPOSE = {
    "acs_connection_string": "the Function App uses its managed identity with ACS_ENDPOINT",
    "acs_access_key": "managed identity instead of HMAC keys",
    "speech_key": "Entra ID against SPEECH_ENDPOINT (the custom domain)",
    "speech_region": "SPEECH_ENDPOINT is used",
    "azure_openai_api_key": "Entra ID",
    "cosmos_key": "Entra ID with Cosmos DB data-plane RBAC",
    "openai_base_url": "Azure OpenAI is the chat model",
    "openai_api_key": "Azure OpenAI is the Realtime service",
    "realtime_websocket_url": "only for proxies and local test servers",
    "browser_access_key": "no browser calls in production (the softphone is for local runs)",
    "otel_exporter_otlp_endpoint": "injected by the Container Apps managed OpenTelemetry agent",
}
# ... and those one runtime does without.
UNSET_IN = {
    "function_app": {"audiocodes_bot_token": "only the media host serves /ws (it gets the token from Key Vault)"},
    "media_host": {"cosmos_endpoint": "call records are written by the Function App"},
}

# What the template computes at deployment, as a sample of its shape.
COMPUTED = {
    "REDIS_URL": "rediss://redis-abc.swedencentral.redis.azure.net:10000",
    "ACS_ENDPOINT": "https://acs-abc.unitedstates.communication.azure.com",
    "ACS_RESOURCE_ID": "6a1f3e0c-1b7d-4d3c-9a52-2b0f5c9e4d11",
    "SPEECH_ENDPOINT": "https://ai-abc.cognitiveservices.azure.com",
    "AZURE_OPENAI_ENDPOINT": "https://ai-abc.openai.azure.com",
    "AZURE_OPENAI_CHAT_DEPLOYMENT": "chat",
    "AZURE_OPENAI_REALTIME_DEPLOYMENT": "realtime",
    "AZURE_OPENAI_TRANSCRIPTION_DEPLOYMENT": "transcribe",
    "COSMOS_ENDPOINT": "https://cosmos-abc.documents.azure.com:443/",
    "COSMOS_DATABASE": "switchboard",
    "COSMOS_CONTAINER": "calls",
    "CALL_RECORD_TTL_DAYS": "90",
    "MEDIA_HOST_PORT": "8765",
    "MEDIA_MAX_CALLS": "60",
    "SHUTDOWN_GRACE_SECONDS": "585",
    "AzureWebJobsStorage__accountName": "stabc",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
    "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
}

RUNTIMES = {
    "function_app": (bicep.function_app_settings, ["function_app.py", "callbacks", "orchestrations", "switchboard"]),
    "media_host": (bicep.media_host_settings, ["media_host", "switchboard"]),
}
FIELD_READ = re.compile(r"\bsettings\.([a-z_][a-z0-9_]*)")


def env_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def fields_read(paths: list[str]) -> set[str]:
    """Settings fields the runtime's code reads (`settings.<field>`, `self.settings.<field>`...)."""
    found: set[str] = set()
    for entry in paths:
        root = bicep.ROOT / entry
        for path in [root] if root.is_file() else root.rglob("*.py"):
            found |= set(FIELD_READ.findall(Path(path).read_text()))
    return found & set(Settings.model_fields)


def deployed_env(runtime: str) -> dict[str, str]:
    """The runtime's settings as Azure would see them: computed values replaced by samples of their shape."""
    settings = RUNTIMES[runtime][0]()
    env = {}
    for name, written in settings.items():
        if written == bicep.PLACEHOLDER:
            assert name in COMPUTED, f"{name} is computed by the template: add a sample of it to COMPUTED"
        value = COMPUTED[name] if written == bicep.PLACEHOLDER else written
        from_key_vault = value.startswith(("secret:", "@Microsoft.KeyVault"))
        env[name] = "a-secret-from-key-vault-0123456789abcdef" if from_key_vault else value
    return env


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in env_names():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_every_name_the_template_sets_is_read(runtime: str) -> None:
    unknown = set(RUNTIMES[runtime][0]()) - env_names() - PLATFORM
    assert not unknown, f"{runtime}: the template sets names no code reads: {sorted(unknown)}"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_every_setting_the_code_needs_is_set(runtime: str) -> None:
    template = set(RUNTIMES[runtime][0]())
    needed = {f for f in fields_read(RUNTIMES[runtime][1]) if Settings.model_fields[f].default is None}
    assert needed, "the scan found no settings: the pattern is broken"
    missing = {f for f in needed if f.upper() not in template} - set(UNSET_ON_PURPOSE) - set(UNSET_IN[runtime])
    assert not missing, f"{runtime}: the code reads {sorted(missing)} but the template does not set them"


def test_waivers_name_real_settings_the_template_leaves_unset() -> None:
    both = set(bicep.function_app_settings()) | set(bicep.media_host_settings())
    for field in UNSET_ON_PURPOSE:
        assert field in Settings.model_fields, field
        assert field.upper() not in both, f"{field} is waived as unset but the template sets it"
    for runtime, fields in UNSET_IN.items():
        for field in fields:
            assert field.upper() not in RUNTIMES[runtime][0](), f"{field} is waived for {runtime} but set there"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_no_keys_where_an_identity_works(runtime: str) -> None:
    settings = RUNTIMES[runtime][0]()
    for name in ("ACS_CONNECTION_STRING", "ACS_ACCESS_KEY", "SPEECH_KEY", "AZURE_OPENAI_API_KEY", "COSMOS_KEY"):
        assert name not in settings
    assert settings["REDIS_USE_ENTRA_ID"] == "true"
    assert settings["SIGNING_SECRET"].startswith(("@Microsoft.KeyVault(SecretUri=", "secret:")), "from Key Vault"


@pytest.mark.parametrize("pipeline", ["cascade", "realtime"])
def test_media_host_settings_select_azure_for_everything(clean_env: pytest.MonkeyPatch, pipeline: str) -> None:
    for name, value in deployed_env("media_host").items():
        clean_env.setenv(name, value)
    clean_env.setenv("PIPELINE", pipeline)
    settings = load_settings()
    assert settings.selection() | {"call_records": "n/a"} == {
        "mode": "azure", "redis": "external", "call_control": "acs", "call_records": "n/a", "pipeline": pipeline,
        "stt": "azure", "tts": "azure", "chat": "azure_openai",
    }
    assert settings.resolved_realtime == "azure"
    assert settings.media_host_bind == "0.0.0.0"
    assert settings.audiocodes_bot_token is not None


def test_function_app_settings_select_azure_for_everything(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in deployed_env("function_app").items():
        clean_env.setenv(name, value)
    settings = load_settings()
    assert settings.selection()["call_control"] == "acs"
    assert settings.selection()["call_records"] == "cosmos"
    assert settings.selection()["redis"] == "external"
    assert settings.acs_resource_id
    assert settings.callback_base_url
    assert settings.media_host_public_url
