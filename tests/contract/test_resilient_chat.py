"""The cloud chat retry policy (`ResilientChatModel`) and the Azure OpenAI engine, with the real `openai` SDK
over HTTP against the local OpenAI-compatible server. Waits are kept tiny by settings."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal, cast

import openai
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from media_host.engines.azure_openai_chat import (
    COGNITIVE_SERVICES_SCOPE,
    AzureOpenAIChatModel,
    TokenTimeout,
    azure_openai_chat_from_settings,
)
from media_host.engines.base import ChatDelta, ChatModel, ChatRequest, TextDelta, ToolCallDelta
from media_host.engines.openai_chat import OpenAIChatModel, openai_chat_from_settings
from media_host.engines.resilient_chat import (
    AFTER_OUTPUT,
    COOLING_DOWN,
    GAVE_UP,
    NOT_RETRYABLE,
    RECOVERED,
    RETRIED,
    ChatDeadlineExceeded,
    ChatRetryStats,
    ChatUnavailable,
    ResilientChatModel,
    resilient,
)
from switchboard.settings import Settings, load_settings
from tests.contract.test_openai_chat import VERIFY_ARGS, calls, request, texts
from tests.support.openai_server import (
    Call,
    Hang,
    HttpError,
    OpenAIServer,
    Reply,
    ScriptItem,
    rate_limited,
    server_error,
    text,
)

TIMEOUT_S = 0.3  # the per-request timeout in these tests (connect, headers, gap between chunks)
CALLER_WORDS = "Hi, I'd like to check my balance."  # the caller's turn in `request()`: never logged


def settings_for(server: OpenAIServer | None = None, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {"chat_timeout_seconds": TIMEOUT_S, "chat_max_retries": 2,
                              "chat_retry_max_wait_seconds": 0.5, "openai_api_key": None}
    if server is not None:
        fields["openai_base_url"] = server.base_url
    return load_settings(**{**fields, **overrides})


class Recorder:
    """`on_failure` as the host would wire it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def __call__(self, kind: str, outcome: str) -> None:
        self.events.append((kind, outcome))


def wrapped(server: OpenAIServer, settings: Settings | None = None, **kw: Any) -> ResilientChatModel:
    """The OpenAI-compatible engine of these settings with the retry policy, as the factory builds it."""
    settings = settings or settings_for(server)
    model = openai_chat_from_settings(settings, timeout_s=settings.chat_timeout_seconds)
    assert model is not None
    assert model.client.max_retries == 0
    server._clients.append(model.client)  # closed with the server
    return resilient(model, settings, **kw)


async def collect(model: ChatModel, req: ChatRequest | None = None) -> list[ChatDelta]:
    return [d async for d in model.stream(req or request())]


async def until_error(model: ChatModel) -> tuple[list[ChatDelta], Exception]:
    """The deltas until the stream fails, and the failure."""
    got: list[ChatDelta] = []
    try:
        async for delta in model.stream(request()):
            got.append(delta)
    except Exception as exc:
        return got, exc
    raise AssertionError(f"the stream did not fail: {got}")


def gaps(server: OpenAIServer) -> list[float]:
    """Seconds between consecutive requests, as the server received them."""
    at = [r.received_at for r in server.requests]
    return [b - a for a, b in itertools.pairwise(at)]


