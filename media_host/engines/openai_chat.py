"""A chat model on any OpenAI-compatible Chat Completions endpoint, through the official `openai` SDK.

Works with OpenAI, Ollama, vLLM, the llama.cpp server, and (given an `openai.AsyncAzureOpenAI` client,
whose `model` is the deployment name) Azure OpenAI: the engine only needs an `openai.AsyncOpenAI`.

Each reply is one streamed request (`stream=True`). Content deltas are yielded as `TextDelta`s the
moment they arrive (the pipeline speaks sentence by sentence); tool calls, whose arguments arrive in
fragments, are assembled by their `index` and yielded as complete `ToolCallDelta`s, in index order,
once the stream has ended.

Errors are not handled here; they propagate as the SDK's typed exceptions, and the pipeline (or a
retry/fallback layer around this engine) decides what to do. What they mean:

=============================================  ==========================================================
`openai.RateLimitError` (429)                  Rate limit or quota. Transient; the server's wait is
                                               `retry_after_s(exc)` (`retry-after-ms`/`retry-after`).
`openai.InternalServerError` (>= 500)          The server or the model failed (500, 502, 503 overloaded,
                                               504). Transient.
`openai.APITimeoutError`                       No answer within `timeout_s`: not connected, no response
                                               headers, or a gap of `timeout_s` between two chunks of a
                                               stream that had started. Transient.
`openai.APIConnectionError` (not a timeout)    Refused, DNS, TLS, or the connection dropped (also in the
                                               middle of a stream). Transient.
`openai.APIError` (none of the above)          The server sent an error event inside a 200 stream, or a
                                               chunk that is not JSON. Transient.
`openai.AuthenticationError` (401) and         Wrong key or no access: configuration, not transient.
`openai.PermissionDeniedError` (403)
`openai.BadRequestError` (400), `NotFoundError`  The request was refused: unknown model or deployment,
(404), `UnprocessableEntityError` (422), other   context too long, a content filter (Azure: 400 with
4xx                                            `code="content_filter"`). Retrying the same request fails
                                               the same way; fall back instead.
=============================================  ==========================================================

`classify_failure()` maps an exception onto these kinds and `ChatFailure.transient` says whether trying
again may help. A retry layer must also know whether the engine had already yielded anything: the
timeout, connection and in-stream errors can happen after text was spoken, and a retry would then
repeat the start of the reply to the caller.

The SDK retries too (`max_retries` on the client, default 2): it retries 408, 409, 429 and >= 500
responses, timeouts and connection errors (only while waiting for the response headers, never once
a stream has started), sleeping `retry-after` up to two minutes, or 0.5 s, 1 s, 2 s... otherwise. Those
retries are invisible to this engine, and each attempt gets the full `timeout_s`. So the factory below
builds clients with `max_retries=0` and leaves retrying to the layer that knows a caller is waiting.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, cast

import openai
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionChunk,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
    ChatCompletionToolUnionParam,
)
from openai.types.chat.chat_completion_chunk import Choice, ChoiceDelta, ChoiceDeltaToolCall

from agents import ToolSpec
from media_host.engines.base import ChatDelta, ChatMessage, ChatRequest, TextDelta, ToolCall, ToolCallDelta

if TYPE_CHECKING:
    from switchboard.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
NO_KEY = "unused"  # local servers (Ollama, vLLM, llama.cpp) need no key, but the SDK insists on one

MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]


# --- failures ------------------------------------------------------------------------------------------
class ChatFailure(StrEnum):
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    AUTH = "auth"
    REJECTED = "rejected"

    @property
    def transient(self) -> bool:
        """Whether the same request may succeed if tried again."""
        return self not in (ChatFailure.AUTH, ChatFailure.REJECTED)


def classify_failure(exc: BaseException) -> ChatFailure | None:
    """What an exception from `OpenAIChatModel.stream` means; None when it is not an SDK error."""
    if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError: it is a subclass
        return ChatFailure.TIMEOUT
    if isinstance(exc, openai.APIConnectionError):
        return ChatFailure.CONNECTION
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            return ChatFailure.RATE_LIMITED
        if status >= 500 or status == 409:  # 409: the SDK's "lock timeout", which it retries
            return ChatFailure.SERVER_ERROR
        if status == 408:
            return ChatFailure.TIMEOUT
        if status in (401, 403):
            return ChatFailure.AUTH
        return ChatFailure.REJECTED
    if isinstance(exc, openai.APIError):  # an error event or a malformed chunk in a 200 stream
        return ChatFailure.SERVER_ERROR
    return None


def retry_after_s(exc: BaseException) -> float | None:
    """The wait the server asked for (`retry-after-ms`, else `retry-after` in seconds), if any."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue  # an HTTP date: rare for these APIs, and not worth waiting for on a call
        if seconds >= 0 and seconds != float("inf"):
            return seconds
    return None


