"""The banking scenario's tools, run through the real registry against the sample bank."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

import agents.definitions.banking.tools as banking_tools
from agents.definitions.banking.sample_bank import Customer, SampleBank, bank, reset_bank
from agents.definitions.banking.tools import FAILURES_KEY
from agents.schema import AgentSpec, ScenarioSpec, merge_defaults
from agents.tools import Authenticated, ToolContext, TransferRequested, default_registry
from tests.support.scenario_tools import ScenarioTools, render, say

TOOLS = ScenarioTools(banking_tools)
call, tool = TOOLS.call, TOOLS.tool
SCENARIO_DIR = Path(banking_tools.__file__).parent
ADA = {"account_number": "4567", "date_of_birth": "1980-03-03"}
ALAN = {"account_number": "7788", "date_of_birth": "1975-06-23"}
GRACE = {"account_number": "9012", "date_of_birth": "1969-12-09"}


@pytest.fixture(autouse=True)
def fresh_bank() -> SampleBank:
    return reset_bank()


@pytest.fixture
def ctx() -> ToolContext:
    return ToolContext(call_id="c1", scenario="banking", agent="auth")


async def verified(ctx: ToolContext, details: dict[str, str] = ADA) -> ToolContext:
    result = await call(ctx, "verify_customer", **details)
    assert result.ok, result.error
    return ctx


def customer_id(ctx: ToolContext) -> str | None:
    """The verified customer's id (a function, so type narrowing on `ctx.customer` does not stick)."""
    return None if ctx.customer is None else str(ctx.customer["id"])


def customer(customer_id: str) -> Customer:
    found = bank().customer(customer_id)
    assert found is not None
    return found


# --- verification ---------------------------------------------------------------------------------
async def test_verification_authenticates_the_caller(ctx: ToolContext) -> None:
    result = await call(ctx, "verify_customer", **ADA)
    assert result.ok
    assert result.data == {"verified": True, "name": "Ada Lovelace", "first_name": "Ada"}
    expected = {"id": "CUST-001", "name": "Ada Lovelace", "first_name": "Ada", "last_name": "Lovelace"}
    assert ctx.customer == expected  # no account number: the session never holds it
    assert result.arguments == {"account_number": "***", "date_of_birth": "***"}  # what gets logged/stored
    assert result.effects == [Authenticated(customer=expected)]
    assert FAILURES_KEY not in ctx.state


async def test_wrong_date_of_birth_then_the_right_one(ctx: ToolContext) -> None:
    wrong = await call(ctx, "verify_customer", account_number="4567", date_of_birth="1980-03-04")
    assert not wrong.ok
    assert wrong.error is not None
    assert wrong.error.code == "tool_error"
    assert "You have 2 more tries." in wrong.error.message
    assert ctx.customer is None
    assert ctx.state[FAILURES_KEY] == 1
    assert wrong.effects == []

    right = await call(ctx, "verify_customer", **ADA)
    assert right.ok
    assert customer_id(ctx) == "CUST-001"
    assert FAILURES_KEY not in ctx.state  # a verified caller starts with a clean slate


async def test_three_failures_transfer_the_caller(ctx: ToolContext) -> None:
    results = [await call(ctx, "verify_customer", account_number="4567", date_of_birth="1999-01-01")
               for _ in range(3)]
    assert [r.ok for r in results] == [False, False, False]
    assert results[1].error is not None
    assert "one more try" in results[1].error.message
    assert results[0].effects == results[1].effects == []
    assert results[2].effects == [TransferRequested(reason="identity verification failed")]
    assert results[2].error is not None
    assert "transferring" in results[2].error.message
    assert ctx.state[FAILURES_KEY] == 3

    # Locked: even the right details no longer verify in this call, and the transfer is asked again.
    after = await call(ctx, "verify_customer", **ADA)
    assert not after.ok
    assert ctx.customer is None
    assert after.effects == [TransferRequested(reason="identity verification failed")]


async def test_unknown_account_fails_like_a_wrong_date(ctx: ToolContext) -> None:
    unknown = await call(ctx, "verify_customer", account_number="1111", date_of_birth="1980-03-03")
    wrong_dob = await call(ctx, "verify_customer", account_number="4567", date_of_birth="1980-03-04")
    assert unknown.error is not None
    assert wrong_dob.error is not None
    # Same words apart from the tries left: the caller cannot learn which accounts exist.
    assert unknown.error.message.split(". You have")[0] == wrong_dob.error.message.split(". You have")[0]
    assert ctx.state[FAILURES_KEY] == 2


@pytest.mark.parametrize("spoken", ["45 67", "4-5-6-7", " 4567 ", 4567])
async def test_account_numbers_read_in_groups_are_accepted(ctx: ToolContext, spoken: Any) -> None:
    result = await call(ctx, "verify_customer", account_number=spoken, date_of_birth="1980-03-03")
    assert result.ok, result.error
    assert ctx.customer is not None
    assert ctx.customer["id"] == "CUST-001"


