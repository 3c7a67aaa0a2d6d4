from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from agents.tools import ToolContext, ToolDefinitionError, ToolError, ToolRegistry, TransferRequested


class Order(BaseModel):
    item: str = Field(description="What to order")
    quantity: int = 1


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry()


@pytest.fixture
def ctx() -> ToolContext:
    return ToolContext(call_id="c1", scenario="s", agent="a")


def _define(registry: ToolRegistry) -> None:
    @registry.tool(name="book", description="Book a table.", examples=["book a table"], timeout=0.2)
    async def book(
        ctx: ToolContext,
        day: Annotated[dt.date, Field(description="The day")],
        people: Annotated[int, Field(ge=1, le=12, description="How many people")] = 2,
        seating: Literal["inside", "outside"] = "inside",
    ) -> dict[str, object]:
        return {"day": day, "people": people, "seating": seating}


def test_schema_comes_from_type_hints(registry: ToolRegistry) -> None:
    _define(registry)
    spec = registry.get("book")
    assert spec is not None
    assert spec.parameters_schema() == {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "day": {"type": "string", "format": "date", "description": "The day"},
            "people": {"type": "integer", "minimum": 1, "maximum": 12, "default": 2, "description": "How many people"},
            "seating": {"type": "string", "enum": ["inside", "outside"], "default": "inside"},
        },
        "required": ["day"],
    }
    assert spec.openai_tool()["function"]["name"] == "book"
    assert spec.realtime_tool()["type"] == "function"
    assert spec.required_parameters() == ["day"]
    assert spec.examples == ("book a table",)


def test_a_pydantic_model_parameter_is_the_schema(registry: ToolRegistry) -> None:
    @registry.tool(name="order", description="Order something.")
    async def order(ctx: ToolContext, req: Order) -> Order:
        return req

    spec = registry.get("order")
    assert spec is not None
    assert spec.parameters_schema()["required"] == ["item"]
    assert spec.takes_model


async def test_model_parameter_executes(registry: ToolRegistry, ctx: ToolContext) -> None:
    @registry.tool(name="order", description="Order something.")
    async def order(ctx: ToolContext, req: Order) -> Order:
        return req.model_copy(update={"quantity": req.quantity * 2})

    result = await registry.execute("order", '{"item": "tea", "quantity": 2}', ctx)
    assert result.ok
    assert result.data == {"item": "tea", "quantity": 4}


async def test_valid_call_returns_json_data(registry: ToolRegistry, ctx: ToolContext) -> None:
    _define(registry)
    result = await registry.execute("book", {"day": "2026-03-03", "people": "4"}, ctx)
    assert result.ok
    assert result.data == {"day": "2026-03-03", "people": 4, "seating": "inside"}
    assert result.arguments == {"day": "2026-03-03", "people": 4, "seating": "inside"}
    assert result.for_model() == '{"day": "2026-03-03", "people": 4, "seating": "inside"}'


@pytest.mark.parametrize(("args", "field", "problem"), [
    ({}, "day", "Field required"),
    ({"day": "someday"}, "day", "Input should be a valid date or datetime, input is too short"),
    ({"day": "2026-03-03", "people": 40}, "people", "Input should be less than or equal to 12"),
    ({"day": "2026-03-03", "seating": "roof"}, "seating", "Input should be 'inside' or 'outside'"),
    ({"day": "2026-03-03", "color": "red"}, "color", "Extra inputs are not permitted"),
])
async def test_bad_arguments_come_back_as_a_structured_error(registry: ToolRegistry, ctx: ToolContext,
                                                             args: dict[str, object],
                                                             field: str, problem: str) -> None:
    _define(registry)
    result = await registry.execute("book", args, ctx)
    assert not result.ok
    assert result.error is not None
    assert result.error.code == "invalid_arguments"
    assert {"field": field, "problem": problem} in result.error.details
    assert '"error": "invalid_arguments"' in result.for_model()


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '"text"'])
async def test_arguments_must_be_a_json_object(registry: ToolRegistry, ctx: ToolContext, raw: str) -> None:
    _define(registry)
    result = await registry.execute("book", raw, ctx)
    assert result.error is not None
    assert result.error.code == "invalid_arguments"


async def test_unknown_tool(registry: ToolRegistry, ctx: ToolContext) -> None:
    result = await registry.execute("nope", {}, ctx)
    assert result.error is not None
    assert result.error.code == "unknown_tool"


async def test_timeout_cancels_the_tool(registry: ToolRegistry, ctx: ToolContext) -> None:
    finished = asyncio.Event()

    @registry.tool(name="slow", description="Slow.", timeout=0.05)
    async def slow(ctx: ToolContext) -> str:
        await asyncio.sleep(5)
        finished.set()
        return "late"

    result = await registry.execute("slow", {}, ctx)
    assert result.error is not None
    assert result.error.code == "timeout"
    assert result.error.message == "slow did not answer within 0.05 s"
    assert result.elapsed_ms < 1000
    assert not finished.is_set()


async def test_expected_failure_message_reaches_the_model(registry: ToolRegistry, ctx: ToolContext) -> None:
    @registry.tool(name="find", description="Find.")
    async def find(ctx: ToolContext, ref: str) -> str:
        raise ToolError(f"no booking {ref}")

    result = await registry.execute("find", {"ref": "X1"}, ctx)
    assert result.error is not None
    assert (result.error.code, result.error.message) == ("tool_error", "no booking X1")