# --- retried, then answered ----------------------------------------------------------------------------
async def test_a_429_with_a_short_retry_after_is_retried_after_that_wait(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="media_host.engines.resilient_chat")
    recorder = Recorder()
    async with OpenAIServer([rate_limited(retry_after=0.2), text("Your balance is 42 dollars.", 4)]) as server:
        model = wrapped(server, on_failure=recorder)
        deltas = await collect(model)
    assert "".join(texts(deltas)) == "Your balance is 42 dollars."
    assert len(server.requests) == 2
    [gap] = gaps(server)
    assert 0.2 <= gap < 0.2 + 0.3  # as the server asked: no backoff added, no SDK retry
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "0"]  # ours, not the SDK's
    assert recorder.events == [("rate_limited", RETRIED), ("rate_limited", RECOVERED)]
    assert model.stats.get(kind="rate_limited", outcome=RETRIED) == 1
    assert model.stats.samples() == {
        (("engine", "openai_compatible"), ("kind", "rate_limited"), ("outcome", RETRIED)): 1.0,
        (("engine", "openai_compatible"), ("kind", "rate_limited"), ("outcome", RECOVERED)): 1.0,
    }
    [retry] = [r for r in caplog.records if getattr(r, "outcome", None) == RETRIED]
    assert (retry.kind, retry.attempt, retry.wait_ms, retry.status) == ("rate_limited", 1, 200, 429)  # type: ignore[attr-defined]
    for record in caplog.records:  # structured, and never the caller's words or the prompt
        logged = json.dumps(record.__dict__, default=str)
        assert "balance" not in logged
        assert "bank's assistant" not in logged


async def test_a_stream_that_stalls_before_any_text_is_retried_and_nothing_is_repeated() -> None:
    script = [Reply(deltas=["Hello", " again."], cut_after=1, cut="stall"), text("Hello there.", 2)]
    async with OpenAIServer(script) as server:
        model = wrapped(server)
        start = time.monotonic()
        deltas = await collect(model)
        elapsed = time.monotonic() - start
    assert texts(deltas) == ["Hello ", "there."]  # only the second reply: the first had said nothing
    assert TIMEOUT_S <= elapsed < TIMEOUT_S + 1.0
    assert model.stats.get(kind="timeout", outcome=RETRIED) == 1


async def test_backoff_without_retry_after_is_exponential_capped_and_jittered() -> None:
    inner = OpenAIChatModel(openai.AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0), "m")
    half = ResilientChatModel(inner, max_wait_s=1.0, base_delay_s=0.25, jitter=0.5, rng=lambda: 1.0)
    assert [half.backoff_s(n) for n in range(4)] == [0.125, 0.25, 0.5, 0.5]
    none = ResilientChatModel(inner, max_wait_s=1.0, base_delay_s=0.25, jitter=0.5, rng=lambda: 0.0)
    assert [none.backoff_s(n) for n in range(4)] == [0.25, 0.5, 1.0, 1.0]
    await inner.aclose()
    with pytest.raises(ValueError, match="jitter"):
        ResilientChatModel(inner, jitter=2)


async def test_retries_without_retry_after_wait_the_backoff() -> None:
    async with OpenAIServer([server_error(502), server_error(503), text("Back again.")]) as server:
        inner = OpenAIChatModel(server.client(), "test-model", timeout_s=TIMEOUT_S)
        model = ResilientChatModel(inner, max_retries=2, max_wait_s=0.5, base_delay_s=0.05, jitter=0.5,
                                   rng=lambda: 1.0)
        assert "".join(texts(await collect(model))) == "Back again."
    first, second = gaps(server)
    assert 0.025 <= first < 0.025 + 0.25  # 0.05 halved by the jitter
    assert 0.05 <= second < 0.05 + 0.25  # 0.1 halved
    assert model.stats.get(kind="server_error", outcome=RETRIED) == 2


# --- given up: the fallback answers ----------------------------------------------------------------------
async def test_a_429_asking_for_longer_than_the_max_wait_gives_up_at_once_and_pauses_the_model() -> None:
    recorder = Recorder()
    async with OpenAIServer([rate_limited(retry_after=30), text("never asked")]) as server:
        model = wrapped(server, on_failure=recorder)
        start = time.monotonic()
        with pytest.raises(openai.RateLimitError):
            await collect(model)
        assert time.monotonic() - start < 0.4  # not waited for (the max wait is 0.5 s)
        # The server asked for 30 s: until then every request fails at once, without being sent.
        with pytest.raises(ChatUnavailable) as paused:
            await collect(model)
    assert 25 < paused.value.retry_in_s <= 30
    assert len(server.requests) == 1
    assert recorder.events == [("rate_limited", GAVE_UP), ("rate_limited", COOLING_DOWN)]