async def test_malformed_arguments_are_rejected_without_counting_a_failure(ctx: ToolContext) -> None:
    bad_account = await call(ctx, "verify_customer", account_number="45x7", date_of_birth="1980-03-03")
    bad_date = await call(ctx, "verify_customer", account_number="4567", date_of_birth="the third of March")
    for result, field in ((bad_account, "account_number"), (bad_date, "date_of_birth")):
        assert result.error is not None
        assert result.error.code == "invalid_arguments"
        assert [d["field"] for d in result.error.details] == [field]
    assert FAILURES_KEY not in ctx.state


async def test_secrets_never_reach_the_logs(ctx: ToolContext, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await call(ctx, "verify_customer", account_number="4567", date_of_birth="1980-03-04")
    await call(ctx, "verify_customer", **ADA)
    assert caplog.records, "the failed attempt should be logged"
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert "4567" not in text
        assert "1980" not in text
    assert "4567" not in repr(customer("CUST-001"))


@pytest.mark.parametrize(("name", "args"), [
    ("get_balance", {}), ("recent_transactions", {}), ("block_card", {}), ("replace_card", {}),
    ("report_fraud", {"description": "a charge I don't know"}), ("application_status", {}),
])
async def test_account_tools_need_a_verified_caller(ctx: ToolContext, name: str, args: dict[str, Any]) -> None:
    result = await call(ctx, name, **args)
    assert result.error is not None
    assert result.error.code == "not_authenticated"
    assert result.effects == []
    assert all(card.status == "active" for card in customer("CUST-001").cards)
    assert bank().fraud_cases == []
    assert bank().replacements == []


# --- account ----------------------------------------------------------------------------------------
async def test_balance(ctx: ToolContext) -> None:
    result = await call(await verified(ctx), "get_balance")
    assert result.ok
    assert result.data == {"account_type": "checking", "balance": 2345.67, "balance_text": "$2,345.67"}


async def test_recent_transactions_newest_first(ctx: ToolContext) -> None:
    await verified(ctx)
    default = await call(ctx, "recent_transactions")
    assert default.data["count"] == 3
    first = default.data["transactions"][0]
    assert first == {"posted_on": "2025-11-18", "date_text": "November 18", "description": "Blue Bottle Coffee",
                     "amount": -4.75, "amount_text": "$4.75", "direction": "out"}
    salary = default.data["transactions"][2]
    assert (salary["direction"], salary["amount_text"]) == ("in", "$2,150")
    everything = await call(ctx, "recent_transactions", count=10)
    assert everything.data["count"] == 5  # all Ada has


@pytest.mark.parametrize("count", [0, 11, -1])
async def test_transaction_count_is_bounded(ctx: ToolContext, count: int) -> None:
    result = await call(await verified(ctx), "recent_transactions", count=count)
    assert result.error is not None
    assert result.error.code == "invalid_arguments"
    assert result.error.details[0]["field"] == "count"


# --- cards ------------------------------------------------------------------------------------------
async def test_block_the_only_card_without_naming_it(ctx: ToolContext) -> None:
    result = await call(await verified(ctx), "block_card", reason="lost")
    assert result.ok
    assert result.data == {"card": {"last4": "1234", "kind": "debit", "status": "blocked"}, "reason": "lost",
                           "reference": "CB-1001", "already_blocked": False}
    card = customer("CUST-001").cards[0]
    assert (card.status, card.block_reason) == ("blocked", "lost")

    again = await call(ctx, "block_card")
    assert again.data["already_blocked"] is True
    assert again.data["reference"] == "CB-1001"


async def test_two_cards_and_no_last4_asks_which(ctx: ToolContext) -> None:
    result = await call(await verified(ctx, ALAN), "block_card")
    assert result.error is not None
    assert result.error.code == "tool_error"
    assert "5 6 7 8" in result.error.message
    assert "9 9 0 0" in result.error.message
    assert "Which one" in result.error.message
    assert all(c.status == "active" for c in customer("CUST-002").cards)


async def test_block_a_named_card_only(ctx: ToolContext) -> None:
    result = await call(await verified(ctx, ALAN), "block_card", card_last4="99 00", reason="stolen")
    assert result.ok
    cards = {c.last4: c.status for c in customer("CUST-002").cards}
    assert cards == {"5678": "active", "9900": "blocked"}
    unknown = await call(ctx, "block_card", card_last4="0000")
    assert unknown.error is not None
    assert "0 0 0 0" in unknown.error.message


async def test_only_one_active_card_is_the_one_meant(ctx: ToolContext) -> None:
    result = await call(await verified(ctx, GRACE), "block_card")
    assert result.ok
    assert result.data["card"]["last4"] == "2468"


async def test_blocked_state_lives_in_the_bank_not_the_call(ctx: ToolContext) -> None:
    await call(await verified(ctx), "block_card")
    later = await verified(ToolContext(call_id="c2", scenario="banking", agent="cards"))
    result = await call(later, "block_card")
    assert result.data["already_blocked"] is True


async def test_replace_card(ctx: ToolContext) -> None:
    result = await call(await verified(ctx), "replace_card")
    assert result.ok
    assert result.data == {"card": {"last4": "1234", "kind": "debit", "status": "active"}, "reference": "RC-3001",
                           "expedited": False, "business_days": 5, "already_ordered": False}
    again = await call(ctx, "replace_card", expedited=True)
    assert (again.data["already_ordered"], again.data["reference"]) == (True, "RC-3001")
    assert len(bank().replacements) == 1


async def test_replace_after_block_means_the_blocked_card(ctx: ToolContext) -> None:
    await verified(ctx, ALAN)
    ambiguous = await call(ctx, "replace_card")
    assert ambiguous.error is not None
    assert "Which one should I replace" in ambiguous.error.message
    await call(ctx, "block_card", card_last4="9900")
    result = await call(ctx, "replace_card", expedited=True)
    assert result.ok
    assert (result.data["card"]["last4"], result.data["business_days"]) == ("9900", 2)
    # Every blocked card is replaced now: "another one" must not guess between the others.
    assert not (await call(ctx, "replace_card")).ok


# --- fraud ------------------------------------------------------------------------------------------
async def test_report_fraud_opens_a_case_and_transfers(ctx: ToolContext) -> None:
    result = await call(await verified(ctx), "report_fraud", description="A charge I didn't make", amount=120.5)
    assert result.ok
    assert result.data == {"case_id": "FR-5001", "amount_text": "$120.50", "transferring": True}
    assert result.effects == [TransferRequested(reason="fraud case FR-5001")]
    case = bank().fraud_cases[0]
    assert (case.customer_id, case.amount) == ("CUST-001", Decimal("120.50"))


async def test_report_fraud_arguments(ctx: ToolContext) -> None:
    await verified(ctx)
    without_amount = await call(ctx, "report_fraud", description="my account was hacked")
    assert without_amount.ok
    assert without_amount.data["amount_text"] is None
    negative = await call(ctx, "report_fraud", description="odd charge", amount=-5)
    missing = await call(ctx, "report_fraud")
    assert negative.error is not None
    assert negative.error.code == "invalid_arguments"
    assert missing.error is not None
    assert missing.error.code == "invalid_arguments"
    assert len(bank().fraud_cases) == 1


# --- loans ------------------------------------------------------------------------------------------
async def test_loan_rates_need_no_verification(ctx: ToolContext) -> None:
    everything = await call(ctx, "loan_rates")
    assert everything.ok
    assert [r["product"] for r in everything.data["rates"]] == ["mortgage", "auto", "personal"]
    mortgage = await call(ctx, "loan_rates", product="mortgage")
    assert mortgage.data["rates"] == [{"product": "mortgage", "label": "30-year fixed mortgage", "apr": 6.25,
                                       "term": "30 years"}]
    boat = await call(ctx, "loan_rates", product="boat")
    assert boat.error is not None
    assert boat.error.code == "invalid_arguments"


async def test_application_status(ctx: ToolContext) -> None:
    await verified(ctx)
    latest = await call(ctx, "application_status")
    assert latest.ok
    assert latest.data["application_id"] == "L-2001"
    assert latest.data["status"] == "under review"
    assert latest.data["amount_text"] == "$350,000"
    spoken = await call(ctx, "application_status", application_id="l 2001")
    assert spoken.data["application_id"] == "L-2001"
    someone_elses = await call(ctx, "application_status", application_id="L-2002")
    assert someone_elses.error is not None
    assert someone_elses.error.code == "tool_error"


async def test_application_status_picks_the_most_recent(ctx: ToolContext) -> None:
    result = await call(await verified(ctx, GRACE), "application_status")
    assert (result.data["application_id"], result.data["status"]) == ("L-2003", "submitted")


# --- templates --------------------------------------------------------------------------------------
async def test_every_reply_template_renders_with_real_results(ctx: ToolContext) -> None:
    spoken: dict[str, list[str]] = {}

    async def run(name: str, **args: Any) -> None:
        result = await call(ctx, name, **args)
        assert result.ok, (name, result.error)
        spoken.setdefault(name, []).append(say(tool(name).reply, args=result.arguments, result=result.data,
                                               customer=ctx.customer, agent=ctx.agent))

    await run("loan_rates")  # before verification, as a caller who only wants rates would
    await run("verify_customer", **ADA)
    steps: list[tuple[str, dict[str, Any]]] = [
        ("get_balance", {}), ("recent_transactions", {"count": 1}), ("recent_transactions", {}), ("block_card", {}),
        ("block_card", {}), ("replace_card", {}), ("application_status", {}),
        ("report_fraud", {"description": "odd charge", "amount": 12.5}),
    ]
    for name, args in steps:
        await run(name, **args)

    module_tools = TOOLS.names()
    assert set(spoken) == module_tools, "every banking tool's reply is rendered here"
    assert spoken["verify_customer"] == ["Thank you, Ada, you're verified. How can I help you today?"]
    assert spoken["get_balance"] == ["Your checking balance is $2,345.67."]
    assert spoken["recent_transactions"][0] == "Here is your last transaction. November 18, $4.75, Blue Bottle Coffee."
    assert spoken["recent_transactions"][1].startswith("Here are your last 3 transactions.")
    assert "ending in 1 2 3 4 is now blocked. Your reference is CB-1001" in spoken["block_card"][0]
    assert "was already blocked" in spoken["block_card"][1]
    assert "within 5 business days" in spoken["replace_card"][0]
    assert spoken["loan_rates"][0].startswith("Our 30-year fixed mortgage is currently 6.25 percent APR, our new car")
    assert ", and our personal loan is currently 9.99 percent APR." in spoken["loan_rates"][0]
    assert "L-2001, for $350,000, is under review." in spoken["application_status"][0]
    assert spoken["report_fraud"] == ["I've opened fraud case FR-5001 for $12.50. I'm connecting you to our fraud "
                                      "team now. Please stay on the line."]


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("block_card", {}, "you'd like me to block your card."),
    ("block_card", {"card_last4": "1234", "reason": "lost"}, "block the card ending in 1 2 3 4."),
    ("replace_card", {}, "a replacement for your card, to your address on file?"),
    ("replace_card", {"card_last4": "9900", "expedited": True}, "ending in 9 9 0 0, with express delivery,"),
])
def test_confirm_templates_use_only_the_arguments(name: str, raw: dict[str, Any], expected: str) -> None:
    spec = tool(name)
    args = spec.args_model.model_validate(raw).model_dump()
    assert expected in say(spec.confirm, args=args)


