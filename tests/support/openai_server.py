"""A local OpenAI-compatible Chat Completions server for tests, answering from a script.

    async with OpenAIServer([text("Hello there, how can I help?", 4), HttpError(429, retry_after=1)]) as server:
        client = server.client()            # an openai.AsyncOpenAI on server.base_url, max_retries=0
        ...
        server.requests[0].body             # every request body, as received

Routes: `POST /v1/chat/completions` (OpenAI, Ollama, vLLM style) and
`POST /openai/deployments/{deployment}/chat/completions?api-version=...` (Azure OpenAI style; the base
for `AsyncAzureOpenAI(azure_endpoint=server.origin)`). Both stream (`"stream": true`: server-sent
`chat.completion.chunk` events, then `data: [DONE]`) or answer with one `chat.completion`.

The script is a queue: each request takes the next item. Items:

- `Reply(deltas=[...], tool_calls=[Call(...)], ...)`: a completion. Content is streamed one delta per
  chunk, then each tool call's arguments in `fragments` pieces (the first chunk of a call carries its
  index, id, type and name, as OpenAI does), then a chunk with the finish reason. `text(s, n)` builds
  a Reply streaming `s` in `n` deltas. Knobs: `delay_s` before the headers, `chunk_delay_s` between
  chunks, `interleave` (parallel calls' fragments interleaved), `leading_empty_chunk` (Azure's
  `prompt_filter_results` chunk with no choices), and `cut_after=N` with `cut="stall"` (stop sending
  after N chunks and hang), `"error"` (an in-stream error event, then the stream ends) or
  `"disconnect"` (drop the connection).
- `HttpError(status, message, ...)`: an OpenAI-style error body `{"error": {message, type, param,
  code}}`, optional `retry_after` (the `retry-after` header) and any other `headers`.
- `Hang(seconds)`: accept the request and answer nothing (until the server closes, by default).
- `RawStream(events)`: a 200 stream of these `data:` payloads, verbatim (malformed chunks, quirks of
  other servers); `[DONE]` is not added.

A `responder` (request -> item) may be given instead of, or after, the queue. With the script empty
the server answers 500 `script exhausted`. With `validate=True` (the default) a request that does not
have the shape OpenAI accepts is answered 400 `invalid_request_error`; its problems are on
`RecordedRequest.problems` either way. With `api_key`, a request without `Authorization: Bearer
<api_key>` (or Azure's `api-key` header) gets 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import openai
from aiohttp import web

ROLES = {"system", "developer", "user", "assistant", "tool"}
MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "refusal", "audio", "function_call"},
    "tool": {"role", "content", "tool_call_id"},
}


# --- the script ----------------------------------------------------------------------------------------
@dataclass
class Call:
    """A tool call to stream. `id=None` leaves the id out (as some local servers do)."""

    name: str
    arguments: str | dict[str, Any] = "{}"
    id: str | None = ""  # "": a generated `call_<n>`

    @property
    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass
class Reply:
    deltas: Sequence[str] = ()
    tool_calls: Sequence[Call] = ()
    fragments: int = 3
    interleave: bool = False
    finish_reason: str | None = None  # None: "tool_calls" when there are calls, else "stop"
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    leading_empty_chunk: bool = False
    cut_after: int | None = None
    cut: Literal["stall", "error", "disconnect"] = "stall"
    error_message: str = "The server had an error while processing your request."


@dataclass
class HttpError:
    status: int
    message: str = "error"
    type: str | None = None  # None: derived from the status
    code: str | None = None
    param: str | None = None
    retry_after: float | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Hang:
    seconds: float = math.inf


@dataclass
class RawStream:
    events: Sequence[str]
    chunk_delay_s: float = 0.0


ScriptItem = Reply | HttpError | Hang | RawStream


def text(s: str, n: int = 3, **kw: Any) -> Reply:
    """A Reply streaming `s` in `n` deltas."""
    return Reply(deltas=split(s, n), **kw)


def split(s: str, n: int) -> list[str]:
    """`s` in `n` consecutive non-empty pieces (fewer if `s` is shorter)."""
    n = max(1, min(n, len(s)))
    if not s:
        return []
    bounds = [round(i * len(s) / n) for i in range(n + 1)]
    return [s[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def rate_limited(retry_after: float | None = 1, **kw: Any) -> HttpError:
    return HttpError(429, "Rate limit reached for requests", type="requests", code="rate_limit_exceeded",
                     retry_after=retry_after, **kw)


def server_error(status: int = 500, **kw: Any) -> HttpError:
    return HttpError(status, "The server had an error while processing your request.", type="server_error", **kw)


_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
                404: "invalid_request_error", 429: "requests"}


# --- requests ------------------------------------------------------------------------------------------
@dataclass
class RecordedRequest:
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # the parsed JSON (or the raw text when it is not JSON)
    problems: list[str]
    received_at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body.get("messages", []) if isinstance(self.body, dict) else []
        return messages

    @property
    def roles(self) -> list[str]:
        return [str(m.get("role")) for m in self.messages]

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("stream") is True


def request_problems(body: Any, *, need_model: bool = True) -> list[str]:
    """What OpenAI would refuse in this Chat Completions request body (the parts we use)."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    problems: list[str] = []
    if need_model and not (isinstance(body.get("model"), str) and body["model"]):
        problems.append("'model' is required")
    return problems + _messages_problems(body.get("messages")) + _params_problems(body)