# --- request ---------------------------------------------------------------------------------------------
def to_openai_messages(messages: Iterable[ChatMessage]) -> list[ChatCompletionMessageParam]:
    """Our messages as Chat Completions messages.

    An assistant message with tool calls omits an empty `content` (the API allows that, and some
    servers' chat templates mishandle an empty string). A tool message carries `tool_call_id` only:
    `name` is not part of the Chat Completions tool message.
    """
    out: list[ChatCompletionMessageParam] = []
    for m in messages:
        if m.role == "system":
            out.append({"role": "system", "content": m.content})
        elif m.role == "user":
            out.append({"role": "user", "content": m.content})
        elif m.role == "assistant":
            assistant: ChatCompletionAssistantMessageParam = {"role": "assistant"}
            if m.content or not m.tool_calls:
                assistant["content"] = m.content
            if m.tool_calls:
                assistant["tool_calls"] = [_tool_call_param(c) for c in m.tool_calls]
            out.append(assistant)
        elif m.role == "tool":
            if not m.tool_call_id:
                raise ValueError("a tool message needs the tool_call_id of the call it answers")
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        else:  # pragma: no cover - the Literal type rules it out
            raise ValueError(f"unknown message role {m.role!r}")
    return out


def _tool_call_param(call: ToolCall) -> ChatCompletionMessageFunctionToolCallParam:
    return {"id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": call.arguments or "{}"}}


def to_openai_tools(tools: Sequence[ToolSpec]) -> list[ChatCompletionToolUnionParam]:
    return [cast("ChatCompletionToolUnionParam", t.openai_tool()) for t in tools]


# --- streamed tool calls -----------------------------------------------------------------------------------
@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: str = ""

    def add(self, fragment: ChoiceDeltaToolCall) -> None:
        if fragment.id and not self.id:  # ids are never split; some servers repeat them on every chunk
            self.id = fragment.id
        function = fragment.function
        if function is None:
            return
        if function.name and function.name != self.name:  # likewise names (repeated, never split in practice)
            self.name += function.name
        arguments: Any = function.arguments
        if arguments is None:
            return
        if not isinstance(arguments, str):  # a server that sends the arguments as an object
            arguments = json.dumps(arguments)
        self.arguments += arguments

    def finish(self) -> ToolCall:
        return ToolCall(id=self.id or f"call_{uuid.uuid4().hex[:24]}", name=self.name,
                        arguments=self.arguments.strip() or "{}")


class _ToolCallAssembler:
    """Tool call fragments in, complete calls out (ordered by `index`)."""

    def __init__(self) -> None:
        self._calls: dict[int, _PartialCall] = {}

    def add(self, fragment: ChoiceDeltaToolCall) -> None:
        index: int | None = fragment.index
        if index is None:  # servers that leave `index` out send each call whole, or its id first
            known = next((i for i, c in self._calls.items() if fragment.id and c.id == fragment.id), None)
            if known is not None:
                index = known
            elif fragment.id or not self._calls:
                index = max(self._calls, default=-1) + 1
            else:
                index = max(self._calls)
        self._calls.setdefault(index, _PartialCall()).add(fragment)

    def finish(self) -> list[ToolCall]:
        calls = [self._calls[i].finish() for i in sorted(self._calls)]
        self._calls.clear()
        return calls


