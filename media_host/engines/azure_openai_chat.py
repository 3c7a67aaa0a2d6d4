"""The chat model on Azure OpenAI: `OpenAIChatModel` on an `openai.AsyncAzureOpenAI` client, with retries.

Authentication is `AZURE_OPENAI_API_KEY` (sent as the `api-key` header) or, without a key, Microsoft
Entra ID: `azure.identity.aio.DefaultAzureCredential` (a managed identity in Azure, the developer's
`az login` locally), whose tokens for `https://cognitiveservices.azure.com/.default` are sent as
`Authorization: Bearer`. The SDK asks the token provider before every request; the provider caches the
token and fetches a new one shortly before it expires, so only the first request (and about one an
hour) waits for Entra ID. That wait is bounded by `CHAT_TIMEOUT_SECONDS` here, since the SDK's own
timeout only covers HTTP.

The deployment is the `model` (the SDK routes `/chat/completions` to
`/openai/deployments/{deployment}/chat/completions?api-version=...`). The SDK's retries are off
(`max_retries=0`): retrying is `ResilientChatModel`'s, with `CHAT_MAX_RETRIES` and
`CHAT_RETRY_MAX_WAIT_SECONDS`, and the offline brain answers whatever it gives up on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import openai
from azure.core.exceptions import ClientAuthenticationError

from media_host.engines.openai_chat import ChatFailure, OpenAIChatModel, classify_failure
from media_host.engines.resilient_chat import ChatRetryStats, FailureCallback, ResilientChatModel, resilient

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

    from switchboard.settings import Settings

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
ENGINE_NAME = "azure_openai"


class TokenTimeout(TimeoutError):
    """Entra ID did not hand out a token in time."""


def classify_azure_failure(exc: BaseException) -> ChatFailure | None:
    """`classify_failure`, plus the token provider's failures (they are raised as they are, not as SDK errors)."""
    failure = classify_failure(exc)
    if failure is not None:
        return failure
    if isinstance(exc, ClientAuthenticationError):  # no usable identity, or it has no access
        return ChatFailure.AUTH
    if isinstance(exc, TokenTimeout):
        return ChatFailure.TIMEOUT
    return None


class AzureOpenAIChatModel(OpenAIChatModel):
    """`OpenAIChatModel` on an `AsyncAzureOpenAI` client; closes the Entra ID credential it was given too."""

    def __init__(self, client: openai.AsyncAzureOpenAI, deployment: str, *, timeout_s: float,
                 credential: AsyncTokenCredential | None = None, name: str = ENGINE_NAME) -> None:
        super().__init__(client, deployment, timeout_s=timeout_s, name=name)
        self.credential = credential

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            if self.credential is not None:
                await self.credential.close()


def bounded_token_provider(provider: Callable[[], Awaitable[str]], timeout_s: float) -> Callable[[], Awaitable[str]]:
    """`provider`, failing with `TokenTimeout` when a token takes longer than `timeout_s`."""
    async def token() -> str:
        try:
            async with asyncio.timeout(timeout_s):
                return await provider()
        except TimeoutError as exc:
            raise TokenTimeout(f"no Entra ID token within {timeout_s} s") from exc

    return token


def azure_openai_client(settings: Settings, *, credential: AsyncTokenCredential | None = None,
                        ) -> tuple[openai.AsyncAzureOpenAI, AsyncTokenCredential | None]:
    """The SDK client for `AZURE_OPENAI_ENDPOINT`, and the credential it uses (None with a key).

    `credential`: for Entra ID without a key (default: a new `DefaultAzureCredential`). The chat model
    built on the client closes it.
    """
    if not settings.azure_openai_endpoint:
        raise ValueError("AZURE_OPENAI_ENDPOINT is not set")
    timeout_s = settings.chat_timeout_seconds
    key = settings.azure_openai_api_key.get_secret_value() if settings.azure_openai_api_key else ""
    if key:
        client = openai.AsyncAzureOpenAI(azure_endpoint=settings.azure_openai_endpoint,
                                         api_version=settings.azure_openai_api_version, api_key=key,
                                         max_retries=0, timeout=timeout_s)
        return client, None
    from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider  # noqa: PLC0415

    if credential is None:
        credential = DefaultAzureCredential()
    provider = bounded_token_provider(get_bearer_token_provider(credential, COGNITIVE_SERVICES_SCOPE), timeout_s)
    client = openai.AsyncAzureOpenAI(azure_endpoint=settings.azure_openai_endpoint,
                                     api_version=settings.azure_openai_api_version,
                                     azure_ad_token_provider=provider, max_retries=0, timeout=timeout_s)
    return client, credential


def azure_openai_chat_from_settings(settings: Settings, *, credential: AsyncTokenCredential | None = None,
                                    budget_s: float | None = None, stats: ChatRetryStats | None = None,
                                    on_failure: FailureCallback | None = None) -> ResilientChatModel | None:
    """The Azure OpenAI chat model of these settings, with the retry policy; None without
    `AZURE_OPENAI_ENDPOINT` and `AZURE_OPENAI_CHAT_DEPLOYMENT`."""
    deployment = settings.azure_openai_chat_deployment
    if not settings.azure_openai_endpoint or not deployment:
        return None
    client, used = azure_openai_client(settings, credential=credential)
    model = AzureOpenAIChatModel(client, deployment, timeout_s=settings.chat_timeout_seconds, credential=used)
    return resilient(model, settings, budget_s=budget_s, stats=stats, on_failure=on_failure,
                     classify=classify_azure_failure)
