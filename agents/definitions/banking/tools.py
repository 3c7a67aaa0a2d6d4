"""Tools of the banking scenario: verification, balances, cards, fraud and loans.

How to read this module (and how to write your own tools):
- Parameter types and `Field(description=...)` become the JSON schema the language model sees and
  the validation every call gets, so they are written for the model: what the value is and its form.
- `examples` are caller phrases; the offline brain matches them to pick a tool without an LLM.
- `reply` is what the offline brain says after the tool ran (`args`, `result`, `customer`, `agent`);
  `confirm` is asked before a tool with lasting effects runs (`args` only, the tool has not run yet).
- Expected failures raise `ToolError` with a sentence that can be read to the caller as is, because
  the offline brain speaks it (`tool_error` reply) and a model can act on it.
- Results carry spoken forms of money and dates (`*_text`) next to the raw values: templates stay
  free of number formatting, and speech reads "$2,345.67" and "November 18" well.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

from agents.arguments import digits_only, reference
from agents.definitions.banking.sample_bank import ApplicationStatus, BlockReason, Card, Customer, LoanProduct, bank
from agents.tools import ToolContext, ToolError, register_tool

log = logging.getLogger(__name__)

MAX_VERIFY_ATTEMPTS = 3
FAILURES_KEY = "banking.verify_failures"  # in ctx.state, so the count survives between turns


# The pattern sits before the validator so it shows in the JSON schema, while the validator runs first.
Last4 = Annotated[str, Field(pattern=r"^[0-9]{4}$"), BeforeValidator(digits_only)]
AccountNumber = Annotated[str, Field(pattern=r"^[0-9]{4,12}$"), BeforeValidator(digits_only)]
ApplicationId = Annotated[str, Field(pattern=r"^L-[0-9]{4}$"), BeforeValidator(reference("L"))]


def money(amount: Decimal) -> str:
    """ "$2,345.67", or "$2,150" for whole dollars: speech would otherwise add "and zero cents"."""
    value = abs(amount)
    return f"${value:,.0f}" if value == value.to_integral_value() else f"${value:,.2f}"


def day_text(day: date, *, year: bool = False) -> str:
    return f"{day:%B} {day.day}, {day.year}" if year else f"{day:%B} {day.day}"


def spaced(digits: str) -> str:
    """ "1234" as "1 2 3 4", so speech reads card digits one by one."""
    return " ".join(digits)


# --- results: what the model receives as JSON and what `reply` templates see as `result` -----------
class Verified(BaseModel):
    verified: bool = True
    name: str
    first_name: str


class Balance(BaseModel):
    account_type: str = "checking"
    balance: float
    balance_text: str


class TransactionOut(BaseModel):
    posted_on: date
    date_text: str
    description: str
    amount: float = Field(description="Negative when money left the account")
    amount_text: str
    direction: Literal["in", "out"]


class Transactions(BaseModel):
    count: int
    transactions: list[TransactionOut]


class CardOut(BaseModel):
    last4: str
    kind: Literal["debit", "credit"]
    status: Literal["active", "blocked"]


class CardBlocked(BaseModel):
    card: CardOut
    reason: BlockReason
    reference: str
    already_blocked: bool


class ReplacementOrdered(BaseModel):
    card: CardOut
    reference: str
    expedited: bool
    business_days: int
    already_ordered: bool


class FraudReported(BaseModel):
    case_id: str
    amount_text: str | None
    transferring: bool = True


class Rate(BaseModel):
    product: LoanProduct
    label: str
    apr: float = Field(description="Annual percentage rate, in percent")
    term: str


class Rates(BaseModel):
    rates: list[Rate]
    note: str = "Rates are indicative and depend on credit approval."


class ApplicationOut(BaseModel):
    application_id: str
    product: LoanProduct
    amount_text: str
    submitted_on: date
    submitted_text: str
    status: ApplicationStatus
    next_step: str


NEXT_STEPS: dict[ApplicationStatus, str] = {
    "submitted": "We have received it, and an underwriter will pick it up within two business days.",
    "under review": "An underwriter is reviewing it now. You will usually hear from us within five business days.",
    "approved": "Your loan documents are on their way to you by email.",
    "declined": "A letter explaining the decision is on its way, and a loan officer can talk it through with you.",
}


# --- helpers ------------------------------------------------------------------------------------
def _customer(ctx: ToolContext) -> Customer:
    # The registry already refused unverified callers; this guards against a customer from elsewhere.
    customer = bank().customer(str((ctx.customer or {}).get("id", "")))
    if customer is None:
        raise ToolError("I can't find your account details, so a colleague will need to help you with this.")
    return customer


def _card_out(card: Card) -> CardOut:
    return CardOut(last4=card.last4, kind=card.kind, status=card.status)


def _describe(cards: list[Card]) -> str:
    named = [f"a {c.kind} card ending in {spaced(c.last4)}" for c in cards]
    return named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]


def _choose_card(customer: Customer, last4: str | None, likely: list[Card], verb: str) -> Card:
    """The card the caller means: the one they named, else the only likely one, else ask which.

    With no likely card left (all blocked, say), a caller with a single card still means that one:
    the tool then reports it as already done instead of refusing.
    """
    if last4 is not None:
        card = next((c for c in customer.cards if c.last4 == last4), None)
        if card is None:
            raise ToolError(f"I can't find a card ending in {spaced(last4)}. "
                            f"The cards on your account are {_describe(customer.cards)}.")
        return card
    candidates = likely or customer.cards
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ToolError("There are no cards on your account.")
    raise ToolError(f"You have {len(candidates)} cards: {_describe(candidates)}. Which one should I {verb}?")


# --- auth -----------------------------------------------------------------------------------------
@register_tool(
    name="verify_customer",
    description="Verify the caller's identity with their account number and date of birth. Call it once "
                "you have both. Never say which of the two details was wrong.",
    examples=["my account number is 4567 and I was born on March 3rd 1980", "account 4567, date of birth 3/3/1980",
              "I'd like to verify my identity", "here are my details", "my date of birth is 1980-03-03",
              "the account number is four five six seven"],
    reply="Thank you, {{ result.first_name }}, you're verified. How can I help you today?",
    timeout=4.0,  # a caller waits in silence: fail fast and say so rather than hang
    sensitive=("account_number", "date_of_birth"),
)
async def verify_customer(
    ctx: ToolContext,
    account_number: Annotated[AccountNumber, Field(description="The caller's account number, digits only")],
    date_of_birth: Annotated[date, Field(description="The caller's date of birth as YYYY-MM-DD")],
) -> Verified:
    failures = int(ctx.state.get(FAILURES_KEY, 0))
    if failures >= MAX_VERIFY_ATTEMPTS:  # asked again after the lock: keep the caller moving to a person
        ctx.request_transfer("identity verification failed")
        raise ToolError("I can't verify you over the phone, so I'm transferring you to a colleague.")
    customer = bank().verify(account_number, date_of_birth)
    if customer is None:
        failures += 1
        ctx.state[FAILURES_KEY] = failures
        # Only the attempt number: the details themselves must never reach a log.
        log.info("caller verification failed", extra={"call_id": ctx.call_id, "attempt": failures})
        if failures >= MAX_VERIFY_ATTEMPTS:
            ctx.request_transfer("identity verification failed")
            raise ToolError("I'm sorry, I still can't verify those details, so I'm transferring you to a "
                            "colleague who can help. Please stay on the line.")
        left = MAX_VERIFY_ATTEMPTS - failures
        tries = "one more try" if left == 1 else f"{left} more tries"
        raise ToolError(f"Those details don't match our records. Please check your account number and date "
                        f"of birth. You have {tries}.")
    ctx.state.pop(FAILURES_KEY, None)
    ctx.authenticate(customer.identity())
    return Verified(name=customer.name, first_name=customer.first_name)


# --- account --------------------------------------------------------------------------------------
@register_tool(
    name="get_balance",
    description="The current balance of the verified caller's checking account.",
    examples=["what's my balance", "how much money do I have", "check my balance please",
              "how much is in my checking account", "what's my account balance", "am I overdrawn"],
    requires_auth=True,
    reply="Your {{ result.account_type }} balance is {{ result.balance_text }}.",
    timeout=4.0,
)
async def get_balance(ctx: ToolContext) -> Balance:
    customer = _customer(ctx)
    return Balance(balance=float(customer.balance), balance_text=money(customer.balance))


@register_tool(
    name="recent_transactions",
    description="The most recent transactions on the verified caller's account, newest first.",
    examples=["what are my recent transactions", "read me my last few transactions", "what did I spend recently",
              "show me my last 5 payments", "has my salary come in", "what was my last purchase"],
    requires_auth=True,
    reply="{% if result.count == 0 %}There are no recent transactions on your account."
          "{% else %}Here {{ 'is your last transaction' if result.count == 1 else 'are your last '"
          " ~ result.count ~ ' transactions' }}. "
          "{% for t in result.transactions %}{{ t.date_text }}, {{ t.amount_text }}"
          "{{ ' paid in' if t.direction == 'in' }}, {{ t.description }}. {% endfor %}{% endif %}",
    timeout=4.0,
)
async def recent_transactions(
    ctx: ToolContext,
    count: Annotated[int, Field(ge=1, le=10, description="How many transactions, 1 to 10")] = 3,
) -> Transactions:
    # Three by default: more than that is hard to follow when it is read out on the phone.
    items = _customer(ctx).transactions[:count]
    return Transactions(count=len(items), transactions=[
        TransactionOut(posted_on=t.on, date_text=day_text(t.on), description=t.description, amount=float(t.amount),
                       amount_text=money(t.amount), direction="in" if t.amount > 0 else "out")
        for t in items])


# --- cards ----------------------------------------------------------------------------------------
@register_tool(
    name="block_card",
    description="Block one of the verified caller's cards for good (lost, stolen, damaged or suspected "
                "fraud). Leave card_last4 out only when the caller has a single active card.",
    examples=["I lost my card", "my card was stolen", "block my card", "freeze my debit card",
              "please cancel my card ending in 1234", "someone took my wallet", "I can't find my credit card"],
    requires_auth=True,
    confirm="Just to confirm, you'd like me to block {% if args.card_last4 %}the card ending in "
            "{{ args.card_last4 | join(' ') }}{% else %}your card{% endif %}. Once blocked it can't be used "
            "again. Shall I go ahead?",
    reply="{% if result.already_blocked %}The card ending in {{ result.card.last4 | join(' ') }} was already "
          "blocked.{% else %}Done. The card ending in {{ result.card.last4 | join(' ') }} is now blocked.{% endif %}"
          " Your reference is {{ result.reference }}. Would you like me to order a replacement?",
    timeout=6.0,
)
async def block_card(
    ctx: ToolContext,
    card_last4: Annotated[Last4 | None, Field(description="Last four digits of the card; omit if the caller "
                                                          "has only one active card")] = None,
    reason: Annotated[BlockReason, Field(description="Why the card is being blocked")] = "stolen",
) -> CardBlocked:
    customer = _customer(ctx)
    card = _choose_card(customer, card_last4, [c for c in customer.cards if c.status == "active"], "block")
    already = card.status == "blocked"
    reference = bank().block_card(card, reason)
    return CardBlocked(card=_card_out(card), reason=card.block_reason or reason, reference=reference,
                       already_blocked=already)


@register_tool(
    name="replace_card",
    description="Order a replacement for one of the verified caller's cards, sent to the address on file. "
                "Leave card_last4 out when the caller means the card they just blocked or has only one card.",
    examples=["send me a new card", "I need a replacement card", "can you order a new debit card",
              "my card is damaged, can I get another", "replace my card please", "my card's chip stopped working"],
    requires_auth=True,
    confirm="Shall I order a replacement for {% if args.card_last4 %}the card ending in "
            "{{ args.card_last4 | join(' ') }}{% else %}your card{% endif %}{% if args.expedited %}, "
            "with express delivery{% endif %}, to your address on file?",
    reply="{% if result.already_ordered %}A replacement for the card ending in {{ result.card.last4 | join(' ') }} "
          "is already on its way.{% else %}I've ordered a replacement for the card ending in "
          "{{ result.card.last4 | join(' ') }}.{% endif %} It should arrive within {{ result.business_days }} "
          "business days. Your reference is {{ result.reference }}.",
    timeout=6.0,
)
async def replace_card(
    ctx: ToolContext,
    card_last4: Annotated[Last4 | None, Field(description="Last four digits of the card to replace")] = None,
    expedited: Annotated[bool, Field(description="Express delivery (two business days) instead of "
                                                 "standard (five)")] = False,
) -> ReplacementOrdered:
    customer, the_bank = _customer(ctx), bank()
    # "Send me a new one" right after a block means the blocked card, even if others are active;
    # never guess between working cards, a replacement the caller did not want is a nuisance.
    likely = [c for c in customer.cards if c.status == "blocked" and the_bank.replacement_for(customer, c) is None]
    card = _choose_card(customer, card_last4, likely, "replace")
    already = the_bank.replacement_for(customer, card) is not None
    order = the_bank.order_replacement(customer, card, expedited=expedited)
    return ReplacementOrdered(card=_card_out(card), reference=order.reference, expedited=order.expedited,
                              business_days=order.business_days, already_ordered=already)


# --- fraud ----------------------------------------------------------------------------------------
@register_tool(
    name="report_fraud",
    description="Open a fraud case for the verified caller and transfer them to the fraud team. Block any "
                "compromised card first.",
    examples=["there's a charge I don't recognise", "someone used my card without permission",
              "I think my account was hacked", "I want to report fraud", "I got a suspicious text from the bank",
              "there are transactions I didn't make"],
    requires_auth=True,
    reply="I've opened fraud case {{ result.case_id }}{% if result.amount_text %} for {{ result.amount_text }}"
          "{% endif %}. I'm connecting you to our fraud team now. Please stay on the line.",
    timeout=6.0,
)
async def report_fraud(
    ctx: ToolContext,
    description: Annotated[str, Field(min_length=3, max_length=500,
                                      description="What happened, in the caller's words, briefly")],
    amount: Annotated[Annotated[float, Field(gt=0, le=10_000_000)] | None,
                      Field(description="The disputed amount in dollars, if the caller knows it")] = None,
) -> FraudReported:
    value = Decimal(str(amount)).quantize(Decimal("0.01")) if amount is not None else None
    case = bank().open_fraud_case(_customer(ctx), description, value)
    # Fraud always ends with a person: specialists confirm the details and can reverse charges.
    ctx.request_transfer(f"fraud case {case.case_id}")
    return FraudReported(case_id=case.case_id, amount_text=money(value) if value is not None else None)


# --- loans ----------------------------------------------------------------------------------------
@register_tool(
    name="loan_rates",
    description="Current indicative loan rates (APR). Anyone may ask; no verification is needed.",
    examples=["what are your mortgage rates", "how much interest on a car loan", "what's the rate for a "
              "personal loan", "tell me your loan rates", "what APR do you offer", "are your rates good right now"],
    requires_auth=False,
    reply="{% for r in result.rates %}{{ 'Our' if loop.first else 'our' }} {{ r.label }} is currently {{ r.apr }} "
          "percent APR{{ ', ' if loop.revindex > 2 else (', and ' if loop.revindex == 2 else '.') }}{% endfor %}"
          " {{ result.note }}",
    timeout=4.0,
)
async def loan_rates(
    ctx: ToolContext,
    product: Annotated[LoanProduct | None, Field(description="Which loan; omit for all of them")] = None,
) -> Rates:
    return Rates(rates=[Rate(product=r.product, label=r.label, apr=float(r.apr), term=r.term)
                        for r in bank().loan_rates(product)])


@register_tool(
    name="application_status",
    description="The status of one of the verified caller's loan applications; without an id, their most "
                "recent one.",
    examples=["what's the status of my loan application", "has my mortgage been approved",
              "any news on my loan", "where is my application L-2001", "did my car loan go through",
              "check on my application please"],
    requires_auth=True,
    reply="Your {{ result.product }} loan application {{ result.application_id }}, for {{ result.amount_text }}, "
          "is {{ result.status }}. {{ result.next_step }}",
    timeout=4.0,
)
async def application_status(
    ctx: ToolContext,
    application_id: Annotated[ApplicationId | None, Field(description="The application id, like L-2001; omit "
                                                                      "for the most recent")] = None,
) -> ApplicationOut:
    customer = _customer(ctx)
    if application_id is None:
        if not customer.applications:
            raise ToolError("I can't find any loan applications on your account.")
        app = max(customer.applications, key=lambda a: a.submitted_on)
    else:
        # Another customer's id gets the same answer as a made-up one: it is not theirs to know about.
        found = next((a for a in customer.applications if a.id == application_id), None)
        if found is None:
            raise ToolError(f"I can't find application {application_id} on your account.")
        app = found
    return ApplicationOut(application_id=app.id, product=app.product, amount_text=money(app.amount),
                          submitted_on=app.submitted_on, submitted_text=day_text(app.submitted_on, year=True),
                          status=app.status, next_step=NEXT_STEPS[app.status])