def _messages_problems(messages: Any) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return ["'messages' must be a non-empty array"]
    problems: list[str] = []
    pending: set[str] = set()  # tool call ids still waiting for their result
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            problems.append(f"{where}: role must be one of {sorted(ROLES)}")
            continue
        role = m["role"]
        if role != "tool" and pending:
            problems.append(f"{where}: the tool calls {sorted(pending)} have no tool message before it")
            pending.clear()
        problems += _message_problems(where, m)
        if role == "assistant" and m.get("tool_calls") is not None:
            problems += _tool_call_problems(where, m["tool_calls"], pending)
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in pending:
                problems.append(f"{where}: tool_call_id {call_id!r} answers no preceding assistant tool call")
            else:
                pending.discard(call_id)
    if pending:
        problems.append(f"the tool calls {sorted(pending)} have no tool message")
    return problems


def _params_problems(body: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    tools = body.get("tools")
    if tools is not None:
        problems += _tools_problems(tools)
    for key in ("tool_choice", "parallel_tool_calls"):
        if key in body and not tools:
            problems.append(f"'{key}' is only allowed when 'tools' are specified")
    temperature = body.get("temperature")
    if temperature is not None and not (isinstance(temperature, int | float) and 0 <= temperature <= 2):
        problems.append("'temperature' must be a number from 0 to 2")
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is not None and not (isinstance(value, int) and value > 0):
            problems.append(f"'{key}' must be a positive integer")
    if "max_tokens" in body and "max_completion_tokens" in body:
        problems.append("give 'max_tokens' or 'max_completion_tokens', not both")
    if "stream" in body and not isinstance(body["stream"], bool | None):
        problems.append("'stream' must be a boolean")
    return problems


def _message_problems(where: str, m: dict[str, Any]) -> list[str]:
    role = m["role"]
    problems: list[str] = []
    extra = set(m) - MESSAGE_KEYS[role]
    if extra:
        problems.append(f"{where}: unexpected {sorted(extra)} for role {role!r}")
    content = m.get("content")
    if role == "assistant":
        if content is None and not m.get("tool_calls"):
            problems.append(f"{where}: an assistant message needs content or tool_calls")
    elif not isinstance(content, str | list):
        problems.append(f"{where}: 'content' must be a string or an array of parts")
    return problems


def _tool_call_problems(where: str, calls: Any, pending: set[str]) -> list[str]:
    if not isinstance(calls, list) or not calls:
        return [f"{where}: 'tool_calls' must be a non-empty array"]
    problems: list[str] = []
    for j, c in enumerate(calls):
        fn = c.get("function") if isinstance(c, dict) else None
        if not (isinstance(c, dict) and isinstance(c.get("id"), str) and c.get("type") == "function"
                and isinstance(fn, dict) and isinstance(fn.get("name"), str)
                and isinstance(fn.get("arguments"), str)):
            problems.append(f"{where}.tool_calls[{j}]: needs id, type 'function', function.name and "
                            "function.arguments (a string)")
            continue
        try:
            json.loads(fn["arguments"])
        except ValueError:
            problems.append(f"{where}.tool_calls[{j}]: function.arguments is not JSON")
        pending.add(c["id"])
    return problems


def _tools_problems(tools: Any) -> list[str]:
    if not isinstance(tools, list) or not tools:
        return ["'tools' must be a non-empty array"]
    problems: list[str] = []
    for k, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, dict) else None
        if not (isinstance(t, dict) and t.get("type") == "function" and isinstance(fn, dict)
                and isinstance(fn.get("name"), str) and fn["name"]):
            problems.append(f"tools[{k}]: needs type 'function' and function.name")
            continue
        parameters = fn.get("parameters")
        if parameters is not None and not (isinstance(parameters, dict) and parameters.get("type") == "object"):
            problems.append(f"tools[{k}]: function.parameters must be a JSON schema of type 'object'")
    return problems