async def test_without_a_cooldown_the_next_request_is_sent() -> None:
    async with OpenAIServer([rate_limited(retry_after=30), text("Answered.")]) as server:
        settings = settings_for(server)
        model = openai_chat_from_settings(settings, timeout_s=TIMEOUT_S)
        assert model is not None
        server._clients.append(model.client)
        wrapper = ResilientChatModel(model, max_wait_s=0.5, max_cooldown_s=0)
        with pytest.raises(openai.RateLimitError):
            await collect(wrapper)
        assert "".join(texts(await collect(wrapper))) == "Answered."


async def test_three_server_errors_give_up_after_the_retries() -> None:
    recorder = Recorder()
    fast = {"retry-after-ms": "20"}
    script: list[ScriptItem] = [server_error(500, headers=fast), server_error(500, headers=fast),
                                server_error(500, headers=fast), text("never asked")]
    async with OpenAIServer(script) as server:
        model = wrapped(server, on_failure=recorder)
        with pytest.raises(openai.InternalServerError):
            await collect(model)
    assert len(server.requests) == 3  # the request and chat_max_retries=2 retries
    assert all(0.02 <= g < 0.3 for g in gaps(server))
    assert recorder.events == [("server_error", RETRIED), ("server_error", RETRIED), ("server_error", GAVE_UP)]


async def test_a_hung_server_times_out_is_retried_then_given_up() -> None:
    async with OpenAIServer([Hang(), Hang(), Hang(), text("never asked")]) as server:
        model = wrapped(server, settings_for(server, chat_retry_max_wait_seconds=0.02))
        start = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            await collect(model)
        elapsed = time.monotonic() - start
    assert len(server.requests) == 3
    assert 3 * TIMEOUT_S <= elapsed < 3 * TIMEOUT_S + 1.0
    assert model.stats.get(kind="timeout", outcome=RETRIED) == 2
    assert model.stats.get(kind="timeout", outcome=GAVE_UP) == 1


async def test_a_budget_bounds_the_silence_across_retries() -> None:
    async with OpenAIServer([Hang(), Hang(), Hang()]) as server:
        model = wrapped(server, settings_for(server, chat_retry_max_wait_seconds=0.02), budget_s=0.5)
        start = time.monotonic()
        with pytest.raises(ChatDeadlineExceeded):
            await collect(model)
        elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 0.5 + 0.3  # the second attempt is abandoned when the budget runs out
    assert len(server.requests) == 2
    assert model.stats.get(kind="timeout", outcome=GAVE_UP) == 1


@pytest.mark.parametrize(("item", "error", "kind"), [
    (HttpError(401, "Incorrect API key provided.", code="invalid_api_key"), openai.AuthenticationError, "auth"),
    (HttpError(403, "Principal does not have access"), openai.PermissionDeniedError, "auth"),
    (HttpError(400, "The response was filtered", code="content_filter"), openai.BadRequestError, "rejected"),
    (HttpError(404, "The API deployment for this resource does not exist.", code="DeploymentNotFound"),
     openai.NotFoundError, "rejected"),
])
async def test_configuration_and_refusals_are_not_retried(item: HttpError, error: type[Exception], kind: str) -> None:
    recorder = Recorder()
    async with OpenAIServer([item, text("never asked")]) as server:
        model = wrapped(server, on_failure=recorder)
        start = time.monotonic()
        with pytest.raises(error):
            await collect(model)
        assert time.monotonic() - start < 0.4
    assert len(server.requests) == 1
    assert recorder.events == [(kind, NOT_RETRYABLE)]


async def test_a_wrong_key_is_not_retried() -> None:
    async with OpenAIServer([text("never asked")], api_key="right-key") as server:
        model = wrapped(server, settings_for(server, openai_api_key="wrong-key"))
        with pytest.raises(openai.AuthenticationError):
            await collect(model)
    assert len(server.requests) == 1
    assert model.stats.get(kind="auth", outcome=NOT_RETRYABLE) == 1


