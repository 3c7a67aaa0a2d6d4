"""The OpenAI-compatible chat engine against a local server, with the real `openai` SDK over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any, cast

import openai
import pytest

from agents import Agent, load_catalog
from media_host.engines.base import ChatDelta, ChatMessage, ChatRequest, TextDelta, ToolCall, ToolCallDelta
from media_host.engines.openai_chat import (
    ChatFailure,
    OpenAIChatModel,
    classify_failure,
    openai_chat_from_settings,
    retry_after_s,
)
from switchboard.settings import load_settings
from tests.support.openai_server import (
    Call,
    Hang,
    HttpError,
    OpenAIServer,
    RawStream,
    Reply,
    ScriptItem,
    rate_limited,
    server_error,
    text,
)

AGENT: Agent = load_catalog(Path("agents/definitions")).agent("banking", "auth")
VERIFY_ARGS = {"account_number": "12345678", "date_of_birth": "1980-02-01"}


def request(*messages: ChatMessage, tools: bool = True) -> ChatRequest:
    msgs = list(messages) or [ChatMessage("system", "You are the bank's assistant."),
                              ChatMessage("user", "Hi, I'd like to check my balance.")]
    return ChatRequest(messages=msgs, agent=AGENT, tools=AGENT.tools if tools else ())


def engine(server: OpenAIServer, timeout_s: float = 2.0, **kw: Any) -> OpenAIChatModel:
    return OpenAIChatModel(server.client(max_retries=kw.pop("max_retries", 0)), "test-model",
                           timeout_s=timeout_s, **kw)


async def collect(model: OpenAIChatModel, req: ChatRequest | None = None) -> list[ChatDelta]:
    return [d async for d in model.stream(req or request())]


async def until_error(model: OpenAIChatModel) -> tuple[list[tuple[ChatDelta, float]], Exception]:
    """The deltas (with the seconds each took to arrive) until the stream fails, and the failure."""
    got: list[tuple[ChatDelta, float]] = []
    start = time.monotonic()
    try:
        async for d in model.stream(request()):
            got.append((d, time.monotonic() - start))
    except Exception as exc:
        return got, exc
    raise AssertionError(f"the stream did not fail: {got}")


def texts(deltas: Sequence[ChatDelta]) -> list[str]:
    return [d.text for d in deltas if isinstance(d, TextDelta)]


def calls(deltas: Sequence[ChatDelta]) -> list[ToolCall]:
    return [d.call for d in deltas if isinstance(d, ToolCallDelta)]


# --- text ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("azure_filter_chunk", [False, True])
async def test_streamed_text_arrives_as_text_deltas_in_order(azure_filter_chunk: bool) -> None:
    reply = "Hello, this is First Bank. How can I help you today?"
    async with OpenAIServer([text(reply, 5, leading_empty_chunk=azure_filter_chunk)]) as server:
        deltas = await collect(engine(server))
    assert all(isinstance(d, TextDelta) for d in deltas)
    assert len(deltas) == 5  # the empty role chunk and the choice-less chunk yield nothing
    assert "".join(texts(deltas)) == reply
    body = server.requests[0].body
    assert body["stream"] is True
    assert body["model"] == "test-model"


async def test_text_is_yielded_as_it_arrives_and_a_stalled_stream_times_out() -> None:
    # the role chunk and two deltas, then the server stops sending without ending the stream
    script = [Reply(deltas=["Sure.", " One moment", " please."], cut_after=3, cut="stall")]
    async with OpenAIServer(script) as server:
        start = time.monotonic()
        got, err = await until_error(engine(server, timeout_s=0.5))
        elapsed = time.monotonic() - start
    assert isinstance(err, openai.APITimeoutError)
    assert [d for d, _ in got] == [TextDelta("Sure."), TextDelta(" One moment")]
    assert got[-1][1] < 0.4  # delivered before the stall, not at the end of the stream
    assert 0.5 <= elapsed < 2.0
    assert classify_failure(err) is ChatFailure.TIMEOUT


async def test_closing_the_stream_early_returns_at_once() -> None:
    async with OpenAIServer([Reply(deltas=["Sure.", " One moment"], cut_after=2, cut="stall")]) as server:
        # stream() is an async generator: the pipeline closes it (contextlib.aclosing) on a barge-in
        stream = cast(AsyncGenerator[ChatDelta, None], engine(server, timeout_s=5).stream(request()))
        first = await anext(stream)
        start = time.monotonic()
        await stream.aclose()  # a barge-in: the pipeline stops listening
        assert time.monotonic() - start < 0.5
    assert first == TextDelta("Sure.")


# --- tool calls ------------------------------------------------------------------------------------------
async def test_a_tool_call_streamed_in_fragments_yields_one_complete_call() -> None:
    script = [Reply(deltas=["Let me check that."], tool_calls=[Call("verify_customer", VERIFY_ARGS)], fragments=7)]
    async with OpenAIServer(script) as server:
        deltas = await collect(engine(server))
    assert isinstance(deltas[0], TextDelta)  # text first, the call when the stream ends
    assert isinstance(deltas[-1], ToolCallDelta)
    [call] = calls(deltas)
    assert call.name == "verify_customer"
    assert call.id.startswith("call_")
    assert json.loads(call.arguments) == VERIFY_ARGS
    body = server.requests[0].body
    assert body["tools"] == AGENT.openai_tools()
    assert body["tool_choice"] == "auto"


@pytest.mark.parametrize("interleave", [False, True])
async def test_parallel_tool_calls_are_assembled_by_index(interleave: bool) -> None:
    script = [Reply(tool_calls=[Call("verify_customer", VERIFY_ARGS), Call("loan_rates", {"product": "mortgage"})],
                    fragments=4, interleave=interleave)]
    async with OpenAIServer(script) as server:
        deltas = await collect(engine(server))
    assert all(isinstance(d, ToolCallDelta) for d in deltas)
    first, second = calls(deltas)
    assert (first.name, json.loads(first.arguments)) == ("verify_customer", VERIFY_ARGS)
    assert (second.name, json.loads(second.arguments)) == ("loan_rates", {"product": "mortgage"})
    assert first.id != second.id
    assert server.requests[0].body["parallel_tool_calls"] is True


async def test_calls_without_ids_or_arguments_get_an_id_and_an_empty_object() -> None:
    script = [Reply(tool_calls=[Call("transfer_to_human", "", id=None), Call("loan_rates", "{}", id=None)])]
    async with OpenAIServer(script) as server:
        first, second = calls(await collect(engine(server)))
    assert first.name == "transfer_to_human"
    assert first.arguments == "{}"
    assert first.id.startswith("call_")
    assert second.id.startswith("call_")
    assert first.id != second.id


async def test_quirks_of_other_servers() -> None:
    """Calls without `index`, ids repeated on every fragment, arguments as an object, no `[DONE]`."""
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return json.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    events = [
        chunk({"role": "assistant", "content": "Checking."}),
        chunk({"tool_calls": [{"id": "a", "type": "function",
                               "function": {"name": "verify_customer", "arguments": '{"account_number": '}}]}),
        chunk({"tool_calls": [{"id": "a", "function": {"name": "verify_customer",
                                                       "arguments": '"12345678", "date_of_birth": "1980-02-01"}'}}]}),
        chunk({"tool_calls": [{"id": "b", "function": {"name": "loan_rates", "arguments": {"product": "auto"}}}]}),
        chunk({}, "stop"),
    ]
    async with OpenAIServer([RawStream(events)]) as server:
        deltas = await collect(engine(server))
    assert texts(deltas) == ["Checking."]
    assert calls(deltas) == [
        ToolCall("a", "verify_customer", json.dumps(VERIFY_ARGS)),
        ToolCall("b", "loan_rates", '{"product": "auto"}'),
    ]


async def test_a_tool_round_trip_is_serialised_as_the_api_expects() -> None:
    call = ToolCall("call_abc123", "verify_customer", json.dumps(VERIFY_ARGS))
    messages = [
        ChatMessage("system", "You are the bank's assistant."),
        ChatMessage("user", "My account is 12345678, born 1 February 1980."),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", '{"verified": true, "name": "Ada"}', tool_call_id="call_abc123", name="verify_customer"),
    ]
    async with OpenAIServer([text("Thank you Ada, you're verified.", 3)]) as server:
        deltas = await collect(engine(server), request(*messages))
    assert "".join(texts(deltas)) == "Thank you Ada, you're verified."
    recorded = server.requests[0]
    assert recorded.problems == []
    assert recorded.roles == ["system", "user", "assistant", "tool"]
    assert recorded.messages[2] == {"role": "assistant", "tool_calls": [
        {"id": "call_abc123", "type": "function",
         "function": {"name": "verify_customer", "arguments": json.dumps(VERIFY_ARGS)}}]}
    assert recorded.messages[3] == {"role": "tool", "tool_call_id": "call_abc123",
                                    "content": '{"verified": true, "name": "Ada"}'}
    body = recorded.body
    assert body["tools"] == [t.openai_tool() for t in AGENT.tools]
    assert [t["function"]["name"] for t in body["tools"]][:2] == ["verify_customer", "loan_rates"]
    assert body["tools"][0]["function"]["parameters"]["required"] == ["account_number", "date_of_birth"]
    assert body["tool_choice"] == "auto"
    assert body["temperature"] == AGENT.spec.model.temperature
    assert body["max_tokens"] == AGENT.spec.model.max_tokens
    assert "max_completion_tokens" not in body
    assert body["stream"] is True


async def test_an_assistant_message_keeps_its_text_next_to_its_tool_calls() -> None:
    call = ToolCall("call_1", "loan_rates", "{}")
    messages = [ChatMessage("user", "Rates?"), ChatMessage("assistant", "Let me look.", tool_calls=(call,)),
                ChatMessage("tool", '{"mortgage": 6.1}', tool_call_id="call_1")]
    async with OpenAIServer([text("Mortgages are at 6.1 percent.")]) as server:
        await collect(engine(server), request(*messages))
    assert server.requests[0].messages[1]["content"] == "Let me look."


async def test_without_tools_no_tool_parameters_are_sent() -> None:
    async with OpenAIServer([text("Hello.")]) as server:
        await collect(engine(server, max_tokens_param="max_completion_tokens"), request(tools=False))
    body = server.requests[0].body
    assert not {"tools", "tool_choice", "parallel_tool_calls", "max_tokens"} & set(body)
    assert body["max_completion_tokens"] == AGENT.spec.model.max_tokens


async def test_a_request_the_api_would_refuse_is_a_bad_request() -> None:
    messages = [ChatMessage("user", "Hi"), ChatMessage("tool", "{}", tool_call_id="call_nobody_made")]
    async with OpenAIServer([text("unused")]) as server:
        with pytest.raises(openai.BadRequestError) as err:
            await collect(engine(server), request(*messages))
    assert "call_nobody_made" in server.requests[0].problems[0]
    assert classify_failure(err.value) is ChatFailure.REJECTED
    assert not ChatFailure.REJECTED.transient


# --- errors ----------------------------------------------------------------------------------------------
async def test_http_429_is_a_rate_limit_error_with_the_servers_wait() -> None:
    async with OpenAIServer([rate_limited(retry_after=7)]) as server:
        with pytest.raises(openai.RateLimitError) as err:
            await collect(engine(server))
    assert err.value.status_code == 429
    assert err.value.code == "rate_limit_exceeded"
    assert err.value.request_id is not None
    assert retry_after_s(err.value) == 7
    assert classify_failure(err.value) is ChatFailure.RATE_LIMITED
    assert ChatFailure.RATE_LIMITED.transient
    assert len(server.requests) == 1  # max_retries=0: the SDK did not retry behind our back


@pytest.mark.parametrize("status", [500, 503])
async def test_http_5xx_is_an_internal_server_error(status: int) -> None:
    async with OpenAIServer([server_error(status, headers={"retry-after-ms": "250"})]) as server:
        with pytest.raises(openai.InternalServerError) as err:
            await collect(engine(server))
    assert isinstance(err.value, openai.APIStatusError)
    assert err.value.status_code == status
    assert retry_after_s(err.value) == 0.25
    assert classify_failure(err.value) is ChatFailure.SERVER_ERROR
    assert len(server.requests) == 1


async def test_a_wrong_key_is_an_authentication_error() -> None:
    async with OpenAIServer([text("unused")], api_key="right-key") as server:
        model = OpenAIChatModel(server.client(api_key="wrong-key"), "test-model", timeout_s=2)
        with pytest.raises(openai.AuthenticationError) as err:
            await collect(model)
    assert classify_failure(err.value) is ChatFailure.AUTH
    assert not ChatFailure.AUTH.transient


async def test_a_server_that_never_answers_hits_the_timeout() -> None:
    async with OpenAIServer([Hang()]) as server:
        start = time.monotonic()
        with pytest.raises(openai.APITimeoutError) as err:
            await collect(engine(server, timeout_s=0.5))
        elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 2.0
    assert classify_failure(err.value) is ChatFailure.TIMEOUT


async def test_an_error_event_inside_the_stream_is_an_api_error_after_the_text_so_far() -> None:
    async with OpenAIServer([Reply(deltas=["Your balance", " is"], cut_after=2, cut="error")]) as server:
        got, err = await until_error(engine(server))
    assert isinstance(err, openai.APIError)
    assert not isinstance(err, openai.APIStatusError | openai.APIConnectionError)
    assert [d for d, _ in got] == [TextDelta("Your balance")]
    assert classify_failure(err) is ChatFailure.SERVER_ERROR


async def test_a_dropped_connection_mid_stream_is_a_connection_error() -> None:
    async with OpenAIServer([Reply(deltas=["Your balance", " is"], cut_after=2, cut="disconnect")]) as server:
        got, err = await until_error(engine(server, max_retries=2))
    assert isinstance(err, openai.APIConnectionError)
    assert not isinstance(err, openai.APITimeoutError)
    assert [d for d, _ in got] == [TextDelta("Your balance")]
    assert classify_failure(err) is ChatFailure.CONNECTION
    assert len(server.requests) == 1  # the SDK never retries once the stream has started


async def test_a_chunk_that_is_not_json_is_an_api_error() -> None:
    async with OpenAIServer([RawStream(["{this is not json"])]) as server:
        with pytest.raises(openai.APIResponseValidationError) as err:
            await collect(engine(server))
    assert classify_failure(err.value) is ChatFailure.SERVER_ERROR


async def test_the_sdks_own_retries_are_invisible_to_the_engine() -> None:
    fast = {"retry-after-ms": "10"}
    script: list[ScriptItem] = [server_error(503, headers=fast), rate_limited(retry_after=None, headers=fast),
                                text("Hello.", 2)]
    async with OpenAIServer(script) as server:
        deltas = await collect(engine(server, max_retries=2))
    assert "".join(texts(deltas)) == "Hello."
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1", "2"]


def test_exceptions_that_are_not_the_sdks_are_not_classified() -> None:
    assert classify_failure(ValueError("no")) is None
    assert retry_after_s(ValueError("no")) is None


# --- construction ----------------------------------------------------------------------------------------
async def test_the_factory_builds_the_engine_from_settings() -> None:
    assert openai_chat_from_settings(load_settings(openai_base_url=None)) is None
    async with OpenAIServer([text("Hi.")], api_key="sk-local") as server:
        settings = load_settings(openai_base_url=server.base_url, openai_api_key="sk-local",
                                 openai_chat_model="llama3.2")
        model = openai_chat_from_settings(settings, timeout_s=3)
        assert model is not None
        assert model.name == "openai_compatible"
        assert model.client.max_retries == 0
        assert "".join(texts(await collect(model))) == "Hi."
        await model.aclose()
    recorded = server.requests[0]
    assert recorded.body["model"] == "llama3.2"
    assert recorded.headers["authorization"] == "Bearer sk-local"


async def test_a_server_without_a_key_gets_a_placeholder() -> None:
    async with OpenAIServer([text("Hi.")]) as server:
        model = openai_chat_from_settings(load_settings(openai_base_url=server.base_url, openai_api_key=None))
        assert model is not None
        await collect(model)
        await model.aclose()
    assert server.requests[0].headers["authorization"] == "Bearer unused"


async def test_an_azure_client_drops_in() -> None:
    async with OpenAIServer([text("Hello from Azure.", 3)], api_key="azure-key") as server:
        client = openai.AsyncAzureOpenAI(azure_endpoint=server.origin, api_key="azure-key",
                                         api_version="2025-04-01-preview", max_retries=0)
        model = OpenAIChatModel(client, "gpt-4o-mini-deployment", timeout_s=2, name="azure_openai")
        assert "".join(texts(await collect(model))) == "Hello from Azure."
        await model.aclose()
    recorded = server.requests[0]
    assert recorded.path == "/openai/deployments/gpt-4o-mini-deployment/chat/completions"
    assert recorded.query["api-version"] == "2025-04-01-preview"
    assert recorded.headers["api-key"] == "azure-key"
    assert recorded.problems == []


async def test_the_server_also_answers_without_streaming() -> None:
    script: list[ScriptItem] = [
        Reply(deltas=["Checking", " now."], tool_calls=[Call("loan_rates", {"product": "auto"})]),
        HttpError(404, "The model `nope` does not exist", code="model_not_found"),
    ]
    async with OpenAIServer(script) as server:
        client = server.client()
        completion = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
        with pytest.raises(openai.NotFoundError) as err:
            await client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "Hi"}])
    message = completion.choices[0].message
    assert message.content == "Checking now."
    assert message.tool_calls is not None
    assert completion.choices[0].finish_reason == "tool_calls"
    assert err.value.code == "model_not_found"
    assert classify_failure(err.value) is ChatFailure.REJECTED
    assert server.requests[0].stream is False