async def test_unexpected_failure_is_contained_and_not_leaked(registry: ToolRegistry, ctx: ToolContext) -> None:
    @registry.tool(name="boom", description="Boom.")
    async def boom(ctx: ToolContext) -> str:
        raise RuntimeError("database password is hunter2")

    result = await registry.execute("boom", {}, ctx)
    assert result.error is not None
    assert result.error.code == "internal_error"
    assert "hunter2" not in result.for_model()


async def test_auth_is_checked_before_the_call(registry: ToolRegistry, ctx: ToolContext) -> None:
    calls: list[str] = []

    @registry.tool(name="secret", description="Secret.", requires_auth=True)
    async def secret(ctx: ToolContext) -> str:
        calls.append("ran")
        return "ok"

    result = await registry.execute("secret", {}, ctx)
    assert result.error is not None
    assert result.error.code == "not_authenticated"
    assert calls == []
    ctx.authenticate({"id": "C1", "name": "Ada"})
    assert (await registry.execute("secret", {}, ctx)).ok
    assert calls == ["ran"]


async def test_effects_of_the_call_are_returned(registry: ToolRegistry, ctx: ToolContext) -> None:
    @registry.tool(name="escalate", description="Escalate.")
    async def escalate(ctx: ToolContext, why: str) -> str:
        ctx.request_transfer(why)
        return "done"

    ctx.request_hangup("earlier effect, not this call's")
    result = await registry.execute("escalate", {"why": "fraud"}, ctx)
    assert result.effects == [TransferRequested(reason="fraud")]


def test_definition_errors(registry: ToolRegistry) -> None:
    with pytest.raises(ToolDefinitionError, match="must be an async function"):
        @registry.tool(name="sync", description="x")  # type: ignore[arg-type]
        def sync(ctx: ToolContext) -> None: ...

    with pytest.raises(ToolDefinitionError, match="first parameter must be `ctx: ToolContext`"):
        @registry.tool(name="noctx", description="x")
        async def noctx(day: str) -> None: ...

    with pytest.raises(ToolDefinitionError, match="needs a type hint"):
        @registry.tool(name="untyped", description="x")
        async def untyped(ctx: ToolContext, day) -> None: ...


def test_a_name_belongs_to_one_function(registry: ToolRegistry) -> None:
    @registry.tool(name="dup", description="x")
    async def first(ctx: ToolContext) -> None: ...

    @registry.tool(name="dup", description="x")  # type: ignore[no-redef]  # the same function again is fine
    async def first(ctx: ToolContext) -> None: ...  # noqa: F811

    with pytest.raises(ToolDefinitionError, match=r"defined twice in tests\.unit\.test_tool_registry"):
        @registry.tool(name="dup", description="x")
        async def second(ctx: ToolContext) -> None: ...


def test_each_scenario_module_may_define_the_same_name(registry: ToolRegistry) -> None:
    async def clinic_slots(ctx: ToolContext) -> str:
        return "clinic"

    async def salon_slots(ctx: ToolContext) -> str:
        return "salon"

    clinic_slots.__module__ = "scenarios.clinic.tools"
    salon_slots.__module__ = "scenarios.salon.tools"
    registry.tool(name="find_slots", description="x")(clinic_slots)
    registry.tool(name="find_slots", description="y")(salon_slots)
    clinic = registry.get("find_slots", "scenarios.clinic.tools")
    salon = registry.get("find_slots", "scenarios.salon.tools")
    assert clinic is not None
    assert salon is not None
    assert (clinic.description, salon.description) == ("x", "y")
    assert registry.get("find_slots") is None  # ambiguous without a scenario
    assert registry.modules_defining("find_slots") == ["scenarios.clinic.tools", "scenarios.salon.tools"]
    assert [t.description for t in registry.defined_in("scenarios.salon.tools")] == ["y"]


async def test_sensitive_arguments_are_masked_in_results(registry: ToolRegistry, ctx: ToolContext) -> None:
    seen: list[str] = []

    @registry.tool(name="verify", description="x", sensitive=("pin",))
    async def verify(ctx: ToolContext, user: str, pin: str) -> bool:
        seen.append(pin)
        return pin == "1234"

    ok = await registry.execute("verify", {"user": "ada", "pin": "1234"}, ctx)
    assert ok.data is True
    assert seen == ["1234"]  # the tool gets the real value
    assert ok.arguments == {"user": "ada", "pin": "***"}  # what is logged and stored does not
    bad = await registry.execute("verify", {"user": "ada", "pin": 1234, "x": 1}, ctx)
    assert bad.arguments == {"user": "ada", "pin": "***", "x": 1}


def test_sensitive_must_name_parameters(registry: ToolRegistry) -> None:
    with pytest.raises(ToolDefinitionError, match="unknown parameters"):
        @registry.tool(name="v", description="x", sensitive=("password",))
        async def v(ctx: ToolContext, pin: str) -> None: ...


async def test_tool_error_code_is_passed_on_as_reason(registry: ToolRegistry, ctx: ToolContext) -> None:
    @registry.tool(name="find", description="Find.")
    async def find(ctx: ToolContext) -> str:
        raise ToolError("no such booking", code="not_found")

    result = await registry.execute("find", {}, ctx)
    assert result.error is not None
    assert result.error.reason == "not_found"
    assert '"reason": "not_found"' in result.for_model()