@pytest.mark.parametrize("cut", ["disconnect", "error", "stall"])
async def test_a_failure_after_text_was_streamed_is_not_retried(cut: Literal["disconnect", "error", "stall"]) -> None:
    script: list[ScriptItem] = [Reply(deltas=["Your balance", " is"], cut_after=2, cut=cut),
                                text("never asked")]
    async with OpenAIServer(script) as server:
        model = wrapped(server)
        got, err = await until_error(model)
    assert isinstance(err, openai.APIError)
    assert got == [TextDelta("Your balance")]  # said once; a retry would say it again
    assert len(server.requests) == 1
    assert model.stats.get(outcome=AFTER_OUTPUT) == 1
    assert model.stats.get(outcome=RETRIED) == 0


async def test_an_error_that_is_not_the_sdks_is_not_retried() -> None:
    class Broken:
        name = "broken"
        attempts = 0

        async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
            self.attempts += 1
            if self.attempts:
                raise ValueError("a bug")
            yield TextDelta("")  # pragma: no cover - makes this an async generator

    inner = Broken()
    model = ResilientChatModel(inner)
    with pytest.raises(ValueError, match="a bug"):
        await collect(model)
    assert inner.attempts == 1
    assert model.stats.counts == {("broken", "other", NOT_RETRYABLE): 1}


# --- what passes through -----------------------------------------------------------------------------------
async def test_parallel_tool_calls_pass_through_untouched_also_after_a_retry() -> None:
    two = [Call("verify_customer", VERIFY_ARGS, id="call_a"), Call("loan_rates", {"product": "mortgage"}, id="call_b")]
    script: list[ScriptItem] = [server_error(503, headers={"retry-after-ms": "10"}),
                                Reply(deltas=["Let me check."], tool_calls=two, fragments=4, interleave=True)]
    async with OpenAIServer(script) as server:
        deltas = await collect(wrapped(server))
    assert texts(deltas) == ["Let me check."]
    assert [type(d) for d in deltas] == [TextDelta, ToolCallDelta, ToolCallDelta]
    first, second = calls(deltas)
    assert (first.id, first.name, json.loads(first.arguments)) == ("call_a", "verify_customer", VERIFY_ARGS)
    assert (second.id, second.name, json.loads(second.arguments)) == ("call_b", "loan_rates", {"product": "mortgage"})
    assert server.requests[1].body == server.requests[0].body  # the same request, tried again
    assert server.requests[1].body["parallel_tool_calls"] is True


async def test_closing_the_stream_early_closes_the_request() -> None:
    async with OpenAIServer([Reply(deltas=["Sure.", " One moment"], cut_after=2, cut="stall")]) as server:
        stream = cast(AsyncGenerator[ChatDelta, None], wrapped(server).stream(request()))
        first = await anext(stream)
        start = time.monotonic()
        await stream.aclose()  # a barge-in
        assert time.monotonic() - start < 0.5
    assert first == TextDelta("Sure.")


async def test_a_barge_in_during_the_wait_cancels_the_retry() -> None:
    async with OpenAIServer([rate_limited(retry_after=0.4), text("never asked")]) as server:
        task = asyncio.create_task(collect(wrapped(server)))
        async with asyncio.timeout(2):
            while not server.requests:
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(server.requests) == 1


# --- Azure OpenAI ----------------------------------------------------------------------------------------
def azure_settings(server: OpenAIServer, **overrides: Any) -> Settings:
    return settings_for(None, azure_openai_endpoint=server.origin, azure_openai_chat_deployment="gpt-4o-mini-prod",
                        azure_openai_api_version="2025-04-01-preview", **overrides)


async def test_azure_openai_with_a_key_retries_and_answers() -> None:
    script: list[ScriptItem] = [rate_limited(retry_after=0.05), text("Hello from Azure.", 3)]
    async with OpenAIServer(script, api_key="azure-key") as server:
        model = azure_openai_chat_from_settings(azure_settings(server, azure_openai_api_key="azure-key"))
        assert isinstance(model, ResilientChatModel)
        assert model.name == "azure_openai"
        inner = model.inner
        assert isinstance(inner, AzureOpenAIChatModel)
        assert isinstance(inner.client, openai.AsyncAzureOpenAI)
        assert inner.client.max_retries == 0
        assert inner.client.timeout == TIMEOUT_S
        assert inner.credential is None
        assert "".join(texts(await collect(model))) == "Hello from Azure."
        await model.aclose()
    assert len(server.requests) == 2
    for recorded in server.requests:
        assert recorded.path == "/openai/deployments/gpt-4o-mini-prod/chat/completions"
        assert recorded.query["api-version"] == "2025-04-01-preview"
        assert recorded.headers["api-key"] == "azure-key"
        assert "authorization" not in recorded.headers
        assert recorded.problems == []
    assert model.stats.get(engine="azure_openai", kind="rate_limited", outcome=RECOVERED) == 1