# --- the engine ------------------------------------------------------------------------------------------
class OpenAIChatModel:
    """`ChatModel` on an OpenAI-compatible Chat Completions endpoint.

    `client`: an `openai.AsyncOpenAI`, or an `openai.AsyncAzureOpenAI` (then `model` is the deployment).
    `timeout_s`: per request, the longest wait for the connection, for the response headers and between
    two streamed chunks (not a limit on the whole reply). Each of the SDK's own retries gets it afresh.
    `parallel_tool_calls`: sent when the request has tools; None leaves it to the server's default.
    `max_tokens_param`: `max_completion_tokens` for OpenAI reasoning models, which refuse `max_tokens`.
    """

    def __init__(self, client: openai.AsyncOpenAI, model: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 name: str = "openai_compatible", parallel_tool_calls: bool | None = True,
                 max_tokens_param: MaxTokensParam = "max_tokens") -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.client = client
        self.model = model
        self.timeout_s = timeout_s
        self.name = name
        self.parallel_tool_calls = parallel_tool_calls
        self.max_tokens_param = max_tokens_param

    async def aclose(self) -> None:
        """Close the client's connections (at shutdown)."""
        await self.client.close()

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        """The reply: text deltas as they arrive, then the complete tool calls.

        Raises the SDK's exceptions (see the module docstring). This is an async generator: on a barge-in
        close it (`aclose()`, or iterate inside `contextlib.aclosing`) and the HTTP response is closed at
        once; an abandoned generator keeps the connection until it is garbage collected.
        """
        settings = request.agent.spec.model
        has_tools = bool(request.tools)
        started = time.perf_counter()
        stream = await self.client.chat.completions.create(
            model=self.model,
            messages=to_openai_messages(request.messages),
            stream=True,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens if self.max_tokens_param == "max_tokens" else openai.omit,
            max_completion_tokens=(settings.max_tokens if self.max_tokens_param == "max_completion_tokens"
                                   else openai.omit),
            tools=to_openai_tools(request.tools) if has_tools else openai.omit,
            tool_choice="auto" if has_tools else openai.omit,
            parallel_tool_calls=(self.parallel_tool_calls
                                 if has_tools and self.parallel_tool_calls is not None else openai.omit),
            timeout=self.timeout_s,
        )
        calls = _ToolCallAssembler()
        first = True
        finish_reason: str | None = None
        async with stream:
            chunks = aiter(stream)
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except json.JSONDecodeError as exc:  # the SDK passes a non-JSON `data:` line on as is
                    raise openai.APIResponseValidationError(
                        stream.response, None, message=f"a streamed chunk is not JSON: {exc}") from exc
                if first:
                    first = False
                    log.debug("%s: first chunk after %.0f ms", self.name, (time.perf_counter() - started) * 1000)
                choice = _first_choice(chunk)
                if choice is None:
                    continue
                delta: ChoiceDelta | None = choice.delta  # None: a server that leaves it out
                if delta is not None:
                    if delta.content:
                        yield TextDelta(delta.content)
                    for fragment in delta.tool_calls or ():
                        calls.add(fragment)
                finish_reason = choice.finish_reason or finish_reason
        if finish_reason in ("length", "content_filter"):
            log.warning("%s: the reply was cut short (finish_reason=%s)", self.name, finish_reason)
        for call in calls.finish():
            yield ToolCallDelta(call)


def _first_choice(chunk: ChatCompletionChunk) -> Choice | None:
    """The chunk's choice 0 (we never ask for n > 1). Chunks without choices are normal: the usage
    chunk, Azure's prompt filter results."""
    return next((c for c in chunk.choices or () if not c.index), None)


# --- factories -------------------------------------------------------------------------------------------
def openai_chat_from_settings(settings: Settings, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                              max_retries: int = 0) -> OpenAIChatModel | None:
    """The engine for `OPENAI_BASE_URL` (with `OPENAI_API_KEY` and `OPENAI_CHAT_MODEL`); None when unset.

    `OPENAI_BASE_URL` is the SDK's base URL, so it usually ends in `/v1` (Ollama:
    `http://localhost:11434/v1`). Without a key a placeholder is sent: local servers ignore it.
    """
    if not settings.openai_base_url:
        return None
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
    client = openai.AsyncOpenAI(base_url=settings.openai_base_url, api_key=key or NO_KEY,
                                max_retries=max_retries, timeout=timeout_s)
    return OpenAIChatModel(client, settings.openai_chat_model, timeout_s=timeout_s, name="openai_compatible")
