"""The sample clinic behind the clinic scenario: doctors, a rolling two-week calendar, and triage advice.

Replace this module with your practice-management system; the tools in `tools.py` only use what is
defined here. Slots are computed from each doctor's weekly schedule relative to "today", which is a
clock the clinic is given: live calls use the real date, tests pin it (`reset_clinic(today=...)`) so
nothing depends on the day the tests run. A slot id names its doctor, day and time
("patel-20251203-0900"), so any id can be checked without storing a calendar.

The triage table is deliberately conservative and fixed: a phone agent must never improvise medical
advice, and over-triage (sending someone to emergency care who did not need it) is the safe failure.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import Literal

BOOKING_HORIZON_DAYS = 14  # how far ahead callers may book; keeps option lists short and current
Urgency = Literal["emergency", "same_day", "routine", "self_care"]


@dataclass(frozen=True)
class Doctor:
    key: str
    name: str
    specialty: str
    weekdays: tuple[int, ...]  # Monday is 0
    times: tuple[time, ...]


DOCTORS: tuple[Doctor, ...] = (
    Doctor("patel", "Dr. Maya Patel", "family medicine", (0, 2, 4), (time(9), time(10, 30), time(14))),
    Doctor("okafor", "Dr. Samuel Okafor", "family medicine", (1, 3), (time(9, 30), time(11), time(15, 30))),
    Doctor("nguyen", "Dr. Linh Nguyen", "pediatrics", (0, 1, 2, 3, 4), (time(16),)),
)


def spoken_time(at: time) -> str:
    """ "9:30 AM": portable (no %-I) and read naturally by speech engines."""
    return f"{at.hour % 12 or 12}:{at.minute:02d} {'AM' if at.hour < 12 else 'PM'}"


@dataclass(frozen=True)
class Slot:
    doctor: Doctor
    day: date
    start: time

    @property
    def slot_id(self) -> str:
        return f"{self.doctor.key}-{self.day:%Y%m%d}-{self.start:%H%M}"

    @property
    def when_text(self) -> str:
        return f"{self.day:%A}, {self.day:%B} {self.day.day} at {spoken_time(self.start)}"


@dataclass
class Appointment:
    reference: str
    slot: Slot
    patient_name: str
    date_of_birth: date = field(repr=False)  # health data: kept out of reprs and logs
    status: Literal["booked", "cancelled"] = "booked"


class SampleClinic:
    """Open slots, bookings and cancellations, in memory."""

    def __init__(self, today: Callable[[], date] = date.today) -> None:
        self.today = today
        self.appointments: dict[str, Appointment] = {}
        self._counter = itertools.count(1000)
        # One existing booking, so "cancel my appointment A-1000" works in a fresh demo.
        first = next(self.open_slots(doctor=DOCTORS[1]), None)
        if first is not None:
            self.book(first, "Marie Curie", date(1967, 11, 7))

    def doctor(self, name: str) -> Doctor | None:
        """Match "Patel", "Dr Patel", "doctor maya patel" or "Maya Patel" to a doctor."""
        wanted = re.sub(r"^(dr\.?|doctor)\s+", "", name.strip().lower())
        return next((d for d in DOCTORS if wanted in (d.key, d.name.lower().removeprefix("dr. "))), None)

    def slot(self, slot_id: str) -> Slot | None:
        """The slot an id names, if the doctor works then and it is inside the booking window."""
        match = re.fullmatch(r"([a-z]+)-([0-9]{8})-([0-9]{4})", slot_id)
        if match is None:
            return None
        key, ymd, hhmm = match.groups()
        doctor = next((d for d in DOCTORS if d.key == key), None)
        try:
            day = date(int(ymd[:4]), int(ymd[4:6]), int(ymd[6:]))
            start = time(int(hhmm[:2]), int(hhmm[2:]))
        except ValueError:  # "20251301": a well-formed id for a day that does not exist
            return None
        if doctor is None:
            return None
        slot = Slot(doctor, day, start)
        return slot if slot in self._schedule(doctor) else None

    def _schedule(self, doctor: Doctor) -> list[Slot]:
        # From tomorrow: a same-day slot may already be over by the time the caller arrives.
        today = self.today()
        days = (today + timedelta(days=n) for n in range(1, BOOKING_HORIZON_DAYS + 1))
        return [Slot(doctor, d, t) for d in days if d.weekday() in doctor.weekdays for t in doctor.times]

    def is_booked(self, slot: Slot) -> bool:
        return any(a.slot == slot and a.status == "booked" for a in self.appointments.values())

    def open_slots(self, day: date | None = None, doctor: Doctor | None = None) -> Iterator[Slot]:
        """Open slots, earliest first, optionally from one day and one doctor."""
        doctors = [doctor] if doctor else DOCTORS
        slots = sorted((s for d in doctors for s in self._schedule(d)), key=lambda s: (s.day, s.start))
        return (s for s in slots if (day is None or s.day == day) and not self.is_booked(s))

    def last_bookable_day(self) -> date:
        return self.today() + timedelta(days=BOOKING_HORIZON_DAYS)

    def book(self, slot: Slot, patient_name: str, date_of_birth: date) -> Appointment:
        """Book an open slot; the caller of this method checks `is_booked` first."""
        appointment = Appointment(f"A-{next(self._counter)}", slot, patient_name, date_of_birth)
        self.appointments[appointment.reference] = appointment
        return appointment

    def cancel(self, reference: str) -> Appointment | None:
        appointment = self.appointments.get(reference)
        if appointment is not None:
            appointment.status = "cancelled"
        return appointment


# --- triage -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Advice:
    topic: str
    urgency: Urgency
    guidance: str
    keywords: tuple[str, ...] = ()

    @property
    def suggest_booking(self) -> bool:
        return self.urgency in ("same_day", "routine")


EMERGENCY = "Please hang up and call 9 1 1 now."
# Red flags come first and win: "chest pain and a cough" is a chest-pain call.
TRIAGE: tuple[Advice, ...] = (
    Advice("chest pain", "emergency", f"Chest pain can be a sign of a heart attack. {EMERGENCY} "
           "Don't drive yourself.", ("chest pain", "chest pressure", "chest tightness", "tight chest",
                                     "heart attack", "chest hurts", "chest is hurting", "chest hurting",
                                     "pain in my chest", "pain in the chest", "chest ache", "chest aches")),
    Advice("breathing difficulty", "emergency", f"Trouble breathing needs help right away. {EMERGENCY}",
           ("can't breathe", "cannot breathe", "difficulty breathing", "trouble breathing", "short of breath",
            "shortness of breath", "struggling to breathe", "choking", "lips are blue", "lips turning blue")),
    Advice("stroke signs", "emergency", f"Those can be signs of a stroke. {EMERGENCY} Note the time the "
           "symptoms started.", ("stroke", "face drooping", "face is drooping", "slurred",
                                 "weakness on one side", "numb on one side", "numbness on one side")),
    Advice("severe bleeding", "emergency", f"Press firmly on the wound with a clean cloth. {EMERGENCY}",
           ("severe bleeding", "bleeding heavily", "won't stop bleeding", "lot of blood")),
    Advice("loss of consciousness", "emergency", f"{EMERGENCY} Stay with the person until help arrives.",
           ("unconscious", "passed out", "fainted", "unresponsive", "seizure", "collapsed")),
    Advice("severe allergic reaction", "emergency", "Use an epinephrine auto-injector if you have one. "
           f"{EMERGENCY}", ("anaphylaxis", "throat swelling", "throat is closing", "swollen tongue",
                            "severe allergic")),
    Advice("mental health crisis", "emergency", "You don't have to go through this alone. Please call or text "
           "9 8 8, the Suicide and Crisis Lifeline, any time, or call 9 1 1 if you are in immediate danger.",
           ("suicidal", "suicide", "kill myself", "end my life", "ending my life", "want to die", "self harm",
            "hurt myself")),
    Advice("poisoning or overdose", "emergency", "Call Poison Control at 1 800 222 1222 now, or 9 1 1 if the "
           "person is unconscious or struggling to breathe.",
           ("overdose", "overdosed", "poisoning", "poisoned", "took too many pills", "swallowed")),
    Advice("worst headache", "emergency", f"A sudden, very severe headache needs checking right away. {EMERGENCY}",
           ("worst headache", "thunderclap")),
    Advice("fever", "routine", "Rest, drink plenty of fluids, and you can take a fever reducer as directed on "
           "the package. If the fever is over 103 degrees, lasts more than three days, or is in a baby under "
           "three months, please see a doctor today.", ("fever", "temperature", "chills")),
    Advice("cold or cough", "self_care", "Rest, fluids and warm drinks usually help. If a cough lasts more than "
           "three weeks, or you cough up blood, please book an appointment.",
           ("cough", "cold", "sore throat", "runny nose", "congestion", "sneezing", "flu")),
    Advice("stomach upset", "routine", "Sip water or a rehydration drink often, in small amounts. If you can't "
           "keep fluids down for a day, see blood, or have severe belly pain, please get seen today.",
           ("vomiting", "throwing up", "diarrhea", "nausea", "stomach", "belly")),
    Advice("urinary symptoms", "same_day", "That sounds like it may be a urine infection, which usually needs "
           "a doctor's check the same day. Drink plenty of water in the meantime.",
           ("burning when i pee", "burns when i pee", "urinary", "uti", "bladder infection")),
    Advice("rash", "routine", "Keep the area clean and avoid scratching. If the rash spreads fast, blisters, or "
           "comes with fever or a swollen face, please get seen today.", ("rash", "hives", "itchy", "itching")),
    Advice("headache", "self_care", "Rest in a quiet room and drink water. If headaches keep coming back or "
           "get worse, please book an appointment.", ("headache", "migraine")),
    Advice("aches and sprains", "self_care", "Rest the area, use a cold pack for twenty minutes at a time, and "
           "keep it raised. If you can't put weight on it or it doesn't improve in a few days, book an "
           "appointment.", ("back pain", "sprain", "sprained", "twisted", "joint pain", "ankle", "knee")),
    Advice("ear pain", "routine", "A warm cloth over the ear can ease the pain. A doctor should look at it if "
           "it lasts more than two days or comes with a fever.", ("ear", "earache")),
)
GENERAL_ADVICE = Advice("other", "routine", "I can't assess that safely over the phone, so I'd suggest an "
                        "appointment with one of our doctors. If it gets worse or you feel very unwell, call 9 1 1.")


def triage(symptom: str) -> Advice:
    """The first matching entry of TRIAGE (whole words only), or general advice."""
    # Speech-to-text writes curly apostrophes and "self-harm" as often as "can't" and "self harm".
    text = " ".join(symptom.lower().replace("\u2019", "'").replace("-", " ").split())
    for advice in TRIAGE:
        if any(re.search(rf"\b{re.escape(k)}\b", text) for k in advice.keywords):
            return advice
    return GENERAL_ADVICE


_clinic: SampleClinic | None = None


def clinic() -> SampleClinic:
    """The process-wide sample clinic, created on first use with the real date as "today"."""
    global _clinic  # noqa: PLW0603 - one process-wide demo clinic is the point of this module
    if _clinic is None:
        _clinic = SampleClinic()
    return _clinic


def reset_clinic(today: date | None = None) -> SampleClinic:
    """Start over with no bookings but the sample one; pass `today` to pin the calendar (tests do)."""
    global _clinic  # noqa: PLW0603
    _clinic = SampleClinic((lambda: today) if today is not None else date.today)
    return _clinic
