"""Whole phone conversations with the offline brain, through the pipeline's protocol.

`Call` simulates the cascade pipeline's responder: it keeps the history, asks the brain for a reply,
runs each tool call for real through the registry, appends the tool result, applies its effects
(verification, handoff with the new agent's greeting, transfer) and asks again, up to five rounds per
caller turn. The shipped scenarios and their sample data are used as they are.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agents import Catalog, PromptVariables, ToolContext, default_registry, load_catalog
from agents.definitions.banking.sample_bank import SampleBank, bank, reset_bank
from agents.definitions.banking.tools import FAILURES_KEY
from agents.definitions.clinic.sample_clinic import SampleClinic, clinic, reset_clinic
from agents.tools import Authenticated, HandoffRequested, TransferRequested
from media_host.brain import OfflineBrainChatModel
from media_host.brain.replies import question_for
from media_host.brain.state import STATE_KEY
from media_host.engines.base import ChatMessage, ChatModel, ChatRequest, TextDelta, ToolCall, ToolCallDelta
from tests.unit.test_agents_doc_example import _write_example

MONDAY = date(2025, 12, 1)
CATALOG = load_catalog(Path("agents/definitions"))
BRAIN = OfflineBrainChatModel()  # one engine for every call, as in the media host


@pytest.fixture(autouse=True)
def fresh_data() -> tuple[SampleBank, SampleClinic]:
    return reset_bank(), reset_clinic(today=MONDAY)


class Call:
    """One phone call, as the cascade pipeline drives the chat model."""

    def __init__(self, scenario: str, catalog: Catalog = CATALOG) -> None:
        self.scenario = catalog.scenario(scenario)
        self.agent = self.scenario.entry_agent
        self.now = datetime(2025, 12, 1, 9, 30, tzinfo=ZoneInfo(self.scenario.spec.timezone))
        self.history: list[ChatMessage] = []
        self.state: dict[str, Any] = {}
        self.tool_state: dict[str, Any] = {}
        self.customer: dict[str, Any] | None = None
        self.handoff: dict[str, str] | None = None
        self.transfer: str | None = None
        self.tools_called: list[tuple[str, dict[str, Any]]] = []
        self.transcript = [f"agent: {self.agent.render_greeting(self.variables())}"]

    def variables(self) -> PromptVariables:
        return PromptVariables(agent=self.agent.name, scenario=self.scenario.name, customer=self.customer,
                               handoff=self.handoff, now=self.now)

    def request(self) -> ChatRequest:
        system = ChatMessage(role="system", content=self.agent.render_prompt(self.variables()))
        return ChatRequest(messages=[system, *self.history], agent=self.agent, tools=self.agent.tools,
                           customer=self.customer, state=self.state)

    async def say(self, text: str) -> str:
        """The caller says `text`; returns everything the caller hears before it is their turn again."""
        self.transcript.append(f"caller: {text}")
        self.history.append(ChatMessage(role="user", content=text))
        heard: list[str] = []
        for _ in range(5):
            agent = self.agent
            deltas = [d async for d in BRAIN.stream(self.request())]
            json.dumps(self.state)  # the session stores it as JSON
            said = "".join(d.text for d in deltas if isinstance(d, TextDelta))
            calls = [d.call for d in deltas if isinstance(d, ToolCallDelta)]
            assert len(calls) <= 1
            assert all(isinstance(d, TextDelta) for d in deltas[:-1])  # text, then at most one call, last
            if said:
                heard.append(said)
                self.transcript.append(f"agent: {said}")
            self.history.append(ChatMessage(role="assistant", content=said, tool_calls=tuple(calls)))
            if not calls:
                break
            for call in calls:
                await self.run_tool(call)
            if self.agent is not agent:
                greeting = self.agent.render_greeting(self.variables())
                heard.append(greeting)
                self.transcript.append(f"agent: {greeting}")
        return " ".join(heard)

    async def run_tool(self, call: ToolCall) -> None:
        spec = self.agent.tool(call.name)
        assert spec is not None, f"{call.name} is not a tool of {self.agent.name}"
        ctx = ToolContext(call_id="c1", scenario=self.scenario.name, agent=self.agent.name, customer=self.customer,
                          state=self.tool_state)
        result = await default_registry.execute(call.name, call.arguments, ctx, spec=spec)
        self.tools_called.append((call.name, json.loads(call.arguments)))
        self.transcript.append(f"  [{call.name} -> {'ok' if result.ok else result.error.code if result.error else ''}]")
        self.history.append(ChatMessage(role="tool", content=result.for_model(), tool_call_id=call.id,
                                        name=call.name))
        for effect in result.effects:
            if isinstance(effect, Authenticated):
                self.customer = effect.customer
            elif isinstance(effect, HandoffRequested):
                self.handoff = {"from_agent": self.agent.name, "reason": effect.reason, "summary": effect.summary}
                self.agent = self.scenario.agents[effect.target]
            elif isinstance(effect, TransferRequested):
                self.transfer = effect.reason

    def names(self) -> list[str]:
        return [name for name, _ in self.tools_called]


async def verified(call: Call) -> Call:
    await call.say("My account number is 4567.")
    await call.say("My date of birth is March 3rd, 1980.")
    assert call.customer is not None
    return call


# --- banking ---------------------------------------------------------------------------------------------------
async def test_balance_asked_before_verification_is_given_after_it() -> None:
    call = Call("banking")
    assert await call.say("Hi, I'd like to check my balance please") == (
        "I can help with that as soon as you're verified. What's your account number?")
    assert await call.say("My account number is 4567.") == "Thank you. And what's your date of birth?"
    heard = await call.say("My date of birth is March 3rd, 1980.")
    assert heard == ("Thank you, Ada, you're verified. You're through to account services, Ada. "
                     "Your checking balance is $2,345.67.")
    assert call.names() == ["verify_customer", "handoff_to_account", "get_balance"]
    assert call.agent.name == "account"
    assert call.handoff is not None
    assert "4567" not in call.handoff["summary"]  # the summary reaches prompts and records: no numbers


async def test_wrong_date_of_birth_then_the_right_one() -> None:
    call = Call("banking")
    await call.say("My account number is 4567.")
    assert await call.say("My date of birth is March 4th, 1980.") == (
        "Those details don't match our records. Please check your account number and date of birth. "
        "You have 2 more tries.")
    assert call.tool_state[FAILURES_KEY] == 1
    heard = await call.say("Sorry, it's March 3rd, 1980.")
    assert heard == "Thank you, Ada, you're verified. How can I help you today?"
    assert call.tools_called[-1] == ("verify_customer", {"account_number": "4567", "date_of_birth": "1980-03-03"})
    assert FAILURES_KEY not in call.tool_state


@pytest.mark.parametrize("details", [
    ["My count number is 4 5 6 7", "My date of birth is March 3rd, 1980."],  # Whisper tiny.en, piper voice
    ["My account number is 4567.", "My date of birth is March 3rd 1980."],
    ["my account number is four five six seven", "my date of birth is march third nineteen eighty"],
    ["forty five sixty seven", "3/3/1980"],
    ["account 4567, date of birth 1980-03-03"],
    ["My date of birth is the third of March 1980", "and the account is 4 5 6 7"],
])
async def test_verification_from_whisper_style_transcripts(details: list[str]) -> None:
    call = Call("banking")
    for said in details:
        heard = await call.say(said)
    assert heard == "Thank you, Ada, you're verified. How can I help you today?"
    assert call.names() == ["verify_customer"]


async def test_everything_in_one_breath() -> None:
    call = Call("banking")
    heard = await call.say("my account number is four five six seven and I was born on the third of March "
                           "nineteen eighty, I'd like to know my balance")
    assert heard.endswith("Your checking balance is $2,345.67.")
    assert call.names() == ["verify_customer", "handoff_to_account", "get_balance"]


async def test_stolen_card_from_auth_is_blocked_after_confirmation() -> None:
    call = await verified(Call("banking"))
    heard = await call.say("My card was stolen, please block it.")
    assert heard == ("You're through to card services, Ada. Just to confirm, you'd like me to block your card. "
                     "Once blocked it can't be used again. Shall I go ahead?")
    assert call.agent.name == "cards"
    heard = await call.say("Yes, that is correct.")
    assert heard == ("Done. The card ending in 1 2 3 4 is now blocked. Your reference is CB-1001. "
                     "Would you like me to order a replacement?")
    assert call.tools_called[-1] == ("block_card", {"reason": "stolen"})
    customer = bank().customer("CUST-001")
    assert customer is not None
    assert customer.cards[0].status == "blocked"
    assert customer.cards[0].block_reason == "stolen"
    # The offer is taken with a yes, confirmed like any lasting change, then done.
    assert await call.say("yes please") == "Shall I order a replacement for your card, to your address on file?"
    assert await call.say("yes") == ("I've ordered a replacement for the card ending in 1 2 3 4. It should arrive "
                                     "within 5 business days. Your reference is RC-3001.")
    assert await call.say("no that's all, thanks") == "Thank you for calling. Goodbye!"
    assert call.transfer is None


async def test_no_at_the_confirmation_changes_nothing() -> None:
    call = await verified(Call("banking"))
    await call.say("block my card")
    assert await call.say("no") == "No problem, I won't do that. Is there anything else I can help with?"
    assert "block_card" not in call.names()
    customer = bank().customer("CUST-001")
    assert customer is not None
    assert customer.cards[0].status == "active"


async def test_details_corrected_at_the_confirmation_are_confirmed_again() -> None:
    call = await verified(Call("banking"))
    await call.say("I need a replacement card")
    assert await call.say("yes, with express delivery") == (
        "Shall I order a replacement for your card, with express delivery, to your address on file?")
    assert await call.say("yes") == ("I've ordered a replacement for the card ending in 1 2 3 4. It should arrive "
                                     "within 2 business days. Your reference is RC-3001.")
    assert call.tools_called[-1] == ("replace_card", {"expedited": True})
    assert await call.say("I'm sorry, what was that?") == (
        "I've ordered a replacement for the card ending in 1 2 3 4. It should arrive within 2 business days. "
        "Your reference is RC-3001.")


async def test_auth_gating_remembers_the_intent_with_its_details() -> None:
    call = Call("banking")
    assert await call.say("please block my card ending in 1234") == (
        "I can help with that as soon as you're verified. What's your account number?")
    assert call.names() == []  # nothing is tried before the caller is verified
    await call.say("4567")
    heard = await call.say("1980-03-03")
    assert heard.endswith("Just to confirm, you'd like me to block the card ending in 1 2 3 4. Once blocked it "
                          "can't be used again. Shall I go ahead?")
    assert call.names() == ["verify_customer", "handoff_to_cards"]


async def test_a_tool_error_listing_choices_is_answered_by_a_choice() -> None:
    call = Call("banking")
    await call.say("account 7788, date of birth 6/23/1975")  # Alan Turing: a debit and a credit card
    await call.say("I lost my card")
    assert await call.say("yes") == ("You have 2 cards: a debit card ending in 5 6 7 8 and a credit card ending in "
                                     "9 9 0 0. Which one should I block?")
    assert await call.say("the credit one") == ("Just to confirm, you'd like me to block the card ending in "
                                                "9 9 0 0. Once blocked it can't be used again. Shall I go ahead?")
    assert "CB-1001" in await call.say("yes")
    assert call.tools_called[-1] == ("block_card", {"reason": "lost", "card_last4": "9900"})


async def test_fraud_is_reported_and_transferred() -> None:
    call = await verified(Call("banking"))
    heard = await call.say("there's a charge of twelve dollars fifty I don't recognise")
    assert heard == ("You're through to our fraud team, Ada. I'm sorry you're dealing with this; let's get it "
                     "sorted. I've opened fraud case FR-5001 for $12.50. I'm connecting you to our fraud team now. "
                     "Please stay on the line.")
    assert call.transfer == "fraud case FR-5001"


async def test_fraud_asks_what_happened_when_the_caller_only_names_it() -> None:
    call = await verified(Call("banking"))
    heard = await call.say("I want to report fraud")
    assert heard.endswith("I'm sorry this happened. Can you tell me briefly what you noticed?")
    assert "FR-5001" in await call.say("Someone bought things online with my card yesterday")
    assert call.tools_called[-1] == ("report_fraud", {"description": "Someone bought things online with my card "
                                                                     "yesterday"})


async def test_loans_and_rates() -> None:
    call = Call("banking")
    assert await call.say("what are your mortgage rates") == (
        "Our 30-year fixed mortgage is currently 6.25 percent APR. Rates are indicative and depend on credit "
        "approval.")  # no verification needed
    await verified(call)
    heard = await call.say("any news on my mortgage application")
    assert heard.endswith("Your mortgage loan application L-2001, for $350,000, is under review. An underwriter is "
                          "reviewing it now. You will usually hear from us within five business days.")


async def test_transactions_with_a_count() -> None:
    call = await verified(Call("banking"))
    heard = await call.say("read me my last two transactions")
    assert heard.endswith("Here are your last 2 transactions. November 18, $4.75, Blue Bottle Coffee. "
                          "November 17, $86.42, Whole Foods Market.")


async def test_three_misunderstandings_transfer_to_a_person() -> None:
    call = Call("banking")
    clarify = "Sorry, I didn't catch that. To get started, I need your account number and your date of birth."
    assert await call.say("blah blah") == clarify
    assert await call.say("purple monkey dishwasher") == clarify
    heard = await call.say("the weather is nice")
    assert heard == ("I'm sorry, I'm having trouble understanding. Of course. I'm transferring you to a colleague "
                     "now. Please stay on the line.")
    assert call.tools_called[-1] == ("transfer_to_human", {"reason": "could not understand the caller"})
    assert call.transfer == "could not understand the caller"


async def test_an_understood_turn_resets_the_misunderstandings() -> None:
    call = Call("banking")
    await call.say("blah blah")
    await call.say("hmm")
    await call.say("hello")  # small talk is understood
    await call.say("blah")
    assert call.transfer is None


async def test_an_unanswered_question_counts_as_a_misunderstanding() -> None:
    call = Call("banking")
    await call.say("My account number is 4567.")
    assert await call.say("uh") == "Sorry, I didn't catch that. Thank you. And what's your date of birth?"
    await call.say("hmm")
    await call.say("what")
    assert call.transfer == "could not understand the caller"


async def test_asking_for_a_person() -> None:
    call = Call("banking")
    assert await call.say("I want to talk to a real person") == (
        "Of course. I'm transferring you to a colleague now. Please stay on the line.")
    assert call.transfer == "caller asked for a person"


async def test_small_talk_never_breaks_a_request() -> None:
    call = Call("banking")
    assert await call.say("Hello") == "Hello! How can I help you today?"
    assert await call.say("thank you") == "You're welcome. Is there anything else I can help with?"
    assert (await call.say("Hi there, what's my balance?")).startswith("I can help with that as soon as")
    assert await call.say("sorry, can you repeat that?") == (
        "I can help with that as soon as you're verified. What's your account number?")


# --- clinic -----------------------------------------------------------------------------------------------------------
async def test_nurse_advice_then_booking_then_cancelling() -> None:
    call = Call("clinic")
    heard = await call.say("I have a fever and a cough")
    assert heard.startswith("Hello, this is the nurse line. Tell me a little more about how you're feeling. "
                            "Rest, drink plenty of fluids")
    assert heard.endswith("Would you like me to pass you to reception to book an appointment?")
    assert call.tools_called[-1] == ("nurse_advice", {"symptom": "I have a fever and a cough"})
    heard = await call.say("yes please")
    assert heard == ("You're back with reception. Let's find you an appointment. I have Tuesday, December 2 at "
                     "11:00 AM with Dr. Samuel Okafor, Tuesday, December 2 at 3:30 PM with Dr. Samuel Okafor, or "
                     "Tuesday, December 2 at 4:00 PM with Dr. Linh Nguyen. Which would you like?")
    assert await call.say("the second one") == "Can I have the patient's full name, please?"
    assert await call.say("Ada Lovelace") == "And the patient's date of birth?"
    assert await call.say("March 3rd, 1980") == "Shall I book that appointment for Ada Lovelace?"
    assert await call.say("yes") == ("You're booked with Dr. Samuel Okafor on Tuesday, December 2 at 3:30 PM. "
                                      "Your reference is A-1001. Please arrive ten minutes early.")
    assert call.tools_called[-1] == ("book_appointment", {"slot_id": "okafor-20251202-1530",
                                                          "patient_name": "Ada Lovelace",
                                                          "date_of_birth": "1980-03-03"})
    assert await call.say("actually I need to cancel appointment A-1001") == "Shall I cancel appointment A-1001?"
    assert await call.say("yes") == ("Your appointment with Dr. Samuel Okafor on Tuesday, December 2 at 3:30 PM "
                                     "is cancelled. Is there anything else I can help with?")
    assert clinic().appointments["A-1001"].status == "cancelled"
    assert await call.say("no, thanks, bye") == "Thank you for calling. Goodbye!"


async def test_booking_a_chosen_day_doctor_and_time() -> None:
    call = Call("clinic")
    heard = await call.say("I'd like to book an appointment with Dr. Patel on Wednesday")
    assert heard == ("I have Wednesday, December 3 at 9:00 AM with Dr. Maya Patel, Wednesday, December 3 at "
                     "10:30 AM with Dr. Maya Patel, or Wednesday, December 3 at 2:00 PM with Dr. Maya Patel. "
                     "Which would you like?")
    assert call.tools_called[-1] == ("find_slots", {"day": "2025-12-03", "doctor": "Patel"})
    assert await call.say("the 10:30 one") == "Can I have the patient's full name, please?"
    await call.say("my name is Grace Hopper")
    assert await call.say("12/9/1969") == "Shall I book that appointment for Grace Hopper?"
    assert "A-1001" in await call.say("yes")
    assert call.tools_called[-1][1]["slot_id"] == "patel-20251203-1030"
    assert call.tools_called[-1][1]["date_of_birth"] == "1969-12-09"


async def test_cancelling_with_the_reference_in_words() -> None:
    call = Call("clinic")
    assert await call.say("I need to cancel my appointment") == (
        "What's the appointment reference? It starts with the letter A.")
    assert await call.say("it's A one thousand") == "Shall I cancel appointment A-1000?"
    assert (await call.say("yes please")).startswith("Your appointment with Dr. Samuel Okafor on")


async def test_a_handoff_with_nothing_more_to_do_lets_the_greeting_speak() -> None:
    call = Call("clinic")
    assert await call.say("I'd like to speak to a nurse") == (
        "Hello, this is the nurse line. Tell me a little more about how you're feeling.")
    assert call.agent.name == "nurse"
    assert call.names() == ["handoff_to_nurse"]
    assert "Chest pain can be a sign of a heart attack" in await call.say("I have chest pain")


# --- a user's own scenario (docs/agents.md's worked example) -----------------------------------------------------
async def test_a_users_own_scenario_works_without_code_changes(tmp_path: Path) -> None:
    _write_example(tmp_path)
    call = Call("pizza", load_catalog(tmp_path))
    assert await call.say("what pizzas do you have") == "We have margherita, pepperoni, veggie."
    assert await call.say("can I get a margherita") == "One medium margherita, is that right?"
    assert await call.say("no, make it a large one") == "One large margherita, is that right?"
    heard = await call.say("yes")
    assert heard.startswith("Order P-")
    assert heard.endswith(" is in: large margherita. About 30 minutes.")
    order = call.tools_called[-1]
    assert order[0] == "place_order"
    assert order[1] == {"pizza": "margherita", "size": "large"}
    assert await call.say("where is my pizza") == "I can check on your delivery. What's your order number?"
    number = heard.removeprefix("Order ").split()[0]
    assert await call.say(f"It's {number}.") == f"Order {number} is in the oven."


# --- the protocol: other models' history, failures, state -----------------------------------------------------------
def request(agent: str, messages: list[ChatMessage], state: dict[str, Any] | None = None,
            customer: dict[str, Any] | None = None, scenario: str = "banking") -> ChatRequest:
    spec = CATALOG.agent(scenario, agent)
    return ChatRequest(messages=[ChatMessage(role="system", content="You are an agent."), *messages], agent=spec,
                       tools=spec.tools, customer=customer, state=state if state is not None else {})


ADA = {"id": "CUST-001", "name": "Ada Lovelace", "first_name": "Ada", "last_name": "Lovelace"}


def after(tool: str, arguments: dict[str, Any], content: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content="please"),
            ChatMessage(role="assistant", tool_calls=(ToolCall("call_llm_1", tool, json.dumps(arguments)),)),
            ChatMessage(role="tool", content=content, tool_call_id="call_llm_1", name=tool)]


def test_phrasing_the_result_of_another_models_tool_call() -> None:
    content = '{"account_type": "checking", "balance": 2345.67, "balance_text": "$2,345.67"}'
    reply = BRAIN.respond(request("account", after("get_balance", {}, content), customer=ADA))
    assert (reply.text, reply.call) == ("Your checking balance is $2,345.67.", None)


@pytest.mark.parametrize("code", ["timeout", "internal_error"])
def test_a_failed_tool_gets_an_apology_and_the_offer_of_a_colleague(code: str) -> None:
    state: dict[str, Any] = {}
    failed = json.dumps({"error": code, "message": "get_balance failed"})
    messages = after("get_balance", {}, failed)
    reply = BRAIN.respond(request("account", messages, state, ADA))
    assert reply.text == "I'm sorry, I couldn't do that just now. Would you like me to put you through to a colleague?"
    messages += [ChatMessage(role="assistant", content=reply.text), ChatMessage(role="user", content="yes please")]
    accepted = BRAIN.respond(request("account", messages, state, ADA))
    assert accepted.call is not None
    assert accepted.call.name == "transfer_to_human"


def test_invalid_arguments_are_asked_for_again() -> None:
    failed = json.dumps({"error": "invalid_arguments", "message": "invalid arguments for verify_customer",
                         "details": [{"field": "date_of_birth", "problem": "Input should be a valid date"}]})
    state: dict[str, Any] = {}
    messages = after("verify_customer", {"account_number": "4567", "date_of_birth": "1980-13-45"}, failed)
    reply = BRAIN.respond(request("auth", messages, state))
    assert reply.text == "Sorry, I didn't catch that. Thank you. And what's your date of birth?"
    messages += [ChatMessage(role="assistant", content=reply.text),
                 ChatMessage(role="user", content="March 3rd, 1980")]
    retried = BRAIN.respond(request("auth", messages, state))
    assert retried.call is not None
    assert json.loads(retried.call.arguments) == {"account_number": "4567", "date_of_birth": "1980-03-03"}


def test_not_authenticated_asks_for_verification_and_remembers_why() -> None:
    failed = json.dumps({"error": "not_authenticated", "message": "the caller must be verified"})
    state: dict[str, Any] = {}
    reply = BRAIN.respond(request("auth", after("handoff_to_account", {}, failed), state))
    assert reply.text == "I can help with that as soon as you're verified. What's your account number?"
    assert state[STATE_KEY]["intent"] == {"text": "please", "tool": "handoff_to_account"}
    assert state[STATE_KEY]["pending"]["awaiting"] == "account_number"


def test_what_the_brain_waited_for_is_forgotten_when_another_model_answered_in_between() -> None:
    state: dict[str, Any] = {}
    messages = [ChatMessage(role="user", content="My account number is 4567.")]
    assert BRAIN.respond(request("auth", messages, state)).text == "Thank you. And what's your date of birth?"
    # The cloud model answers the next turns itself; the brain is asked again later as a fallback.
    messages += [ChatMessage(role="assistant", content="Thank you. And what's your date of birth?"),
                 ChatMessage(role="user", content="Actually, what are your rates?"),
                 ChatMessage(role="assistant", content="Our rates are..."),
                 ChatMessage(role="user", content="March 3rd 1980")]
    reply = BRAIN.respond(request("auth", messages, state))
    assert (reply.text, reply.call) == ("Could you tell me your account number, please?", None)  # not reused
    assert state[STATE_KEY]["pending"]["args"] == {"date_of_birth": "1980-03-03"}


def test_a_refused_handoff_is_explained() -> None:
    reply = BRAIN.respond(request("auth", after("handoff_to_cards", {}, '{"handoff_to": "cards"}'), customer=ADA))
    assert reply.text == "Let me put you through to a colleague who can help. Please stay on the line."


def test_the_brain_is_a_chat_model() -> None:
    model: ChatModel = OfflineBrainChatModel()  # checked structurally by mypy
    assert model.name == "offline"


def test_no_caller_words_no_reply() -> None:
    assert BRAIN.respond(request("auth", [])).text == ""


async def test_every_reply_explains_itself() -> None:
    call = await verified(Call("banking"))
    call.history.append(ChatMessage(role="user", content="my card was stolen"))
    reply = BRAIN.respond(call.request())
    assert reply.call is not None
    assert reply.trace[0].startswith("routing: handoff_to_cards (0.90, 'my card was stolen'); handoff_to_cards=0.90")
    assert reply.trace[-1] == "call handoff_to_cards with ['reason', 'summary']"


async def test_the_same_call_twice_says_the_same_things() -> None:
    transcripts = []
    for _ in range(2):
        reset_bank()
        call = Call("banking")
        for said in ["Hi, I'd like to check my balance please", "4567", "March 4th 1980", "March 3rd 1980",
                     "my card was stolen", "yes", "no thanks", "bye"]:
            await call.say(said)
        transcripts.append(call.transcript)
    assert transcripts[0] == transcripts[1]


async def test_a_turn_takes_well_under_ten_milliseconds() -> None:
    call = await verified(Call("banking"))
    await call.say("my card was stolen")
    timings = []
    for _ in range(20):
        started = time.process_time()
        BRAIN.respond(call.request())
        timings.append(time.process_time() - started)
    assert sorted(timings)[len(timings) // 2] < 0.005


def test_question_built_from_a_parameter_description() -> None:
    spec = CATALOG.agent("banking", "auth").tool("verify_customer")
    assert spec is not None
    assert question_for(spec, "account_number") == "Could you tell me your account number, please?"
    fraud = CATALOG.agent("banking", "fraud").tool("report_fraud")
    assert fraud is not None
    assert question_for(fraud, "description") == "Could you tell me what happened?"
