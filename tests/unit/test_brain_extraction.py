"""The offline brain's extractors: spoken numbers, dates, money, yes/no, names, choices, and
arguments read by each shipped tool's own schema (digits and words, as Whisper writes them)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

import agents.definitions.banking.tools as banking_tools
import agents.definitions.clinic.tools as clinic_tools
from agents.tools import ToolSpec, default_registry
from media_host.brain.arguments import Context, extract, params_of, validate
from media_host.brain.extraction import (
    find_dates,
    find_digit_runs,
    find_money,
    find_name,
    find_numbers,
    find_times,
    match_literal,
    ordinal_choice,
    today_from,
    yes_no,
)
from media_host.brain.options import choose_option, options_in
from media_host.brain.text import content_tokens, spoken_to_digits
from media_host.engines.base import ChatMessage

TODAY = date(2025, 12, 1)  # a Monday
ADA_BIRTHDAY = date(1980, 3, 3)


def tool(name: str, module: Any = banking_tools) -> ToolSpec:
    spec = default_registry.get(name, module.__name__)
    assert spec is not None
    return spec


def args_of(name: str, text: str, module: Any = banking_tools, **context: Any) -> dict[str, Any]:
    spec = tool(name, module)
    found = extract(spec, text, Context(today=TODAY, **context))
    params = {p.name: p for p in params_of(spec)}
    for key, value in found.items():  # whatever is extracted, the parameter's own validation accepts as is
        assert params[key].check(value) == value
    if all(p.name in found for p in params.values() if p.required):
        assert validate(spec, found)[0] is not None
    return found


# --- spoken numbers --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("said", "written"), [
    ("my account number is four five six seven", "my account number is 4 5 6 7"),
    ("forty five sixty seven", "45 67"),
    ("four, five, six, seven.", "4 5 6 7."),
    ("March third nineteen eighty", "march 3rd 19 80"),
    ("the third of March nineteen eighty", "the 3rd of march 19 80"),
    ("twelve dollars fifty", "12 dollars 50"),
    ("a hundred and twenty dollars", "120 dollars"),
    ("one thousand two hundred", "1200"),
    ("two thousand and five", "2005"),
    ("four oh one two", "4 0 1 2"),
    ("twenty-third of may", "23rd of may"),
    ("the second one please", "the 2nd one please"),  # "one" after an ordinal is a pronoun
    ("show me one transaction", "show me 1 transaction"),
    ("no one", "no one"),
    ("My count number is 4 5 6 7", "my account number is 4 5 6 7"),  # Whisper's mishearing of the piper voice
])
def test_spoken_numbers_become_digits(said: str, written: str) -> None:
    assert spoken_to_digits(said) == written


@pytest.mark.parametrize("said", [
    "My account number is 4567.", "My count number is 4 5 6 7", "four five six seven", "forty five sixty seven",
    "4-5-6-7", "my account is four, five, six, seven.",
])
def test_digit_strings_in_digits_and_words(said: str) -> None:
    assert [s.value for s in find_digit_runs(spoken_to_digits(said))] == ["4567"]


def test_the_words_last_four_are_not_digits_of_the_card() -> None:
    text = spoken_to_digits("the last four digits are one two three four")
    assert [s.value for s in find_digit_runs(text)] == ["1234"]


def test_a_sequence_of_digits_is_not_a_count() -> None:
    assert find_numbers(spoken_to_digits("seven seven eight eight")) == []
    assert [s.value for s in find_numbers(spoken_to_digits("read me five"))] == [Decimal(5)]


# --- dates -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("said", [
    "March third nineteen eighty", "March 3rd, 1980", "My date of birth is March 3rd, 1980.", "March 3, 1980",
    "3/3/1980", "03/03/80", "1980-03-03", "the third of March 1980", "the 3rd of March, 1980",
    "3rd March 1980", "Mar 3 1980", "I was born on the third of March nineteen eighty, and I'd like my balance",
])
def test_dates_in_every_form(said: str) -> None:
    found = find_dates(spoken_to_digits(said), TODAY, relative=False)
    assert [s.value for s in found] == [ADA_BIRTHDAY]


def test_numeric_dates_are_month_first_in_en_us() -> None:
    assert find_dates("3/4/1980", TODAY)[0].value == date(1980, 3, 4)
    assert find_dates("25/12/1980", TODAY)[0].value == date(1980, 12, 25)  # only one reading possible


@pytest.mark.parametrize(("said", "expected"), [
    ("tomorrow", date(2025, 12, 2)), ("the day after tomorrow", date(2025, 12, 3)),
    ("do you have anything on Tuesday", date(2025, 12, 2)), ("next Wednesday", date(2025, 12, 3)),
    ("Monday", date(2025, 12, 8)), ("December third", date(2025, 12, 3)), ("the 5th", date(2025, 12, 5)),
    ("January 10th", date(2026, 1, 10)),
])
def test_days_relative_to_today(said: str, expected: date) -> None:
    found = find_dates(spoken_to_digits(said), TODAY)
    assert [s.value for s in found] == [expected]
    assert find_dates(spoken_to_digits(said), TODAY, relative=False) == []  # never a date of birth


def test_today_comes_from_the_system_prompt() -> None:
    assert today_from("Today is Monday, December 1, 2025 (2025-12-01), in the morning.") == TODAY
    assert today_from("It is morning on Thursday, January 15, 2026.") == date(2026, 1, 15)
    assert today_from("no date here") is None


# --- money, times --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("said", "amount"), [
    ("$12.50", Decimal("12.50")), ("twelve dollars fifty", Decimal("12.50")),
    ("twelve dollars and fifty cents", Decimal("12.50")), ("$2,345.67", Decimal("2345.67")),
    ("about 1,200 dollars", Decimal(1200)), ("a hundred and twenty dollars", Decimal(120)),
    ("fifty cents", Decimal("0.50")), ("12.50 dollars", Decimal("12.50")),
])
def test_money(said: str, amount: Decimal) -> None:
    assert [s.value for s in find_money(spoken_to_digits(said))] == [amount]


@pytest.mark.parametrize(("said", "at"), [
    ("9:30", (9, 30)), ("at nine thirty", (9, 30)), ("2 pm", (14, 0)), ("nine thirty a.m.", (9, 30)),
    ("four o'clock", (4, 0)), ("at 2:00 PM", (14, 0)),
])
def test_times(said: str, at: tuple[int, int]) -> None:
    assert [s.value for s in find_times(spoken_to_digits(said))] == [at]


# --- yes / no, names, enumerated values, choices ------------------------------------------------------------
@pytest.mark.parametrize(("said", "answer"), [
    ("Yes, that is correct.", True), ("yeah go ahead", True), ("sure", True), ("please do", True),
    ("that's right", True), ("Yes please.", True), ("ok", True),
    ("no", False), ("No, that's all, thanks", False), ("nope", False), ("no thank you", False),
    ("not right now", False), ("never mind", False),
    ("I don't know", None), ("maybe", None), ("the weather is nice", None),
])
def test_yes_no(said: str, answer: bool | None) -> None:
    assert yes_no(said) is answer


@pytest.mark.parametrize(("said", "awaiting", "name"), [
    ("my name is Ada Lovelace", False, "Ada Lovelace"),
    ("The patient's name is Marie Curie", False, "Marie Curie"),
    ("This is Alan Turing calling", False, "Alan Turing"),
    ("ada lovelace", True, "Ada Lovelace"),
    ("It's Ada Lovelace.", True, "Ada Lovelace"),
    ("I'm Grace Hopper", True, "Grace Hopper"),
    ("Ada Lovelace, and my date of birth is", True, "Ada Lovelace"),
    ("I'm not feeling well", True, None),
    ("Ada Lovelace", False, None),  # only taken without an introduction when the name was asked for
])
def test_names(said: str, awaiting: bool, name: str | None) -> None:
    assert find_name(said, awaiting=awaiting) == name


@pytest.mark.parametrize(("said", "reason"), [
    ("my card was stolen", "stolen"), ("someone stole my wallet", "stolen"), ("I lost it", "lost"),
    ("I can't find my card", "lost"), ("it is broken", "damaged"), ("the chip stopped working", "damaged"),
    ("someone used my card without permission", "suspected_fraud"), ("I think it was hacked", "suspected_fraud"),
])
def test_literal_values_and_near_synonyms(said: str, reason: str) -> None:
    assert match_literal(said, ["lost", "stolen", "damaged", "suspected_fraud"]) == reason


def test_loan_products_by_synonym() -> None:
    products = ["mortgage", "auto", "personal"]
    assert match_literal("what are your mortgage rates", products) == "mortgage"
    assert match_literal("how much interest on a car loan", products) == "auto"
    assert match_literal("a personal loan", products) == "personal"
    assert match_literal("what are your rates", products) is None


SLOTS = [
    {"slot_id": "okafor-20251202-0930", "when_text": "Tuesday, December 2 at 9:30 AM", "doctor": "Dr. Samuel Okafor"},
    {"slot_id": "okafor-20251202-1100", "when_text": "Tuesday, December 2 at 11:00 AM", "doctor": "Dr. Samuel Okafor"},
    {"slot_id": "nguyen-20251203-1600", "when_text": "Wednesday, December 3 at 4:00 PM", "doctor": "Dr. Linh Nguyen"},
]


@pytest.mark.parametrize(("said", "index"), [
    ("the first one works", 0), ("the second one, please", 1), ("the last one", 2), ("the 11 o'clock one", 1),
    ("the one with Dr. Nguyen", 2), ("Wednesday", 2), ("Tuesday at nine thirty", 0), ("Tuesday", None),
])
def test_choosing_among_offered_options(said: str, index: int | None) -> None:
    picked = choose_option(said, SLOTS)
    assert picked == (SLOTS[index] if index is not None else None)


def test_ordinals_are_not_confused_with_dates() -> None:
    assert ordinal_choice(spoken_to_digits("March third")) is None
    assert ordinal_choice(spoken_to_digits("the third of March")) is None
    assert ordinal_choice(spoken_to_digits("the third one")) == 2


def test_options_come_from_the_most_recent_tool_result_in_order() -> None:
    content = '{"slots": [{"slot_id": "a"}, {"slot_id": "b"}], "next_available": {"slot_id": "c"}}'
    messages = [ChatMessage(role="tool", content='{"slots": [{"slot_id": "old"}]}', name="find_slots"),
                ChatMessage(role="user", content="anything later?"),
                ChatMessage(role="tool", content=content, name="find_slots")]
    found = options_in(messages, ["slot_id"])
    assert [o["slot_id"] for o in found["slot_id"]] == ["a", "b", "c"]


# --- arguments by each tool's schema ----------------------------------------------------------------------------
def test_parameters_are_classified_from_the_schema() -> None:
    kinds = {t: {p.name: p.kind for p in params_of(tool(t, m))} for t, m in [
        ("verify_customer", banking_tools), ("block_card", banking_tools), ("replace_card", banking_tools),
        ("report_fraud", banking_tools), ("recent_transactions", banking_tools), ("loan_rates", banking_tools),
        ("application_status", banking_tools), ("book_appointment", clinic_tools), ("find_slots", clinic_tools),
        ("nurse_advice", clinic_tools)]}
    assert kinds == {
        "verify_customer": {"account_number": "digits", "date_of_birth": "birth_date"},
        "block_card": {"card_last4": "digits", "reason": "literal"},
        "replace_card": {"card_last4": "digits", "expedited": "bool"},
        "report_fraud": {"description": "text", "amount": "money"},
        "recent_transactions": {"count": "integer"},
        "loan_rates": {"product": "literal"},
        "application_status": {"application_id": "pattern"},
        "book_appointment": {"slot_id": "pattern", "patient_name": "person_name", "date_of_birth": "birth_date"},
        "find_slots": {"day": "date", "doctor": "entity"},
        "nurse_advice": {"symptom": "text"},
    }


ADA = {"account_number": "4567", "date_of_birth": "1980-03-03"}


@pytest.mark.parametrize(("said", "expected"), [
    ("My account number is 4567.", {"account_number": "4567"}),
    ("My count number is 4 5 6 7", {"account_number": "4567"}),
    ("the account number is four five six seven", {"account_number": "4567"}),
    ("forty five sixty seven", {"account_number": "4567"}),
    ("My date of birth is March 3rd, 1980.", {"date_of_birth": "1980-03-03"}),
    ("my account number is 4567 and I was born on March 3rd 1980", ADA),
    ("account 4567, date of birth 3/3/1980", ADA),
    ("I was born 1980-03-03 and the account is 4567", ADA),
    ("my account number is four five six seven and I was born on March third nineteen eighty", ADA),
])
def test_verification_details_in_digits_and_words(said: str, expected: dict[str, str]) -> None:
    assert args_of("verify_customer", said) == expected


def test_a_year_alone_is_not_an_account_number_while_the_date_of_birth_is_awaited() -> None:
    assert args_of("verify_customer", "1980", awaiting="date_of_birth") == {}
    assert args_of("verify_customer", "4567", awaiting="account_number") == {"account_number": "4567"}


def test_numbers_said_about_something_else_are_not_verification_details() -> None:
    assert args_of("verify_customer", "please block my card ending in 1234", strict=True) == {}
    assert args_of("verify_customer", "my balance please, account 4567", strict=True) == {"account_number": "4567"}


@pytest.mark.parametrize(("name", "said", "expected"), [
    ("block_card", "my card ending in 1234 was stolen", {"card_last4": "1234", "reason": "stolen"}),
    ("block_card", "I lost my credit card, the last four digits are five six seven eight",
     {"card_last4": "5678", "reason": "lost"}),
    ("block_card", "my card is damaged", {"reason": "damaged"}),
    ("replace_card", "yes, with express delivery please", {"expedited": True}),
    ("replace_card", "no express, standard is fine", {"expedited": False}),
    ("recent_transactions", "read me my last five transactions", {"count": 5}),
    ("recent_transactions", "what did I spend last week", {}),
    ("loan_rates", "what are your mortgage rates", {"product": "mortgage"}),
    ("application_status", "where is my application L-2001", {"application_id": "L-2001"}),
    ("application_status", "where is my application l 2001", {"application_id": "L-2001"}),
])
def test_banking_arguments(name: str, said: str, expected: dict[str, Any]) -> None:
    assert args_of(name, said) == expected


def test_free_text_is_taken_when_it_says_more_than_the_request() -> None:
    assert args_of("report_fraud", "There is a charge of twelve dollars fifty I don't recognise", routed=True) == {
        "description": "There is a charge of twelve dollars fifty I don't recognise", "amount": 12.5}
    assert args_of("report_fraud", "I want to report fraud", routed=True) == {}  # ask what happened instead
    assert args_of("nurse_advice", "I have a fever", clinic_tools, routed=True) == {"symptom": "I have a fever"}
    assert args_of("nurse_advice", "I'd like to speak to a nurse", clinic_tools, routed=True) == {}
    assert args_of("nurse_advice", "a rash", clinic_tools, awaiting="symptom") == {"symptom": "a rash"}


@pytest.mark.parametrize(("name", "said", "context", "expected"), [
    ("find_slots", "do you have anything on Tuesday with Dr. Patel", {}, {"day": "2025-12-02", "doctor": "Patel"}),
    ("find_slots", "I'd like to see doctor Maya Patel tomorrow", {}, {"day": "2025-12-02", "doctor": "Maya Patel"}),
    ("book_appointment", "Ada Lovelace", {"awaiting": "patient_name"}, {"patient_name": "Ada Lovelace"}),
    ("book_appointment", "March 3rd, 1980", {"awaiting": "date_of_birth"}, {"date_of_birth": "1980-03-03"}),
    ("book_appointment", "the second one please", {"options": {"slot_id": SLOTS}, "routed": True},
     {"slot_id": "okafor-20251202-1100"}),
    # Answering another question never picks an option by accident (9 and 12 are in the first slot's text).
    ("book_appointment", "12/9/1969", {"options": {"slot_id": SLOTS}, "awaiting": "date_of_birth"},
     {"date_of_birth": "1969-12-09"}),
    ("cancel_appointment", "please cancel appointment A-1000", {}, {"reference": "A-1000"}),
    ("cancel_appointment", "cancel appointment a one thousand", {}, {"reference": "A-1000"}),
    ("cancel_appointment", "it's A 1001", {"awaiting": "reference"}, {"reference": "A-1001"}),
])
def test_clinic_arguments(name: str, said: str, context: dict[str, Any], expected: dict[str, Any]) -> None:
    assert args_of(name, said, clinic_tools, **context) == expected


def test_routing_tokens_fold_forms_and_synonyms() -> None:
    assert content_tokens("My card was stolen, please block it.") == ["card", "steal", "block"]
    assert content_tokens("I didn't make these payments") == ["not", "make", "transaction"]
    assert set(content_tokens("Transfer me to a real person")) == {"transfer", "real", "human"}
    assert "symptom" in content_tokens("I have a bad headache")
