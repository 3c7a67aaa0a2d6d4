"""Tools of the clinic scenario: finding, booking and cancelling appointments, and nurse triage.

The conventions are the banking scenario's (see agents/definitions/banking/tools.py): descriptions
and `Field` descriptions are written for the language model, `examples` for the offline brain,
`ToolError` messages can be read to the caller as they are, and results carry spoken text
(`when_text`) next to raw values. Nothing here needs a verified caller: a clinic identifies the
patient by name and date of birth at booking time instead.
"""

from __future__ import annotations

import itertools
from datetime import date
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field

from agents.arguments import reference
from agents.definitions.clinic.sample_clinic import DOCTORS, Slot, Urgency, clinic, triage
from agents.tools import ToolContext, ToolError, register_tool

MAX_OPTIONS = 3  # more than three times read out in a row is more than a caller can hold in mind


AppointmentReference = Annotated[str, Field(pattern=r"^A-[0-9]{4}$"), BeforeValidator(reference("A"))]
SlotId = Annotated[str, Field(pattern=r"^[a-z]+-[0-9]{8}-[0-9]{4}$")]


class SlotOut(BaseModel):
    slot_id: str = Field(description="Pass this to book_appointment")
    doctor: str
    specialty: str
    day: date
    time: str
    when_text: str


class SlotsFound(BaseModel):
    slots: list[SlotOut]
    next_available: SlotOut | None = Field(None, description="When nothing matched: the next opening after it")


class Booking(BaseModel):
    reference: str
    doctor: str
    when_text: str
    patient_name: str
    already_cancelled: bool = False


class NurseAdvice(BaseModel):
    topic: str
    urgency: Urgency
    guidance: str = Field(description="Read this to the caller as it is")
    call_emergency_services: bool
    suggest_booking: bool


def _slot_out(slot: Slot) -> SlotOut:
    return SlotOut(slot_id=slot.slot_id, doctor=slot.doctor.name, specialty=slot.doctor.specialty, day=slot.day,
                   time=f"{slot.start:%H:%M}", when_text=slot.when_text)


@register_tool(
    name="find_slots",
    description="Find open appointment slots, earliest first, optionally on one day and with one doctor. "
                f"Returns at most {MAX_OPTIONS}; offer them and book the one the caller picks.",
    examples=["I'd like to book an appointment", "when can I see a doctor", "do you have anything on Tuesday",
              "is Dr. Patel free this week", "I need to see someone tomorrow", "what's your next available slot",
              "can I make an appointment for my son"],
    reply="{% if result.slots %}I have {% for s in result.slots %}{{ s.when_text }} with {{ s.doctor }}"
          "{{ ', ' if loop.revindex > 2 else (', or ' if loop.revindex == 2 else '') }}{% endfor %}. "
          "Which would you like?{% elif result.next_available %}I have nothing then. The next opening is "
          "{{ result.next_available.when_text }} with {{ result.next_available.doctor }}. Would that work?"
          "{% else %}I'm sorry, there are no openings in the next two weeks.{% endif %}",
    timeout=4.0,
)
async def find_slots(
    ctx: ToolContext,
    day: Annotated[date | None, Field(description="The day wanted, YYYY-MM-DD; omit for the earliest")] = None,
    doctor: Annotated[str | None, Field(max_length=60, description="A doctor's name, e.g. 'Patel'; omit for "
                                                                   "any doctor")] = None,
) -> SlotsFound:
    the_clinic = clinic()
    who = the_clinic.doctor(doctor) if doctor else None
    if doctor and who is None:
        names = ", ".join(d.name for d in DOCTORS[:-1]) + f" and {DOCTORS[-1].name}"
        raise ToolError(f"We don't have a doctor called {doctor}. Our doctors are {names}.")
    if day is not None and day < the_clinic.today():
        raise ToolError("That date has already passed. Which day would you like?")
    if day is not None and day > the_clinic.last_bookable_day():
        raise ToolError("I can only book up to two weeks ahead. Would an earlier day work?")
    found = [_slot_out(s) for s in itertools.islice(the_clinic.open_slots(day, who), MAX_OPTIONS)]
    later = None
    if not found and day is not None:
        later = next((s for s in the_clinic.open_slots(doctor=who) if s.day > day), None)
    return SlotsFound(slots=found, next_available=_slot_out(later) if later else None)


