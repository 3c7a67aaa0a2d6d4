"""Tools every scenario can use: the human transfer, and the generated handoff tools."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from agents.tools import ToolContext, ToolSpec, register_tool

TRANSFER_TO_HUMAN = "transfer_to_human"


@register_tool(
    name=TRANSFER_TO_HUMAN,
    description="Transfer the caller to a human colleague. Use it when the caller asks for a person, "
                "or when you cannot help them.",
    examples=["transfer me to a human agent", "I want to talk to a real person", "can I speak to someone",
              "representative please", "operator", "get me a human", "let me talk to an agent"],
    reply="Of course. I'm transferring you to a colleague now. Please stay on the line.",
    kind="transfer",
)
async def transfer_to_human(
    ctx: ToolContext,
    reason: Annotated[str, Field(description="Why the caller needs a human, in a few words")] = "caller asked",
) -> dict[str, Any]:
    ctx.request_transfer(reason)
    return {"transferring": True}


class HandoffArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", description="Why the caller is handed over, in a few words")
    summary: str = Field("", description="What the next agent needs to know: what the caller wants and what "
                                         "was already done")


def handoff_tool_name(target: str) -> str:
    return f"handoff_to_{target}"


def handoff_tool(target: str, description: str, examples: list[str], requires_auth: bool) -> ToolSpec:
    """The `handoff_to_<target>` tool for one edge of a scenario's handoff graph."""

    async def hand_over(ctx: ToolContext, args: HandoffArguments) -> dict[str, Any]:
        ctx.request_handoff(target, args.reason, args.summary)
        return {"handoff_to": target}

    return ToolSpec(
        name=handoff_tool_name(target),
        description=f"Hand the caller over to the {target} agent. {description}",
        func=hand_over,
        args_model=HandoffArguments,
        takes_model=True,
        examples=tuple(examples),
        requires_auth=requires_auth,
        kind="handoff",
    )
