"""The clinic scenario's tools, run through the real registry against a clinic pinned to a fixed week."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import agents.definitions.clinic.tools as clinic_tools
from agents.definitions.clinic.sample_clinic import SampleClinic, clinic, reset_clinic
from agents.schema import AgentSpec, ScenarioSpec, merge_defaults
from agents.tools import ToolContext, ToolResult, default_registry
from tests.support.scenario_tools import ScenarioTools, render, say

TOOLS = ScenarioTools(clinic_tools)
call, tool = TOOLS.call, TOOLS.tool
SCENARIO_DIR = Path(clinic_tools.__file__).parent
MONDAY = date(2025, 12, 1)  # "today" for every test: slots run from Tuesday Dec 2 to Monday Dec 15
PATIENT = {"patient_name": "Ada Lovelace", "date_of_birth": "1980-03-03"}


@pytest.fixture(autouse=True)
def fresh_clinic() -> SampleClinic:
    return reset_clinic(today=MONDAY)


@pytest.fixture
def ctx() -> ToolContext:
    return ToolContext(call_id="c1", scenario="clinic", agent="reception")


def slot_ids(result: ToolResult) -> list[str]:
    assert result.ok, result.error
    return [s["slot_id"] for s in result.data["slots"]]


def error_of(result: ToolResult) -> tuple[str, str]:
    assert result.error is not None
    return result.error.code, result.error.message


# --- finding slots ----------------------------------------------------------------------------------
async def test_earliest_slots_skip_the_sample_booking(ctx: ToolContext) -> None:
    result = await call(ctx, "find_slots")
    # Okafor's 9:30 on Tuesday is the sample booking A-1000, so the three earliest open ones follow it.
    assert slot_ids(result) == ["okafor-20251202-1100", "okafor-20251202-1530", "nguyen-20251202-1600"]
    first = result.data["slots"][0]
    assert first == {"slot_id": "okafor-20251202-1100", "doctor": "Dr. Samuel Okafor",
                     "specialty": "family medicine", "day": "2025-12-02", "time": "11:00",
                     "when_text": "Tuesday, December 2 at 11:00 AM"}
    assert result.data["next_available"] is None


@pytest.mark.parametrize("name", ["Patel", "dr patel", "Dr. Maya Patel", "doctor maya patel"])
async def test_slots_for_one_doctor(ctx: ToolContext, name: str) -> None:
    result = await call(ctx, "find_slots", doctor=name)
    assert slot_ids(result) == ["patel-20251203-0900", "patel-20251203-1030", "patel-20251203-1400"]


async def test_a_closed_day_offers_the_next_opening(ctx: ToolContext) -> None:
    saturday = await call(ctx, "find_slots", day="2025-12-06")
    assert slot_ids(saturday) == []
    assert saturday.data["next_available"]["slot_id"] == "patel-20251208-0900"
    today = await call(ctx, "find_slots", day=MONDAY.isoformat())
    assert slot_ids(today) == []  # same-day slots are never offered
    assert today.data["next_available"]["slot_id"] == "okafor-20251202-1100"


@pytest.mark.parametrize(("args", "words"), [
    ({"day": "2025-11-28"}, "already passed"),
    ({"day": "2025-12-16"}, "two weeks ahead"),
    ({"doctor": "Smith"}, "Our doctors are Dr. Maya Patel, Dr. Samuel Okafor and Dr. Linh Nguyen."),
])
async def test_impossible_searches_say_why(ctx: ToolContext, args: dict[str, str], words: str) -> None:
    code, message = error_of(await call(ctx, "find_slots", **args))
    assert code == "tool_error"
    assert words in message


# --- booking and cancelling ---------------------------------------------------------------------------
async def test_book_an_open_slot(ctx: ToolContext) -> None:
    result = await call(ctx, "book_appointment", slot_id="patel-20251203-0900", **PATIENT)
    assert result.ok
    assert result.data == {"reference": "A-1001", "doctor": "Dr. Maya Patel",
                           "when_text": "Wednesday, December 3 at 9:00 AM", "patient_name": "Ada Lovelace",
                           "already_cancelled": False}
    assert clinic().appointments["A-1001"].date_of_birth == date(1980, 3, 3)
    assert "patel-20251203-0900" not in slot_ids(await call(ctx, "find_slots", day="2025-12-03"))

    taken = await call(ctx, "book_appointment", slot_id="patel-20251203-0900", patient_name="Alan Turing",
                       date_of_birth="1975-06-23")
    assert error_of(taken) == ("tool_error", "I'm sorry, that time has just been taken. Shall I find another one?")


@pytest.mark.parametrize(("slot_id", "dob", "code"), [
    ("patel-20251202-0900", "1980-03-03", "tool_error"),  # Dr. Patel does not work on Tuesdays
    ("patel-20251203-0915", "1980-03-03", "tool_error"),  # not one of her times
    ("patel-20251124-0900", "1980-03-03", "tool_error"),  # in the past
    ("patel-20251303-0900", "1980-03-03", "tool_error"),  # no 13th month
    ("jones-20251203-0900", "1980-03-03", "tool_error"),  # no such doctor
    ("Wednesday at nine", "1980-03-03", "invalid_arguments"),
    ("patel-20251203-0900", "2030-01-01", "tool_error"),  # born in the future
    ("patel-20251203-0900", "last spring", "invalid_arguments"),
])
async def test_bookings_that_cannot_happen(ctx: ToolContext, slot_id: str, dob: str, code: str) -> None:
    result = await call(ctx, "book_appointment", slot_id=slot_id, patient_name="Ada Lovelace", date_of_birth=dob)
    assert error_of(result)[0] == code
    assert list(clinic().appointments) == ["A-1000"]


async def test_cancel_frees_the_slot(ctx: ToolContext) -> None:
    assert "okafor-20251202-0930" not in slot_ids(await call(ctx, "find_slots", day="2025-12-02"))
    result = await call(ctx, "cancel_appointment", reference="a 1000")
    assert result.ok
    assert result.data == {"reference": "A-1000", "doctor": "Dr. Samuel Okafor",
                           "when_text": "Tuesday, December 2 at 9:30 AM", "patient_name": "Marie Curie",
                           "already_cancelled": False}
    assert clinic().appointments["A-1000"].status == "cancelled"
    assert slot_ids(await call(ctx, "find_slots", day="2025-12-02"))[0] == "okafor-20251202-0930"

    again = await call(ctx, "cancel_appointment", reference="A-1000")
    assert again.data["already_cancelled"] is True
    unknown = await call(ctx, "cancel_appointment", reference="A-4242")
    assert error_of(unknown)[0] == "tool_error"
    malformed = await call(ctx, "cancel_appointment", reference="tomorrow's one")
    assert error_of(malformed)[0] == "invalid_arguments"


async def test_a_booking_can_be_cancelled_and_rebooked(ctx: ToolContext) -> None:
    booked = await call(ctx, "book_appointment", slot_id="nguyen-20251205-1600", **PATIENT)
    await call(ctx, "cancel_appointment", reference=booked.data["reference"])
    rebooked = await call(ctx, "book_appointment", slot_id="nguyen-20251205-1600", **PATIENT)
    assert rebooked.ok
    assert rebooked.data["reference"] == "A-1002"


# --- nurse ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("symptom", [
    "I have crushing chest pain",
    "I can\u2019t breathe properly",  # curly apostrophe, as speech-to-text writes it
    "my dad's face is drooping and his speech is slurred",
    "she passed out in the kitchen",
    "my throat is closing up after a bee sting",
    "I've been thinking about self-harm",
    "I have a cough and chest pain",  # a red flag wins over the everyday symptom next to it
    "my chest hurts",  # nurse_advice's own example phrase
    "I have a pain in my chest",
    "my chest is hurting really bad",
])
async def test_red_flags_send_callers_to_emergency_services(ctx: ToolContext, symptom: str) -> None:
    result = await call(ctx, "nurse_advice", symptom=symptom)
    assert result.ok
    assert result.data["urgency"] == "emergency"
    assert result.data["call_emergency_services"] is True
    assert result.data["suggest_booking"] is False
    assert "9 1 1" in result.data["guidance"]


@pytest.mark.parametrize(("symptom", "topic", "urgency", "booking"), [
    ("I've had a fever since yesterday", "fever", "routine", True),
    ("just a runny nose and sneezing", "cold or cough", "self_care", False),
    ("it burns when I pee", "urinary symptoms", "same_day", True),
    ("I touched poison ivy and now I have an itchy rash", "rash", "routine", True),
    ("my toe feels funny", "other", "routine", True),
])
async def test_everyday_symptoms_get_fixed_advice(ctx: ToolContext, symptom: str, topic: str, urgency: str,
                                                  booking: bool) -> None:
    result = await call(ctx, "nurse_advice", symptom=symptom)
    assert (result.data["topic"], result.data["urgency"]) == (topic, urgency)
    assert result.data["suggest_booking"] is booking
    assert result.data["call_emergency_services"] is False


async def test_no_verification_is_needed_anywhere(ctx: ToolContext) -> None:
    clinic_tool_names = sorted(TOOLS.names())
    assert sorted(clinic_tool_names) == ["book_appointment", "cancel_appointment", "find_slots", "nurse_advice"]
    assert not any(tool(n).requires_auth for n in clinic_tool_names)
    assert ctx.customer is None
    assert (await call(ctx, "nurse_advice", symptom="headache")).ok


# --- templates --------------------------------------------------------------------------------------
async def test_every_reply_template_renders_with_real_results(ctx: ToolContext) -> None:
    spoken: dict[str, list[str]] = {}

    async def run(name: str, **args: Any) -> None:
        result = await call(ctx, name, **args)
        assert result.ok, (name, result.error)
        spoken.setdefault(name, []).append(say(tool(name).reply, args=result.arguments, result=result.data,
                                               customer=None, agent=ctx.agent))

    await run("find_slots")
    await run("find_slots", day="2025-12-06")
    await run("find_slots", day="2025-12-15", doctor="Okafor")  # nothing that day and nothing after it
    await run("book_appointment", slot_id="okafor-20251204-1100", **PATIENT)
    await run("cancel_appointment", reference="A-1001")
    await run("cancel_appointment", reference="A-1001")
    await run("nurse_advice", symptom="chest pain")
    await run("nurse_advice", symptom="a sore throat and a fever")

    assert set(spoken) == {"find_slots", "book_appointment", "cancel_appointment", "nurse_advice"}
    assert spoken["find_slots"] == [
        "I have Tuesday, December 2 at 11:00 AM with Dr. Samuel Okafor, Tuesday, December 2 at 3:30 PM with "
        "Dr. Samuel Okafor, or Tuesday, December 2 at 4:00 PM with Dr. Linh Nguyen. Which would you like?",
        "I have nothing then. The next opening is Monday, December 8 at 9:00 AM with Dr. Maya Patel. "
        "Would that work?",
        "I'm sorry, there are no openings in the next two weeks.",
    ]
    assert spoken["book_appointment"] == ["You're booked with Dr. Samuel Okafor on Thursday, December 4 at "
                                          "11:00 AM. Your reference is A-1001. Please arrive ten minutes early."]
    assert spoken["cancel_appointment"][0].startswith("Your appointment with Dr. Samuel Okafor on Thursday")
    assert spoken["cancel_appointment"][1].startswith("That appointment was already cancelled.")
    assert spoken["nurse_advice"][0].endswith("call 9 1 1 now. Don't drive yourself.")
    assert spoken["nurse_advice"][1].endswith("Would you like me to pass you to reception to book an appointment?")


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("book_appointment", {"slot_id": "patel-20251203-0900", **PATIENT}, "Shall I book that appointment for Ada "
                                                                        "Lovelace?"),
    ("cancel_appointment", {"reference": "a1000"}, "Shall I cancel appointment A-1000?"),
])
def test_confirm_templates_use_only_the_arguments(name: str, raw: dict[str, Any], expected: str) -> None:
    spec = tool(name)
    assert say(spec.confirm, args=spec.args_model.model_validate(raw).model_dump()) == expected


# --- definitions ------------------------------------------------------------------------------------
def test_definitions_match_the_schema_and_render() -> None:
    raw = yaml.safe_load((SCENARIO_DIR / "scenario.yaml").read_text(encoding="utf-8"))
    scenario = ScenarioSpec.model_validate(raw)
    assert (scenario.entry_agent, scenario.phone_numbers) == ("reception", ["+18005550200"])
    agents = {p.stem: AgentSpec.model_validate(merge_defaults(scenario.defaults, yaml.safe_load(p.read_text())))
              for p in sorted((SCENARIO_DIR / "agents").glob("*.yaml"))}
    assert set(agents) == {"reception", "nurse"}
    assert (agents["reception"].handoffs, agents["nurse"].handoffs) == (["nurse"], ["reception"])
    handoff = {"from_agent": "reception", "reason": "symptoms", "summary": "The caller has had a fever for a day."}
    for spec in agents.values():
        assert "transfer_to_human" in spec.tools
        assert all(t in default_registry for t in spec.tools if t != "transfer_to_human"), spec.name
        assert 5 <= len(spec.handoff_examples) <= 10
        assert spec.prompt is not None
        source = (SCENARIO_DIR / spec.prompt).read_text(encoding="utf-8")
        for why in (None, handoff):
            variables = {"agent": spec.name, "scenario": "clinic", "caller": None, "customer": None, "handoff": why,
                         "locale": spec.locale, "now": datetime(2025, 12, 1, 9, 30, tzinfo=UTC),
                         "time_of_day": "morning"}
            prompt = render(source, **variables)
            assert "Today is Monday, December 1, 2025" in prompt
            assert ("fever for a day" in prompt) == (why is not None)
            assert say(spec.greeting, **variables)
