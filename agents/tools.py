"""The tool registry: `@register_tool` on async functions, JSON schema from type hints, safe execution.

A tool is `async def name(ctx: ToolContext, arg: type, ...) -> result`. Its arguments become a
pydantic model, so the schema the model sees and the validation the call gets are the same thing.
`execute()` never raises into the pipeline: bad arguments, a missing authentication, a timeout or a
failing tool all come back as a `ToolResult` with a structured error the model can act on.

Tools change the call only through their context (`authenticate`, `request_handoff`,
`request_transfer`, `request_hangup`). The pipeline applies `ToolResult.effects` after the call,
whether or not it succeeded (a tool may request a transfer and then report a failure).

Tool names are resolved per scenario: a scenario's own tools module wins, so two scenarios may each
define a `find_slots`. Parameters named in `sensitive` are masked in `ToolResult.arguments`, which is
what gets logged and stored.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import to_jsonable_python

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0


class ToolError(Exception):
    """Raise from a tool for an expected failure; the message is shown to the model (and caller) as is.

    `code` is a machine-readable reason passed along as `ToolFailure.reason`.
    """

    def __init__(self, message: str, code: str = "tool_error") -> None:
        super().__init__(message)
        self.code = code


class ToolDefinitionError(TypeError):
    """A decorated function cannot be a tool (not async, untyped parameters, a name used twice in a module)."""

MASK = "***"


# --- effects a tool may request -------------------------------------------------------------------
class Authenticated(BaseModel):
    kind: Literal["authenticated"] = "authenticated"
    customer: dict[str, Any]


class HandoffRequested(BaseModel):
    kind: Literal["handoff"] = "handoff"
    target: str
    reason: str = ""
    summary: str = ""


class TransferRequested(BaseModel):
    kind: Literal["transfer"] = "transfer"
    reason: str = ""


class HangupRequested(BaseModel):
    kind: Literal["hangup"] = "hangup"
    reason: str = ""


Effect = Authenticated | HandoffRequested | TransferRequested | HangupRequested


@dataclass
class ToolContext:
    """What a tool may know about the call, and how it asks for changes to it."""

    call_id: str
    scenario: str
    agent: str
    caller: str | None = None
    customer: dict[str, Any] | None = None
    locale: str = "en-US"
    state: dict[str, Any] = field(default_factory=dict)  # persisted in the session between turns
    effects: list[Effect] = field(default_factory=list)

    @property
    def authenticated(self) -> bool:
        return self.customer is not None

    def authenticate(self, customer: dict[str, Any]) -> None:
        self.customer = customer
        self.effects.append(Authenticated(customer=customer))

    def request_handoff(self, target: str, reason: str = "", summary: str = "") -> None:
        self.effects.append(HandoffRequested(target=target, reason=reason, summary=summary))

    def request_transfer(self, reason: str = "") -> None:
        self.effects.append(TransferRequested(reason=reason))

    def request_hangup(self, reason: str = "") -> None:
        self.effects.append(HangupRequested(reason=reason))


class ToolFailure(BaseModel):
    code: Literal["unknown_tool", "invalid_arguments", "not_authenticated", "timeout", "tool_error", "internal_error"]
    message: str
    reason: str | None = None  # the tool's own code, from ToolError(code=...)
    details: list[dict[str, str]] = Field(default_factory=list)


class ToolResult(BaseModel):
    tool: str
    ok: bool
    data: Any = None
    error: ToolFailure | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    effects: list[Effect] = Field(default_factory=list)
    elapsed_ms: float = 0.0

    def for_model(self) -> str:
        """The JSON string handed back to a language model as the tool's output."""
        if self.ok:
            return json.dumps(self.data, default=str)
        assert self.error is not None
        return json.dumps({"error": self.error.code, "message": self.error.message,
                           **({"reason": self.error.reason} if self.error.reason else {}),
                           **({"details": self.error.details} if self.error.details else {})})


ToolKind = Literal["function", "handoff", "transfer"]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    func: Callable[..., Awaitable[Any]]
    args_model: type[BaseModel]
    takes_model: bool = False  # the function takes one pydantic model instead of keyword arguments
    examples: tuple[str, ...] = ()
    requires_auth: bool = False
    confirm: str | None = None  # a template asked before the tool runs: `args`, `customer`, `agent`
    reply: str | None = None  # a template said after it ran: `args`, `result`, `customer`, `agent`
    timeout: float = DEFAULT_TIMEOUT_S
    kind: ToolKind = "function"
    sensitive: frozenset[str] = frozenset()  # parameters masked wherever arguments are logged or stored

    @property
    def module(self) -> str:
        return str(self.func.__module__)

    def masked(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return {k: (MASK if k in self.sensitive else v) for k, v in arguments.items()}

    def parameters_schema(self) -> dict[str, Any]:
        return _clean_schema(self.args_model.model_json_schema())

    def openai_tool(self) -> dict[str, Any]:
        """Chat Completions `tools` entry."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description,
                             "parameters": self.parameters_schema()}}

    def realtime_tool(self) -> dict[str, Any]:
        """Realtime `session.tools` entry (flat)."""
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": self.parameters_schema()}

    def required_parameters(self) -> list[str]:
        return [name for name, f in self.args_model.model_fields.items() if f.is_required()]


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's titles: models do better with names and descriptions only."""
    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items() if k != "title" or not isinstance(v, str)}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node
    cleaned: dict[str, Any] = clean(schema)
    cleaned.setdefault("properties", {})
    return cleaned