# --- definitions ------------------------------------------------------------------------------------
def test_definitions_match_the_schema_and_render() -> None:
    raw = yaml.safe_load((SCENARIO_DIR / "scenario.yaml").read_text(encoding="utf-8"))
    scenario = ScenarioSpec.model_validate(raw)
    agents = {p.stem: AgentSpec.model_validate(merge_defaults(scenario.defaults, yaml.safe_load(p.read_text())))
              for p in sorted((SCENARIO_DIR / "agents").glob("*.yaml"))}
    assert set(agents) == {"auth", "account", "cards", "fraud", "loans"}
    assert all(spec.name == name for name, spec in agents.items())
    assert all(agents[n].requires_auth for n in ("account", "cards", "fraud", "loans"))
    assert set(agents["auth"].handoffs) == {"account", "cards", "fraud", "loans"}
    for spec in agents.values():
        assert "transfer_to_human" in spec.tools
        assert all(t in default_registry for t in spec.tools if t != "transfer_to_human"), spec.name
        assert 5 <= len(spec.handoff_examples) <= 10
    customer = {"id": "CUST-001", "name": "Ada Lovelace", "first_name": "Ada", "last_name": "Lovelace"}
    handoff = {"from_agent": "auth", "reason": "lost card", "summary": "Ada lost her debit card."}
    for spec in agents.values():
        assert spec.prompt is not None
        source = (SCENARIO_DIR / spec.prompt).read_text(encoding="utf-8")
        for who, why, hour in ((None, None, 9), (customer, handoff, 19)):
            variables = {"agent": spec.name, "scenario": "banking", "caller": "+14255550123", "customer": who,
                         "handoff": why, "locale": spec.locale, "now": datetime(2026, 1, 15, hour, tzinfo=UTC),
                         "time_of_day": "morning" if hour < 12 else "evening"}
            prompt = render(source, **variables)
            assert ("verified as Ada Lovelace" in prompt) == (who is not None)
            assert ("You took over from auth" in prompt) == (why is not None)
            assert say(spec.greeting, **variables)


async def test_the_fraud_agents_block_card_reply_override(ctx: ToolContext) -> None:
    fraud = yaml.safe_load((SCENARIO_DIR / "agents" / "fraud.yaml").read_text(encoding="utf-8"))
    result = await call(await verified(ctx), "block_card", reason="suspected_fraud")
    text = say(fraud["replies"]["block_card"], args=result.arguments, result=result.data, customer=ctx.customer,
               agent="fraud")
    assert text == ("Done, the card ending in 1 2 3 4 is blocked, so nobody can use it. Now tell me briefly what "
                    "happened, and I'll open a fraud case.")
