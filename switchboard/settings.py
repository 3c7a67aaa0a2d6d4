"""The one settings class for the whole project.

Every value comes from an environment variable of the same name in upper case (Functions loads
`local.settings.json` into the environment). Every Azure setting is optional: with none present the
embedded default is selected, per component, and `selection()` says which was chosen.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(Exception):
    """A setting is missing or invalid. The message is one line that names the setting."""


class UnknownNumber(StrEnum):
    DEFAULT = "default"
    REJECT = "reject"


class Engine(StrEnum):
    AUTO = "auto"
    EMBEDDED = "embedded"
    AZURE = "azure"


class ChatEngine(StrEnum):
    AUTO = "auto"
    OFFLINE = "offline"
    AZURE_OPENAI = "azure_openai"
    OPENAI_COMPATIBLE = "openai_compatible"


class PipelineKind(StrEnum):
    CASCADE = "cascade"
    REALTIME = "realtime"
    ECHO = "echo"  # passthrough: proves the telephony path without engines


class EmbeddedTts(StrEnum):
    HIBARI = "hibari"
    PIPER = "piper"


class TraceExporter(StrEnum):
    NONE = "none"
    CONSOLE = "console"
    OTLP = "otlp"


class RealtimeFlavor(StrEnum):
    GA = "ga"
    BETA = "beta"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def _check_url(value: str | None, schemes: set[str], what: str) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        allowed = " or ".join(f"{s}://" for s in sorted(schemes))
        raise ValueError(f"must be a {what} URL starting with {allowed}")
    return value.rstrip("/")


def _check_entra_redis_url(url: str | None) -> None:
    """Entra ID needs an external Redis over TLS, and the token is the password: none may be in the URL."""
    if url is None:
        raise ValueError("REDIS_USE_ENTRA_ID needs REDIS_URL (the embedded server has no Entra ID)")
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        raise ValueError("REDIS_USE_ENTRA_ID needs a REDIS_URL starting with rediss:// (Entra ID is TLS only)")
    query = parse_qs(parts.query)
    if parts.username or parts.password or "username" in query or "password" in query:
        raise ValueError("REDIS_USE_ENTRA_ID needs a REDIS_URL without a user name or password "
                         "(the identity's object id and token are used)")


class Settings(BaseSettings):
    """All settings. Field `foo_bar` is read from the environment variable `FOO_BAR`."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", validate_default=True, env_ignore_empty=True
    )

    # --- general -------------------------------------------------------------------------------
    log_level: str = Field("INFO", description="Python log level for all components.")
    log_format: LogFormat = Field(LogFormat.TEXT, description="`text` (one readable line) or `json`.")
    agents_dir: Path = Field(PROJECT_ROOT / "agents" / "definitions", description="Agent YAML directory.")

    # --- shared state --------------------------------------------------------------------------
    redis_url: str | None = Field(None, description="Redis URL. Unset: an embedded valkey server.")
    redis_use_entra_id: bool = Field(
        False, description="Authenticate to REDIS_URL with Microsoft Entra ID (the managed identity; AZURE_CLIENT_ID "
        "picks a user-assigned one) instead of a password in the URL.",
    )
    session_ttl_seconds: int = Field(6 * 3600, ge=60, description="Lifetime of a call session in Redis.")
    dedupe_ttl_seconds: int = Field(3600, ge=1, description="How long de-duplication keys are kept.")
    signing_secret: SecretStr | None = Field(
        None, description="HMAC key for per-call tokens. Required once any Azure service is configured."
    )
    token_ttl_seconds: int = Field(4 * 3600, ge=60, description="Lifetime of media and callback tokens.")

    # --- Azure Communication Services ----------------------------------------------------------
    acs_connection_string: SecretStr | None = Field(None, description="ACS connection string (key auth).")
    acs_endpoint: str | None = Field(None, description="ACS endpoint; with no key, managed identity is used.")
    acs_access_key: SecretStr | None = Field(None, description="ACS access key (base64) for HMAC auth.")
    acs_resource_id: str | None = Field(
        None, description="ACS immutable resource id: enables JWT checks on callbacks and media sockets."
    )
    acs_jwks_url: str = Field("https://acscallautomation.communication.azure.com/calling/keys",
                              description="Where ACS publishes the keys its JWTs are signed with.")
    acs_jwks_lifespan_seconds: int = Field(
        900, ge=10, le=86400,
        description="How long ACS's signing keys are held before they are fetched again: a key ACS withdraws "
                    "stops validating within this. A token with an unknown key id refetches at once.")
    acs_jwt_issuer: str = Field("https://acscallautomation.communication.azure.com",
                                description="The issuer ACS JWTs must carry.")
    callback_base_url: str | None = Field(None, description="Public base URL of the Function App.")
    media_host_public_url: str | None = Field(None, description="Public wss:// base URL of the media host.")

    # --- Azure AI Speech -----------------------------------------------------------------------
    speech_key: SecretStr | None = Field(None, description="Speech resource key.")
    speech_region: str | None = Field(None, description="Speech region, e.g. `swedencentral`.")
    speech_endpoint: str | None = Field(None, description="Speech custom-domain endpoint (Entra ID auth).")

    # --- Azure OpenAI / OpenAI-compatible ------------------------------------------------------
    azure_openai_endpoint: str | None = Field(None, description="Azure OpenAI endpoint.")
    azure_openai_api_key: SecretStr | None = Field(None, description="Azure OpenAI key; unset: Entra ID.")
    azure_openai_api_version: str = Field("2025-04-01-preview", description="Azure OpenAI api-version.")
    azure_openai_chat_deployment: str | None = Field(None, description="Chat model deployment name.")
    azure_openai_realtime_deployment: str | None = Field(None, description="Realtime model deployment name.")
    azure_openai_transcription_deployment: str | None = Field(None, description=(
        "Deployment that transcribes the caller in Realtime calls (e.g. of gpt-4o-mini-transcribe): Azure takes a "
        "deployment name where OpenAI takes the agent's `transcription_model`. Unset: not transcribed on Azure."))
    azure_openai_realtime_api_version: str = Field(
        "2025-04-01-preview", description="api-version of the Azure Realtime preview (REALTIME_FLAVOR=beta)."
    )
    openai_base_url: str | None = Field(None, description="Any OpenAI-compatible base URL (Ollama, vLLM).")
    openai_api_key: SecretStr | None = Field(None, description="Key for OPENAI_BASE_URL.")
    openai_chat_model: str = Field("gpt-4o-mini", description="Model name sent to OPENAI_BASE_URL.")
    chat_timeout_seconds: float = Field(10.0, gt=0, description="Chat model: connect, first byte and gap limit.")
    chat_max_retries: int = Field(2, ge=0, le=5, description="Retries on 429, 5xx and timeouts before falling back.")
    chat_retry_max_wait_seconds: float = Field(
        2.0, ge=0, description="Longest wait for a retry (a caller is waiting): longer retry-after falls back."
    )
    openai_realtime_model: str = Field("gpt-realtime", description="Realtime model with OPENAI_API_KEY (OpenAI).")
    realtime_websocket_url: str | None = Field(
        None, description="Override of the Realtime WebSocket base URL (a proxy, or a local test server)."
    )
    realtime_reconnect_attempts: int = Field(5, ge=0, le=20, description="Realtime socket reconnects per drop.")
    realtime_reconnect_deadline_seconds: float = Field(8.0, ge=0, le=120, description=(
        "The longest a Realtime call tries to connect, at its start or after a drop (a connect that hangs "
        "counts), before the cascade takes over, or without cascade engines a person; 0: no limit."))

    # --- Cosmos DB -----------------------------------------------------------------------------
    cosmos_endpoint: str | None = Field(None, description="Cosmos DB account endpoint.")
    cosmos_key: SecretStr | None = Field(None, description="Cosmos DB key; unset: Entra ID.")
    cosmos_database: str = Field("switchboard", description="Cosmos DB database.")
    cosmos_container: str = Field("calls", description="Cosmos DB container for call records.")
    records_db_path: Path = Field(PROJECT_ROOT / ".data" / "records.sqlite3",
                                  description="SQLite file for call records when Cosmos DB is not configured.")
    call_record_ttl_days: int = Field(90, ge=1, description="Call records expire after this many days.")

    # --- call control --------------------------------------------------------------------------
    unknown_number_action: UnknownNumber = Field(
        UnknownNumber.DEFAULT,
        description="A call to a number no scenario lists: `default` (DEFAULT_SCENARIO answers) or `reject`.",
    )
    call_connect_timeout_seconds: int = Field(45, ge=5, description="An answered call must connect within this.")
    call_max_duration_seconds: int = Field(3600, ge=60, description="Calls are hung up after this long.")
    media_restart_attempts: int = Field(5, ge=0, le=10, description=(
        "Media streaming restarts after a failure (1, 2, 4, 4, 4 s apart: 5 cover a media host restart of 15 s)."))

    # --- engine selection ----------------------------------------------------------------------
    pipeline: PipelineKind = Field(
        PipelineKind.CASCADE,
        description="`cascade` (STT, LLM, TTS), `realtime` (speech to speech) or `echo` (passthrough).",
    )
    echo_prompt_ms: int = Field(2000, ge=0, le=60000, description="Tone the echo pipeline plays first (0: none).")
    default_scenario: str = Field("banking", description="Scenario for calls whose number or bot maps to none.")
    stt_engine: Engine = Field(Engine.AUTO, description="`auto`, `embedded` or `azure`.")
    tts_engine: Engine = Field(Engine.AUTO, description="`auto`, `embedded` or `azure`.")
    chat_engine: ChatEngine = Field(
        ChatEngine.AUTO, description="`auto`, `offline`, `azure_openai` or `openai_compatible`."
    )
    embedded_tts: EmbeddedTts = Field(
        EmbeddedTts.HIBARI,
        description="`hibari` (Apache-2.0, 24 kHz) or `piper` (GPL-3.0 extra in requirements-piper.txt, 22.05 kHz).",
    )
    realtime_flavor: RealtimeFlavor = Field(RealtimeFlavor.GA, description="Realtime event names: ga or beta.")

    # --- engine fallbacks and deadlines ----------------------------------------------------------
    embedded_fallback: bool = Field(True, description=(
        "Azure Speech STT/TTS fall back to the embedded Whisper/TTS when those packages are installed (they are "
        "then loaded at start); false: Azure Speech alone."))
    engine_cooldown_seconds: float = Field(30.0, gt=0, le=3600, description=(
        "An engine that failed is skipped this long, then probed in the background until it answers."))
    stt_deadline_seconds: float = Field(5.0, gt=0, le=60, description=(
        "Longest wait for a transcript once the caller stopped; past it the engine has failed."))
    chat_first_token_seconds: float = Field(8.0, gt=0, le=120, description=(
        "Longest wait for a cloud chat model's first token, retries included; past it the offline brain answers."))
    tts_first_audio_seconds: float = Field(5.0, gt=0, le=60, description=(
        "Longest wait for a sentence's first audio (and each next chunk); past it the engine has failed."))

    # --- media host ----------------------------------------------------------------------------
    media_host_bind: str = Field("127.0.0.1", description="Address the media host listens on.")
    media_host_port: int = Field(8765, ge=0, le=65535, description="Port the media host listens on.")
    shutdown_grace_seconds: float = Field(30.0, ge=0, description="SIGTERM drain deadline for calls.")
    media_max_calls: int = Field(200, ge=1, description="Concurrent calls; beyond it new sockets are refused.")
    media_max_message_bytes: int = Field(262144, ge=4096, description="Largest WebSocket message accepted.")
    media_idle_timeout_seconds: float = Field(30.0, gt=0, description="Close a call socket silent this long.")
    media_open_timeout_seconds: float = Field(10.0, gt=0, description="Time a new socket has to start its call.")
    audiocodes_bot_token: SecretStr | None = Field(
        None, description="Bearer token AudioCodes VoiceAI Connect sends; unset disables `/ws`."
    )
    audiocodes_idle_timeout_seconds: float = Field(
        300.0, gt=0, description="Idle timeout for AudioCodes calls (VAIC pauses its stream during transfers)."
    )
    monitor_calls: bool = Field(
        False, description="Publish each call's transcript, handoffs, tool calls and turn latency on the Redis "
        "channel `<prefix>monitor:<call id>` for live watchers (`make run` turns it on).",
    )
    browser_access_key: SecretStr | None = Field(
        None, description="Bearer key for creating browser calls; unset: open in the embedded default, else off."
    )
    browser_token_ttl_seconds: int = Field(300, ge=30, description="How long a browser call token may be used.")
    otel_traces_exporter: TraceExporter = Field(TraceExporter.NONE, description="`none`, `console` or `otlp`.")
    otel_exporter_otlp_endpoint: str | None = Field(None, description="OTLP/HTTP traces endpoint, when `otlp`.")

    # --- validators ----------------------------------------------------------------------------
    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        return _check_url(v, {"redis", "rediss", "unix"}, "Redis")

    @field_validator("acs_endpoint", "callback_base_url", "speech_endpoint", "azure_openai_endpoint",
                     "openai_base_url", "cosmos_endpoint", "acs_jwks_url", "acs_jwt_issuer",
                     "otel_exporter_otlp_endpoint")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        return _check_url(v, {"http", "https"}, "http(s)")

    @field_validator("realtime_websocket_url")
    @classmethod
    def _realtime_url(cls, v: str | None) -> str | None:
        return _check_url(v, {"ws", "wss"}, "WebSocket")

    @field_validator("media_host_public_url")
    @classmethod
    def _ws_url(cls, v: str | None) -> str | None:
        return _check_url(v, {"ws", "wss"}, "WebSocket")

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, v: str) -> str:
        level = v.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("acs_connection_string")
    @classmethod
    def _acs_connection_string(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None or not v.get_secret_value():
            return None
        parts = dict(p.split("=", 1) for p in v.get_secret_value().split(";") if "=" in p)
        if not parts.get("endpoint", "").startswith(("https://", "http://")) or not parts.get("accesskey"):
            raise ValueError("must look like 'endpoint=https://<name>.communication.azure.com/;accesskey=<key>'")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if self.redis_use_entra_id:
            _check_entra_redis_url(self.redis_url)
        if self.acs_configured:
            for name in ("callback_base_url", "media_host_public_url", "signing_secret"):
                if getattr(self, name) is None:
                    raise ValueError(f"{name.upper()} is required when ACS is configured")
        if self.speech_key and not (self.speech_region or self.speech_endpoint):
            raise ValueError("SPEECH_REGION or SPEECH_ENDPOINT is required with SPEECH_KEY")
        if self.azure_openai_endpoint and not (
            self.azure_openai_chat_deployment or self.azure_openai_realtime_deployment
        ):
            raise ValueError(
                "AZURE_OPENAI_CHAT_DEPLOYMENT or AZURE_OPENAI_REALTIME_DEPLOYMENT is required "
                "with AZURE_OPENAI_ENDPOINT"
            )
        if self.stt_engine is Engine.AZURE and not self.speech_configured:
            raise ValueError("STT_ENGINE=azure needs SPEECH_KEY with SPEECH_REGION, or SPEECH_ENDPOINT")
        if self.tts_engine is Engine.AZURE and not self.speech_configured:
            raise ValueError("TTS_ENGINE=azure needs SPEECH_KEY with SPEECH_REGION, or SPEECH_ENDPOINT")
        if self.chat_engine is ChatEngine.AZURE_OPENAI and not self.azure_openai_chat_deployment:
            raise ValueError("CHAT_ENGINE=azure_openai needs AZURE_OPENAI_ENDPOINT and a chat deployment")
        if self.chat_engine is ChatEngine.OPENAI_COMPATIBLE and not self.openai_base_url:
            raise ValueError("CHAT_ENGINE=openai_compatible needs OPENAI_BASE_URL")
        if self.pipeline is PipelineKind.REALTIME and self.resolved_realtime is None:
            raise ValueError("PIPELINE=realtime needs AZURE_OPENAI_ENDPOINT with AZURE_OPENAI_REALTIME_DEPLOYMENT, "
                             "or OPENAI_API_KEY, or REALTIME_WEBSOCKET_URL")
        return self

    # --- derived -------------------------------------------------------------------------------
    @property
    def acs_configured(self) -> bool:
        return self.acs_connection_string is not None or self.acs_endpoint is not None

    @property
    def speech_configured(self) -> bool:
        return self.speech_endpoint is not None or (self.speech_key is not None and self.speech_region is not None)

    @property
    def cosmos_configured(self) -> bool:
        return self.cosmos_endpoint is not None

    def _engine(self, chosen: Engine) -> str:
        if chosen is Engine.AUTO:
            return "azure" if self.speech_configured else "embedded"
        return chosen.value

    @property
    def resolved_stt(self) -> str:
        return self._engine(self.stt_engine)

    @property
    def resolved_tts(self) -> str:
        return self._engine(self.tts_engine)

    @property
    def resolved_chat(self) -> str:
        if self.chat_engine is not ChatEngine.AUTO:
            return self.chat_engine.value
        if self.azure_openai_chat_deployment:
            return ChatEngine.AZURE_OPENAI.value
        if self.openai_base_url:
            return ChatEngine.OPENAI_COMPATIBLE.value
        return ChatEngine.OFFLINE.value

    @property
    def resolved_realtime(self) -> str | None:
        """Which Realtime service the realtime pipeline talks to: `azure`, `openai`, or None (none set)."""
        if self.azure_openai_endpoint and self.azure_openai_realtime_deployment:
            return "azure"
        if self.openai_api_key is not None or self.realtime_websocket_url:
            return "openai"
        return None

    @property
    def embedded(self) -> bool:
        """True when no Azure service at all is configured (the embedded default)."""
        return not (
            self.acs_configured or self.speech_configured or self.azure_openai_endpoint or self.cosmos_configured
        )

    def selection(self) -> dict[str, str]:
        """Which implementation each component uses; logged once at start."""
        return {
            "mode": "embedded" if self.embedded else "azure",
            "redis": "external" if self.redis_url else "embedded-valkey",
            "call_control": "acs" if self.acs_configured else "local-acs",
            "call_records": "cosmos" if self.cosmos_configured else "sqlite",
            "pipeline": self.pipeline.value,
            "stt": self.resolved_stt,
            "tts": f"embedded-{self.embedded_tts.value}" if self.resolved_tts == "embedded" else self.resolved_tts,
            "chat": self.resolved_chat,
        }


def _describe(error: Mapping[str, Any]) -> str:
    loc = error.get("loc") or ()
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if loc:
        return f"Invalid setting {str(loc[0]).upper()}: {message}"
    return f"Invalid settings: {message}"


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings. Raises SettingsError with one line naming the setting.

    The message never includes the offending value: it may be a secret.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc.errors(include_input=False)[0])) from None


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