@register_tool(
    name="book_appointment",
    description="Book an open slot from find_slots for the patient, identified by full name and date of birth.",
    examples=["book that one please", "the first one works", "yes, I'll take Tuesday at 9:30",
              "book me in with Dr. Okafor", "that time is perfect, book it", "let's do the Wednesday one"],
    confirm="Shall I book that appointment for {{ args.patient_name }}?",
    reply="You're booked with {{ result.doctor }} on {{ result.when_text }}. Your reference is "
          "{{ result.reference }}. Please arrive ten minutes early.",
    timeout=6.0,
    sensitive=("patient_name", "date_of_birth"),
)
async def book_appointment(
    ctx: ToolContext,
    slot_id: Annotated[SlotId, Field(description="The slot_id of the chosen slot, exactly as find_slots gave it")],
    patient_name: Annotated[str, Field(min_length=2, max_length=80, description="The patient's full name")],
    date_of_birth: Annotated[date, Field(description="The patient's date of birth, YYYY-MM-DD")],
) -> Booking:
    the_clinic = clinic()
    if not date(1900, 1, 1) <= date_of_birth <= the_clinic.today():
        raise ToolError("That date of birth doesn't look right. Could you say it again?")
    slot = the_clinic.slot(slot_id)
    if slot is None:
        raise ToolError("I can't find that time in our calendar. Let me look up the open times again.")
    if the_clinic.is_booked(slot):
        raise ToolError("I'm sorry, that time has just been taken. Shall I find another one?")
    appointment = the_clinic.book(slot, " ".join(patient_name.split()), date_of_birth)
    return Booking(reference=appointment.reference, doctor=slot.doctor.name, when_text=slot.when_text,
                   patient_name=appointment.patient_name)


@register_tool(
    name="cancel_appointment",
    description="Cancel an appointment by its reference (like A-1001), which the caller got when booking.",
    examples=["I need to cancel my appointment", "please cancel appointment A-1000", "I can't make it tomorrow",
              "cancel my booking", "I won't be able to come in", "can you remove my appointment"],
    confirm="Shall I cancel appointment {{ args.reference }}?",
    reply="{% if result.already_cancelled %}That appointment was already cancelled.{% else %}Your appointment "
          "with {{ result.doctor }} on {{ result.when_text }} is cancelled.{% endif %} Is there anything else "
          "I can help with?",
    timeout=6.0,
)
async def cancel_appointment(
    ctx: ToolContext,
    reference: Annotated[AppointmentReference, Field(description="The appointment reference, like A-1001")],
) -> Booking:
    the_clinic = clinic()
    existing = the_clinic.appointments.get(reference)
    if existing is None:
        raise ToolError(f"I can't find an appointment with reference {reference}. Could you check it for me?")
    already = existing.status == "cancelled"
    the_clinic.cancel(reference)
    return Booking(reference=existing.reference, doctor=existing.slot.doctor.name,
                   when_text=existing.slot.when_text, patient_name=existing.patient_name, already_cancelled=already)


@register_tool(
    name="nurse_advice",
    description="The clinic's approved first advice for a symptom: says whether it is an emergency, needs a "
                "visit today, an appointment, or self-care. Always use it; never give medical advice of your own.",
    examples=["I have a fever", "my chest hurts", "I've had a cough for a week", "my child has a rash",
              "I feel sick and keep throwing up", "I twisted my ankle", "I have a bad headache",
              "should I be worried about this pain"],
    reply="{{ result.guidance }}{% if result.suggest_booking %} Would you like me to pass you to reception to "
          "book an appointment?{% endif %}",
    timeout=4.0,
)
async def nurse_advice(
    ctx: ToolContext,
    symptom: Annotated[str, Field(min_length=2, max_length=300,
                                  description="The symptoms in the caller's own words")],
) -> NurseAdvice:
    advice = triage(symptom)
    return NurseAdvice(topic=advice.topic, urgency=advice.urgency, guidance=advice.guidance,
                       call_emergency_services=advice.urgency == "emergency",
                       suggest_booking=advice.suggest_booking)
