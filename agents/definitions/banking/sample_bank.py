"""The sample bank behind the banking scenario: fixed demo customers and an in-memory back office.

Replace this module with calls to your own core-banking APIs; the tools in `tools.py` only use the
`SampleBank` methods below. The data is deterministic on purpose: demos, tests and the offline brain
all rely on "Ada Lovelace, account 4567, born 1980-03-03" behaving the same way every time, and
reference numbers come from counters rather than random ids so a test can assert on them.

Account numbers and dates of birth are secrets here: they are excluded from every `repr` so that
an accidental `log.info("%s", customer)` cannot leak them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

CardStatus = Literal["active", "blocked"]
BlockReason = Literal["lost", "stolen", "damaged", "suspected_fraud"]
LoanProduct = Literal["mortgage", "auto", "personal"]
ApplicationStatus = Literal["submitted", "under review", "approved", "declined"]


@dataclass
class Card:
    last4: str
    kind: Literal["debit", "credit"]
    status: CardStatus = "active"
    block_reason: BlockReason | None = None
    block_reference: str | None = None  # kept so a repeated block returns the same reference


@dataclass(frozen=True)
class Transaction:
    on: date
    description: str
    amount: Decimal  # negative for money leaving the account


@dataclass(frozen=True)
class LoanApplication:
    id: str
    product: LoanProduct
    amount: Decimal
    submitted_on: date
    status: ApplicationStatus


@dataclass
class Customer:
    id: str
    first_name: str
    last_name: str
    account_number: str = field(repr=False)
    date_of_birth: date = field(repr=False)
    balance: Decimal = Decimal("0.00")
    cards: list[Card] = field(default_factory=list)
    transactions: list[Transaction] = field(default_factory=list)  # newest first
    applications: list[LoanApplication] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def identity(self) -> dict[str, Any]:
        """What the call session keeps about a verified caller (`ctx.authenticate`)."""
        # No account number: the session, prompts and call records never need it, so they never hold it.
        return {"id": self.id, "name": self.name, "first_name": self.first_name, "last_name": self.last_name}


@dataclass(frozen=True)
class Replacement:
    reference: str
    customer_id: str
    card_last4: str
    expedited: bool
    business_days: int


@dataclass(frozen=True)
class FraudCase:
    case_id: str
    customer_id: str
    description: str
    amount: Decimal | None


@dataclass(frozen=True)
class LoanRate:
    product: LoanProduct
    label: str
    apr: Decimal  # percent
    term: str


# Indicative rates the loans agent may quote to anyone; a real bank would read them from a rates feed.
LOAN_RATES: tuple[LoanRate, ...] = (
    LoanRate("mortgage", "30-year fixed mortgage", Decimal("6.25"), "30 years"),
    LoanRate("auto", "new car loan", Decimal("5.49"), "up to 72 months"),
    LoanRate("personal", "personal loan", Decimal("9.99"), "1 to 5 years"),
)

# Delivery promises for replacement cards, in business days (what the caller is told).
STANDARD_DELIVERY_DAYS = 5
EXPEDITED_DELIVERY_DAYS = 2


def _sample_customers() -> list[Customer]:
    """Built fresh on every reset so no test can see another test's blocked cards."""
    return [
        Customer(
            id="CUST-001", first_name="Ada", last_name="Lovelace", account_number="4567",
            date_of_birth=date(1980, 3, 3), balance=Decimal("2345.67"),
            cards=[Card("1234", "debit")],
            transactions=[
                Transaction(date(2025, 11, 18), "Blue Bottle Coffee", Decimal("-4.75")),
                Transaction(date(2025, 11, 17), "Whole Foods Market", Decimal("-86.42")),
                Transaction(date(2025, 11, 15), "Salary from Analytical Engines Ltd", Decimal("2150.00")),
                Transaction(date(2025, 11, 14), "City Electric", Decimal("-112.30")),
                Transaction(date(2025, 11, 12), "Amazon", Decimal("-39.99")),
            ],
            applications=[LoanApplication("L-2001", "mortgage", Decimal("350000.00"), date(2025, 11, 10),
                                          "under review")],
        ),
        Customer(
            # Two active cards: "block my card" is ambiguous and the agent has to ask which one.
            id="CUST-002", first_name="Alan", last_name="Turing", account_number="7788",
            date_of_birth=date(1975, 6, 23), balance=Decimal("10512.09"),
            cards=[Card("5678", "debit"), Card("9900", "credit")],
            transactions=[
                Transaction(date(2025, 11, 19), "Bletchley Books", Decimal("-23.50")),
                Transaction(date(2025, 11, 16), "Rent to Manchester Lettings", Decimal("-1450.00")),
                Transaction(date(2025, 11, 15), "Salary from University of Manchester", Decimal("4200.00")),
            ],
            applications=[LoanApplication("L-2002", "auto", Decimal("28000.00"), date(2025, 10, 28), "approved")],
        ),
        Customer(
            # One blocked and one active card: "my card" means the only active one.
            id="CUST-003", first_name="Grace", last_name="Hopper", account_number="9012",
            date_of_birth=date(1969, 12, 9), balance=Decimal("874.20"),
            cards=[Card("4321", "debit", status="blocked", block_reason="lost", block_reference="CB-0999"),
                   Card("2468", "debit")],
            transactions=[
                Transaction(date(2025, 11, 18), "Navy Federal Transfer", Decimal("500.00")),
                Transaction(date(2025, 11, 13), "Harbor Pharmacy", Decimal("-18.25")),
            ],
            applications=[
                LoanApplication("L-1987", "personal", Decimal("5000.00"), date(2025, 3, 2), "declined"),
                LoanApplication("L-2003", "auto", Decimal("15000.00"), date(2025, 11, 5), "submitted"),
            ],
        ),
    ]


