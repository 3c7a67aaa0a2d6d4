"""The offline brain's routing against the shipped agents: every banking and clinic intent, the human
transfer from anywhere, the current agent's own tools before handoffs, and nothing for nonsense."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents import Agent, Catalog, load_catalog
from agents.tools import ToolContext, ToolRegistry, ToolSpec
from media_host.brain.replies import offer_sentence, small_talk
from media_host.brain.routing import THRESHOLD, Router, router_for


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(Path("agents/definitions"))


def route(catalog: Catalog, where: str, said: str) -> str | None:
    scenario, agent = where.split("/")
    return router_for(catalog.agent(scenario, agent).tools).route(said).tool


@pytest.mark.parametrize(("where", "said", "expected"), [
    # auth: verification, rates for anyone, and the way to every specialist
    ("banking/auth", "My account number is 4567.", "verify_customer"),
    ("banking/auth", "My date of birth is March 3rd, 1980.", "verify_customer"),
    ("banking/auth", "I'd like to verify my identity", "verify_customer"),
    ("banking/auth", "what are your mortgage rates", "loan_rates"),
    ("banking/auth", "I want to check my account balance", "handoff_to_account"),
    ("banking/auth", "Hi, I'd like to check my balance please", "handoff_to_account"),
    ("banking/auth", "read me my recent transactions", "handoff_to_account"),
    ("banking/auth", "My card was stolen, please block it.", "handoff_to_cards"),
    ("banking/auth", "I lost my card", "handoff_to_cards"),
    ("banking/auth", "I need a new card", "handoff_to_cards"),
    ("banking/auth", "there's a charge I don't recognise", "handoff_to_fraud"),
    ("banking/auth", "I think someone hacked my account", "handoff_to_fraud"),
    ("banking/auth", "someone used my card without permission", "handoff_to_fraud"),
    ("banking/auth", "I want to speak to the fraud team", "handoff_to_fraud"),
    ("banking/auth", "has my mortgage been approved", "handoff_to_loans"),
    # account
    ("banking/account", "what's my balance", "get_balance"),
    ("banking/account", "how much money do I have", "get_balance"),
    ("banking/account", "am I overdrawn", "get_balance"),
    ("banking/account", "read me my last five transactions", "recent_transactions"),
    ("banking/account", "what did I spend last week", "recent_transactions"),
    ("banking/account", "has my salary come in", "recent_transactions"),
    ("banking/account", "my card was stolen", "handoff_to_cards"),
    ("banking/account", "there's a payment I didn't make", "handoff_to_fraud"),
    ("banking/account", "what are your loan rates", "handoff_to_loans"),
    ("banking/account", "I want to check another account", "handoff_to_auth"),
    # cards
    ("banking/cards", "my card was stolen", "block_card"),
    ("banking/cards", "block my card", "block_card"),
    ("banking/cards", "freeze my debit card", "block_card"),
    ("banking/cards", "I need a replacement card", "replace_card"),
    ("banking/cards", "send me a new one", "replace_card"),
    ("banking/cards", "my card's chip stopped working", "replace_card"),
    ("banking/cards", "someone used my card without permission", "handoff_to_fraud"),
    ("banking/cards", "what's my balance", "handoff_to_account"),
    # fraud
    ("banking/fraud", "there's a charge I don't recognise", "report_fraud"),
    ("banking/fraud", "I want to report fraud", "report_fraud"),
    ("banking/fraud", "block my card", "block_card"),  # its own tool, not the handoff to cards
    ("banking/fraud", "I want a new card", "handoff_to_cards"),
    # loans
    ("banking/loans", "what are your mortgage rates", "loan_rates"),
    ("banking/loans", "how much interest on a car loan", "loan_rates"),
    ("banking/loans", "what's the status of my loan application", "application_status"),
    ("banking/loans", "any news on my application", "application_status"),
    ("banking/loans", "where is my application L-2001", "application_status"),
    ("banking/loans", "my card was stolen", "handoff_to_cards"),
    # clinic
    ("clinic/reception", "I'd like to book an appointment", "find_slots"),
    ("clinic/reception", "is Dr. Patel free this week", "find_slots"),
    ("clinic/reception", "do you have anything on Tuesday", "find_slots"),
    ("clinic/reception", "the first one works", "book_appointment"),
    ("clinic/reception", "I need to cancel my appointment", "cancel_appointment"),
    ("clinic/reception", "please cancel appointment A-1000", "cancel_appointment"),
    ("clinic/reception", "my child has a fever", "handoff_to_nurse"),
    ("clinic/reception", "I'm not feeling well", "handoff_to_nurse"),
    ("clinic/reception", "I'd like to speak to a nurse", "handoff_to_nurse"),
    ("clinic/reception", "I have a bad headache", "handoff_to_nurse"),  # a symptom no example names
    ("clinic/nurse", "I have a fever", "nurse_advice"),
    ("clinic/nurse", "my chest hurts", "nurse_advice"),
    ("clinic/nurse", "I've had a cough for a week", "nurse_advice"),
    ("clinic/nurse", "I twisted my ankle", "nurse_advice"),
    ("clinic/nurse", "I'd like to book an appointment", "handoff_to_reception"),
])
def test_intents_route_to_their_tools(catalog: Catalog, where: str, said: str, expected: str) -> None:
    assert route(catalog, where, said) == expected


HUMAN = ["transfer me to a human", "Transfer me to a human agent.", "I want to talk to a real person",
         "can I speak to someone", "representative please", "operator", "get me a human", "let me talk to an agent",
         "I'd like to speak to a representative", "put me through to a person please", "agent"]


@pytest.mark.parametrize("said", HUMAN)
def test_asking_for_a_person_transfers_from_every_agent(catalog: Catalog, said: str) -> None:
    for scenario in catalog.scenarios.values():
        for agent in scenario.agents.values():
            decision = router_for(agent.tools).route(said)
            assert decision.tool == "transfer_to_human", (agent.name, said, decision.explain())


@pytest.mark.parametrize("said", ["purple monkey dishwasher", "the weather is nice today", "blah blah", "hmm",
                                  "no thanks", "yes", "Hello", "thank you", "4567"])
def test_nonsense_and_bare_answers_route_nowhere(catalog: Catalog, said: str) -> None:
    for scenario in catalog.scenarios.values():
        for agent in scenario.agents.values():
            assert router_for(agent.tools).route(said).tool is None, (agent.name, said)


def test_decisions_keep_every_score_and_explain_themselves(catalog: Catalog) -> None:
    router = router_for(catalog.agent("banking", "cards").tools)
    decision = router.route("my card was stolen")
    assert decision.tool == "block_card"
    assert decision.phrase == "my card was stolen"
    assert set(decision.scores) == {t.name for t in catalog.agent("banking", "cards").tools}
    assert decision.scores["block_card"] > decision.scores["replace_card"] > 0
    assert decision.explain().startswith("block_card (1.00, 'my card was stolen'); block_card=1.00")
    assert router.route("my card was stolen") == decision  # deterministic
    rule = router.route("get me a human")
    assert (rule.tool, rule.rule) == ("transfer_to_human", "transfer rule")


def test_excluded_tools_and_ignored_words(catalog: Catalog) -> None:
    router = router_for(catalog.agent("banking", "auth").tools)
    said = "my account number is 4567, born March 3rd 1980, and I'd like my balance"
    assert router.route(said).tool == "verify_customer"
    verify = router.doc("verify_customer")
    assert verify is not None
    other = router.route(said, exclude=["verify_customer"], ignore=verify.vocabulary)
    assert other.tool == "handoff_to_account"  # what the caller wants once verified


def test_own_tools_win_a_near_tie_with_a_handoff(catalog: Catalog) -> None:
    decision = router_for(catalog.agent("banking", "fraud").tools).route("block my card")
    assert decision.scores["block_card"] > decision.scores["handoff_to_cards"]


def test_routers_are_shared_per_tool_set(catalog: Catalog) -> None:
    agent: Agent = catalog.agent("banking", "auth")
    assert router_for(agent.tools) is router_for(list(agent.tools))


def test_a_users_own_tools_route_without_code_changes() -> None:
    registry = ToolRegistry()

    @registry.tool(name="order_status", description="Where an order is, by its order number.",
                   examples=["where is my order", "track my delivery", "has my parcel shipped"])
    async def order_status(ctx: ToolContext, order: str) -> dict[str, str]:
        return {}

    @registry.tool(name="opening_hours", description="When the shop is open.",
                   examples=["what time do you open", "are you open on Sunday"])
    async def opening_hours(ctx: ToolContext) -> dict[str, str]:
        return {}

    tools: list[ToolSpec] = [spec for name in ("order_status", "opening_hours") if (spec := registry.get(name))]
    router = Router(tools)
    assert router.route("where's my parcel").tool == "order_status"
    assert router.route("when do you open tomorrow").tool == "opening_hours"
    assert router.route("I'd like a refund for my lamp").tool is None
    assert 0 < THRESHOLD < 1


@pytest.mark.parametrize(("reply", "offer"), [
    ("Done. Your reference is CB-1001. Would you like me to order a replacement?",
     "Would you like me to order a replacement?"),
    ("The next opening is Tuesday at 9:30 AM. Would that work?", "Would that work?"),
    ("Now tell me briefly what happened, and I'll open a fraud case.",
     "Now tell me briefly what happened, and I'll open a fraud case."),
    ("Your balance is $2,345.67.", None),
    ("Is there anything else I can help with?", None),
])
def test_offers_in_replies(reply: str, offer: str | None) -> None:
    assert offer_sentence(reply) == offer


@pytest.mark.parametrize(("said", "before", "reply", "ending"), [
    ("hello", "", "Hello! How can I help you today?", False),
    ("thank you so much", "", "You're welcome. Is there anything else I can help with?", False),
    ("bye", "", "Thank you for calling. Goodbye!", True),
    ("no, that's all", "Is there anything else I can help with?", "Thank you for calling. Goodbye!", True),
    ("yes", "Is there anything else I can help with?", "Sure. What else can I help you with?", False),
    ("hold on, let me find it", "", "Of course, take your time.", False),
    ("how are you", "", "I'm well, thank you. How can I help you today?", False),
])
def test_small_talk(said: str, before: str, reply: str, ending: bool) -> None:
    assert small_talk(said, before) == (reply, ending)
    assert small_talk("I want to check my balance", before) is None