def _args_model(name: str, func: Callable[..., Any]) -> tuple[type[BaseModel], bool]:
    if not inspect.iscoroutinefunction(func):
        raise ToolDefinitionError(f"tool {name!r} must be an async function")
    hints = typing.get_type_hints(func, include_extras=True)
    params = list(inspect.signature(func).parameters.values())
    if not params or hints.get(params[0].name) is not ToolContext:
        raise ToolDefinitionError(f"tool {name!r}: the first parameter must be `ctx: ToolContext`")
    rest = params[1:]
    for p in rest:
        if p.name not in hints:
            raise ToolDefinitionError(f"tool {name!r}: parameter {p.name!r} needs a type hint")
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ToolDefinitionError(f"tool {name!r}: *args/**kwargs cannot be described to a model")
    only = hints.get(rest[0].name) if len(rest) == 1 else None
    if isinstance(only, type) and issubclass(only, BaseModel):
        return only, True
    fields: dict[str, Any] = {
        p.name: (hints[p.name], ... if p.default is inspect.Parameter.empty else p.default) for p in rest
    }
    model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    return model, False


class ToolRegistry:
    """Tools by name, and for each name by the module that defines it."""

    def __init__(self) -> None:
        self._tools: dict[str, dict[str, ToolSpec]] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def get(self, name: str, module: str | None = None) -> ToolSpec | None:
        """The tool `name` as seen from `module` (a scenario's tools module): its own definition first,
        else the only definition there is. None if unknown or defined by several other modules."""
        by_module = self._tools.get(name, {})
        if module is not None and module in by_module:
            return by_module[module]
        return next(iter(by_module.values())) if len(by_module) == 1 else None

    def modules_defining(self, name: str) -> list[str]:
        return sorted(self._tools.get(name, {}))

    def names(self) -> list[str]:
        return sorted(self._tools)

    def defined_in(self, module: str) -> list[ToolSpec]:
        """The tools a module defines (e.g. a scenario's tools module)."""
        return [by_module[module] for by_module in self._tools.values() if module in by_module]

    def add(self, spec: ToolSpec) -> ToolSpec:
        by_module = self._tools.setdefault(spec.name, {})
        existing = by_module.get(spec.module)
        # Re-importing a module (agent reload) registers the same function again: that is allowed.
        if existing is not None and existing.func.__qualname__ != spec.func.__qualname__:
            raise ToolDefinitionError(f"tool {spec.name!r} is defined twice in {spec.module}")
        by_module[spec.module] = spec
        return spec

    def tool(
        self,
        *,
        name: str,
        description: str,
        examples: tuple[str, ...] | list[str] = (),
        requires_auth: bool = False,
        confirm: str | None = None,
        reply: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        kind: ToolKind = "function",
        sensitive: tuple[str, ...] | list[str] = (),
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        def decorate(func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            model, takes_model = _args_model(name, func)
            unknown = set(sensitive) - set(model.model_fields)
            if unknown:
                raise ToolDefinitionError(f"tool {name!r}: sensitive names unknown parameters {sorted(unknown)}")
            self.add(ToolSpec(name=name, description=description, func=func, args_model=model,
                              takes_model=takes_model, examples=tuple(examples), requires_auth=requires_auth,
                              confirm=confirm, reply=reply, timeout=timeout, kind=kind,
                              sensitive=frozenset(sensitive)))
            return func
        return decorate

    async def execute(self, name: str, arguments: dict[str, Any] | str | None, ctx: ToolContext,
                      spec: ToolSpec | None = None) -> ToolResult:
        """Validate and run one tool call. Never raises (except cancellation of the caller)."""
        started = time.perf_counter()
        spec = spec or self.get(name)

        def done(**kw: Any) -> ToolResult:
            return ToolResult(tool=name, elapsed_ms=round((time.perf_counter() - started) * 1000, 2), **kw)

        if spec is None:
            return done(ok=False, error=ToolFailure(code="unknown_tool", message=f"no tool named {name!r}"))
        try:
            raw = json.loads(arguments) if isinstance(arguments, str) else dict(arguments or {})
            if not isinstance(raw, dict):
                raise TypeError
        except (ValueError, TypeError):
            return done(ok=False, error=ToolFailure(code="invalid_arguments",
                                                    message="arguments must be a JSON object"))
        try:
            parsed = spec.args_model.model_validate(raw)
        except ValidationError as exc:
            details = [{"field": ".".join(str(p) for p in e["loc"]) or "(arguments)", "problem": e["msg"]}
                       for e in exc.errors(include_input=False, include_url=False)]
            return done(ok=False, arguments=spec.masked(raw), error=ToolFailure(
                code="invalid_arguments", message=f"invalid arguments for {name}", details=details))
        args = spec.masked(parsed.model_dump(mode="json"))
        if spec.requires_auth and not ctx.authenticated:
            return done(ok=False, arguments=args, error=ToolFailure(
                code="not_authenticated", message="the caller must be verified before this can be done"))
        before = len(ctx.effects)
        call = spec.func(ctx, parsed) if spec.takes_model else spec.func(ctx, **dict(parsed))
        try:
            value = await asyncio.wait_for(call, timeout=spec.timeout)
        except TimeoutError:
            log.warning("tool timed out", extra={"tool": name, "timeout_s": spec.timeout})
            return done(ok=False, arguments=args, error=ToolFailure(
                code="timeout", message=f"{name} did not answer within {spec.timeout:g} s"))
        except ToolError as exc:
            reason = exc.code if exc.code != "tool_error" else None
            return done(ok=False, arguments=args, effects=ctx.effects[before:],
                        error=ToolFailure(code="tool_error", message=str(exc), reason=reason))
        except Exception:
            log.exception("tool failed", extra={"tool": name})
            return done(ok=False, arguments=args, error=ToolFailure(code="internal_error",
                                                                   message=f"{name} failed unexpectedly"))
        return done(ok=True, data=to_jsonable_python(value), arguments=args, effects=ctx.effects[before:])


default_registry = ToolRegistry()
register_tool = default_registry.tool