class SampleBank:
    """In-memory customers, cards, replacement orders and fraud cases."""

    def __init__(self, customers: list[Customer] | None = None) -> None:
        self._customers = {c.id: c for c in (customers if customers is not None else _sample_customers())}
        self._by_account = {c.account_number: c for c in self._customers.values()}
        self._counters: dict[str, Iterator[int]] = {}
        self.replacements: list[Replacement] = []
        self.fraud_cases: list[FraudCase] = []

    def _reference(self, prefix: str, start: int) -> str:
        counter = self._counters.setdefault(prefix, itertools.count(start))
        return f"{prefix}-{next(counter)}"

    # --- lookups -----------------------------------------------------------------------------
    def customer(self, customer_id: str) -> Customer | None:
        return self._customers.get(customer_id)

    def verify(self, account_number: str, date_of_birth: date) -> Customer | None:
        """The customer when both details match, else None (never says which one was wrong)."""
        customer = self._by_account.get(account_number)
        if customer is None or customer.date_of_birth != date_of_birth:
            return None
        return customer

    def loan_rates(self, product: LoanProduct | None = None) -> list[LoanRate]:
        return [r for r in LOAN_RATES if product is None or r.product == product]

    def replacement_for(self, customer: Customer, card: Card) -> Replacement | None:
        return next((r for r in self.replacements
                     if r.customer_id == customer.id and r.card_last4 == card.last4), None)

    # --- changes -----------------------------------------------------------------------------
    def block_card(self, card: Card, reason: BlockReason) -> str:
        """Block a card for good; blocking it again returns the first reference."""
        if card.status != "blocked" or card.block_reference is None:
            card.status, card.block_reason = "blocked", reason
            card.block_reference = self._reference("CB", 1001)
        return card.block_reference

    def order_replacement(self, customer: Customer, card: Card, *, expedited: bool) -> Replacement:
        existing = self.replacement_for(customer, card)
        if existing is not None:
            return existing
        order = Replacement(reference=self._reference("RC", 3001), customer_id=customer.id, card_last4=card.last4,
                            expedited=expedited,
                            business_days=EXPEDITED_DELIVERY_DAYS if expedited else STANDARD_DELIVERY_DAYS)
        self.replacements.append(order)
        return order

    def open_fraud_case(self, customer: Customer, description: str, amount: Decimal | None) -> FraudCase:
        case = FraudCase(case_id=self._reference("FR", 5001), customer_id=customer.id, description=description,
                         amount=amount)
        self.fraud_cases.append(case)
        return case


_bank = SampleBank()


def bank() -> SampleBank:
    """The process-wide sample bank (state lives as long as the process, like a tiny back office)."""
    return _bank


def reset_bank() -> SampleBank:
    """Start over with the sample data: unblocked cards, no orders, no cases. Tests call this."""
    global _bank  # noqa: PLW0603 - one process-wide demo bank is the point of this module
    _bank = SampleBank()
    return _bank