class FakeCredential:
    """An `AsyncTokenCredential` standing in for `DefaultAzureCredential`."""

    def __init__(self, *, fail: bool = False, hang: bool = False) -> None:
        self.fail, self.hang = fail, hang
        self.scopes: list[tuple[str, ...]] = []
        self.closed = False

    async def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                        enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        if self.hang:
            await asyncio.Event().wait()
        if self.fail:
            raise ClientAuthenticationError("no identity available")
        return AccessToken("entra-token", int(time.time()) + 3600)

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> FakeCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def test_azure_openai_without_a_key_uses_entra_id_tokens() -> None:
    credential = FakeCredential()
    async with OpenAIServer([text("Hi."), text("Hi again.")]) as server:
        model = azure_openai_chat_from_settings(azure_settings(server, azure_openai_api_key=None),
                                                credential=credential)
        assert model is not None
        assert "".join(texts(await collect(model))) == "Hi."
        assert "".join(texts(await collect(model))) == "Hi again."
        await model.aclose()
    assert [r.headers["authorization"] for r in server.requests] == ["Bearer entra-token"] * 2
    assert all("api-key" not in r.headers for r in server.requests)
    assert credential.scopes == [(COGNITIVE_SERVICES_SCOPE,)]  # fetched once, then cached
    assert credential.closed


async def test_azure_openai_without_a_token_is_not_retried() -> None:
    credential = FakeCredential(fail=True)
    async with OpenAIServer([text("never asked")]) as server:
        model = azure_openai_chat_from_settings(azure_settings(server, azure_openai_api_key=None),
                                                credential=credential)
        assert model is not None
        with pytest.raises(ClientAuthenticationError):
            await collect(model)
        await model.aclose()
    assert server.requests == []
    assert len(credential.scopes) == 1
    assert model.stats.counts == {("azure_openai", "auth", NOT_RETRYABLE): 1}


async def test_azure_openai_token_that_never_comes_times_out() -> None:
    credential = FakeCredential(hang=True)
    async with OpenAIServer([text("never asked")]) as server:
        model = azure_openai_chat_from_settings(
            azure_settings(server, azure_openai_api_key=None, chat_max_retries=1, chat_retry_max_wait_seconds=0.02),
            credential=credential)
        assert model is not None
        start = time.monotonic()
        with pytest.raises(TokenTimeout):
            await collect(model)
        assert 2 * TIMEOUT_S <= time.monotonic() - start < 2 * TIMEOUT_S + 1.0
        await model.aclose()
    assert server.requests == []
    assert model.stats.get(kind="timeout", outcome=RETRIED) == 1
    assert model.stats.get(kind="timeout", outcome=GAVE_UP) == 1


def test_no_azure_chat_model_without_an_endpoint_and_a_deployment() -> None:
    assert azure_openai_chat_from_settings(load_settings(azure_openai_endpoint=None,
                                                         azure_openai_chat_deployment=None)) is None
    realtime_only = load_settings(azure_openai_endpoint="https://example.openai.azure.com",
                                  azure_openai_chat_deployment=None, azure_openai_realtime_deployment="rt")
    assert azure_openai_chat_from_settings(realtime_only) is None


async def test_stats_can_be_shared_between_models() -> None:
    stats = ChatRetryStats()
    async with OpenAIServer([server_error(500, headers={"retry-after-ms": "1"}), text("Ok.")]) as server:
        await collect(wrapped(server, stats=stats))
    assert stats.get(outcome=RETRIED) == 1
    assert stats.get(outcome=RECOVERED) == 1