# --- the server ---------------------------------------------------------------------------------------------
class OpenAIServer:
    def __init__(self, script: Iterable[ScriptItem] = (), *,
                 responder: Callable[[RecordedRequest], ScriptItem] | None = None,
                 api_key: str | None = None, validate: bool = True, model: str = "test-model") -> None:
        self.script: deque[ScriptItem] = deque(script)
        self.responder = responder
        self.api_key = api_key
        self.validate = validate
        self.model = model
        self.requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._clients: list[openai.AsyncOpenAI] = []
        self.port = 0

    # lifecycle
    async def start(self) -> OpenAIServer:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        for client in self._clients:
            await client.close()
        self._closing.set()  # releases hanging and stalled handlers
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OpenAIServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def client(self, *, max_retries: int = 0, api_key: str | None = None, **kw: Any) -> openai.AsyncOpenAI:
        """An SDK client for this server (no SDK retries unless asked for), closed with the server."""
        client = openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key or self.api_key or "test-key",
                                    max_retries=max_retries, **kw)
        self._clients.append(client)
        return client

    def add(self, *items: ScriptItem) -> None:
        self.script.extend(items)

    # handling
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.text()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        azure = "deployment" in request.match_info
        recorded = RecordedRequest(
            path=request.path, query=dict(request.query), headers={k.lower(): v for k, v in request.headers.items()},
            body=body, problems=request_problems(body, need_model=not azure), received_at=time.monotonic())
        self.requests.append(recorded)
        if azure and "api-version" not in request.query:
            recorded.problems.append("the 'api-version' query parameter is required")
        if self.api_key is not None and self.api_key not in (
            recorded.headers.get("authorization", "").removeprefix("Bearer "), recorded.headers.get("api-key")
        ):
            return self._error(HttpError(401, "Incorrect API key provided.", code="invalid_api_key"))
        if self.validate and recorded.problems:
            return self._error(HttpError(400, "; ".join(recorded.problems)))
        if self.script:
            item = self.script.popleft()
        elif self.responder is not None:
            item = self.responder(recorded)
        else:
            return self._error(HttpError(500, "script exhausted: the test expected fewer requests"))

        if isinstance(item, Hang):
            await self._wait(item.seconds)
            return web.Response(status=504, text="hung")
        if isinstance(item, HttpError):
            await self._wait(item.delay_s)
            return self._error(item)
        if isinstance(item, RawStream):
            return await self._raw_stream(request, item)
        await self._wait(item.delay_s)
        if recorded.stream:
            return await self._stream(request, recorded, item)
        return web.json_response(self._completion(recorded, item), headers=self._headers())

    async def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), None if math.isinf(seconds) else seconds)

    def _headers(self) -> dict[str, str]:
        return {"x-request-id": f"req_{next(self._ids)}"}

    def _error(self, e: HttpError) -> web.Response:
        headers = {**self._headers(), **e.headers}
        if e.retry_after is not None:
            headers["retry-after"] = str(e.retry_after)
        default_type = "server_error" if e.status >= 500 else "invalid_request_error"
        error_type = e.type or _ERROR_TYPES.get(e.status, default_type)
        body = {"error": {"message": e.message, "type": error_type, "param": e.param, "code": e.code}}
        return web.json_response(body, status=e.status, headers=headers)

    # completions
    def _chunk(self, cid: str, created: int, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": self.model,
                "system_fingerprint": "fp_test", "choices": choices, **extra}

    def _chunks(self, recorded: RecordedRequest, item: Reply) -> list[dict[str, Any]]:
        cid, created = f"chatcmpl-{next(self._ids)}", int(time.time())

        def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

        chunks: list[dict[str, Any]] = []
        if item.leading_empty_chunk:
            chunks.append({"id": "", "object": "", "created": 0, "model": "", "choices": [],
                           "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]})
        chunks.append(self._chunk(cid, created, choice({"role": "assistant", "content": "", "refusal": None})))
        chunks += [self._chunk(cid, created, choice({"content": d})) for d in item.deltas]
        per_call: list[list[dict[str, Any]]] = []
        for index, call in enumerate(item.tool_calls):
            pieces = split(call.arguments_json, item.fragments) or [""]
            call_id = f"call_{next(self._ids)}" if call.id == "" else call.id
            first: dict[str, Any] = {"index": index, "type": "function",
                                     "function": {"name": call.name, "arguments": pieces[0]}}
            if call_id is not None:
                first["id"] = call_id
            fragments = [first] + [{"index": index, "function": {"arguments": p}} for p in pieces[1:]]
            per_call.append([self._chunk(cid, created, choice({"tool_calls": [f]})) for f in fragments])
        if item.interleave:
            chunks += [c for group in itertools.zip_longest(*per_call) for c in group if c is not None]
        else:
            chunks += [c for group in per_call for c in group]
        finish = item.finish_reason or ("tool_calls" if item.tool_calls else "stop")
        chunks.append(self._chunk(cid, created, choice({}, finish)))
        options = recorded.body.get("stream_options") or {}
        if isinstance(options, dict) and options.get("include_usage"):
            chunks.append(self._chunk(cid, created, [], usage=self._usage(item)))
        return chunks

    @staticmethod
    def _usage(item: Reply) -> dict[str, int]:
        completion = len(item.deltas) + sum(max(1, item.fragments) for _ in item.tool_calls)
        return {"prompt_tokens": 10, "completion_tokens": completion, "total_tokens": 10 + completion}

    async def _open_stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               **self._headers()})
        await response.prepare(request)
        return response

    async def _stream(self, request: web.Request, recorded: RecordedRequest, item: Reply) -> web.StreamResponse:
        chunks = self._chunks(recorded, item)
        response = await self._open_stream(request)
        try:
            for n, chunk in enumerate(chunks):
                if item.cut_after is not None and n == item.cut_after:
                    return await self._cut(request, response, item)
                if n and item.chunk_delay_s:
                    await self._wait(item.chunk_delay_s)
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away (a timeout, a barge-in)
        return response

    async def _cut(self, request: web.Request, response: web.StreamResponse, item: Reply) -> web.StreamResponse:
        if item.cut == "stall":
            await self._wait(math.inf)
        elif item.cut == "error":
            error = {"error": {"message": item.error_message, "type": "server_error", "param": None, "code": None}}
            await response.write(f"data: {json.dumps(error)}\n\n".encode())
            await response.write_eof()
        elif request.transport is not None:
            request.transport.abort()
        return response

    async def _raw_stream(self, request: web.Request, item: RawStream) -> web.StreamResponse:
        response = await self._open_stream(request)
        try:
            for n, event in enumerate(item.events):
                if n and item.chunk_delay_s:
                    await self._wait(item.chunk_delay_s)
                await response.write(f"data: {event}\n\n".encode())
            await response.write_eof()
        except ConnectionError:
            pass
        return response

    def _completion(self, recorded: RecordedRequest, item: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(item.deltas) or None, "refusal": None}
        if item.tool_calls:
            message["tool_calls"] = [
                {"id": call.id or f"call_{next(self._ids)}", "type": "function",
                 "function": {"name": call.name, "arguments": call.arguments_json}}
                for call in item.tool_calls
            ]
        return {"id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion", "created": int(time.time()),
                "model": recorded.body.get("model") or self.model, "system_fingerprint": "fp_test",
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": item.finish_reason or ("tool_calls" if item.tool_calls else "stop")}],
                "usage": self._usage(item)}
