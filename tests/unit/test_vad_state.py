"""VadStateMachine: speech probabilities per 32 ms window -> start/end events (no model, no audio)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from media_host.engines.base import VadEvent
from media_host.engines.embedded.vad import WINDOW_MS, VadStateMachine

HI, MID, LO = 0.9, 0.4, 0.1  # speech; between the two thresholds; silence


def run(machine: VadStateMachine, probabilities: Iterable[float], start_window: int = 0) -> list[VadEvent]:
    """Feed windows starting at window index `start_window`; the events, in order."""
    events = []
    for i, p in enumerate(probabilities, start=start_window):
        event = machine.step(p, i * WINDOW_MS, WINDOW_MS)
        if event is not None:
            events.append(event)
    return events


def speaking(machine: VadStateMachine) -> bool:
    return machine.in_speech  # a call, so mypy does not narrow the property across reset()


def windows(ms: float) -> int:
    return round(ms / WINDOW_MS)


def test_silence_fires_nothing() -> None:
    machine = VadStateMachine()
    assert run(machine, [LO] * 200) == []
    assert not machine.in_speech


def test_start_after_min_speech_at_the_onset() -> None:
    machine = VadStateMachine(min_speech_ms=64)
    probabilities = [LO] * 10 + [HI] * 3
    events = []
    for i, p in enumerate(probabilities):
        event = machine.step(p, i * WINDOW_MS)
        if event:
            events.append((i, event))
    # Detected at the end of the second speech window (64 ms), dated at the first one's start.
    assert events == [(11, VadEvent("start", 10 * WINDOW_MS))]
    assert machine.in_speech


def test_short_blip_does_not_start() -> None:
    machine = VadStateMachine(min_speech_ms=64)
    assert run(machine, [LO] * 5 + [HI] + [LO] * 5 + [HI] + [LO] * 20) == []
    assert not machine.in_speech


def test_onset_count_restarts_below_threshold() -> None:
    # A window between the thresholds breaks a candidate onset: starts need >= threshold throughout.
    machine = VadStateMachine(min_speech_ms=96)
    events = run(machine, [HI, HI, MID, HI, HI, HI, LO])
    assert events == [VadEvent("start", 3 * WINDOW_MS)]


def test_exactly_min_speech_starts() -> None:
    machine = VadStateMachine(min_speech_ms=64, threshold=0.5)
    assert run(machine, [0.5, 0.5]) == [VadEvent("start", 0.0)]


def test_end_after_silence_window_at_last_voiced_end() -> None:
    machine = VadStateMachine(min_speech_ms=64, end_of_speech_ms=500)
    speech = [HI] * 30  # windows 5..34
    events = run(machine, [LO] * 5 + speech + [LO] * 40)
    voiced_end = 35 * WINDOW_MS
    assert events == [VadEvent("start", 5 * WINDOW_MS), VadEvent("end", voiced_end)]


def test_end_is_detected_only_after_end_of_speech_ms() -> None:
    machine = VadStateMachine(min_speech_ms=64, end_of_speech_ms=500)
    run(machine, [HI] * 10)
    detected = None
    for i in range(10, 60):
        if machine.step(LO, i * WINDOW_MS) is not None:
            detected = (i + 1) * WINDOW_MS  # the window's end: when the detector knows
            break
    assert detected is not None
    silence = detected - 10 * WINDOW_MS
    assert 500 <= silence < 500 + WINDOW_MS


def test_hysteresis_mid_probability_keeps_speech() -> None:
    # Between neg_threshold (0.35) and threshold (0.5): not enough to start, nor to date the end of
    # voiced audio, but it keeps a turn alive: the silence only counts from the first LO window.
    machine = VadStateMachine(min_speech_ms=64, end_of_speech_ms=300)
    events = []
    for i, p in enumerate([HI] * 5 + [MID] * 50 + [LO] * 20):
        event = machine.step(p, i * WINDOW_MS)
        if event:
            events.append((i, event))
    first_quiet = 55
    assert events == [(1, VadEvent("start", 0.0)), (first_quiet + windows(300), VadEvent("end", 5 * WINDOW_MS))]


def test_a_mid_window_restarts_the_silence() -> None:
    machine = VadStateMachine(min_speech_ms=64, end_of_speech_ms=300)
    almost = [LO] * (windows(300) - 1)
    assert run(machine, [HI] * 3 + almost + [MID] + almost) == [VadEvent("start", 0.0)]
    assert machine.in_speech


def test_mid_probability_alone_never_starts() -> None:
    machine = VadStateMachine()
    assert run(machine, [MID] * 100) == []


def test_pause_shorter_than_window_does_not_end() -> None:
    machine = VadStateMachine(min_speech_ms=64, end_of_speech_ms=500)
    pause = [LO] * (windows(500) - 2)  # ~430 ms: a breath between two phrases
    events = run(machine, [HI] * 10 + pause + [HI] * 10 + [LO] * 30)
    second_phrase_end = (10 + len(pause) + 10) * WINDOW_MS
    assert events == [VadEvent("start", 0.0), VadEvent("end", second_phrase_end)]


def test_two_turns() -> None:
    machine = VadStateMachine(min_speech_ms=64, end_of_speech_ms=200)
    events = run(machine, [LO] * 3 + [HI] * 5 + [LO] * 10 + [HI] * 4 + [LO] * 10)
    assert events == [
        VadEvent("start", 3 * WINDOW_MS),
        VadEvent("end", 8 * WINDOW_MS),
        VadEvent("start", 18 * WINDOW_MS),
        VadEvent("end", 22 * WINDOW_MS),
    ]


def test_end_of_speech_ms_change_applies_to_silence_already_counted() -> None:
    machine = VadStateMachine(min_speech_ms=64, end_of_speech_ms=1000)
    assert run(machine, [HI] * 5 + [LO] * 10) == [VadEvent("start", 0.0)]  # 320 ms of silence so far
    machine.end_of_speech_ms = 300  # a handoff to an agent with a shorter end of speech
    assert run(machine, [LO], start_window=15) == [VadEvent("end", 5 * WINDOW_MS)]


def test_longer_end_of_speech_waits_longer() -> None:
    short, long_ = VadStateMachine(end_of_speech_ms=300), VadStateMachine(end_of_speech_ms=800)
    probabilities = [HI] * 5 + [LO] * windows(600)
    assert run(short, probabilities)[-1] == VadEvent("end", 5 * WINDOW_MS)
    assert run(long_, probabilities) == [VadEvent("start", 0.0)]


def test_reset_forgets_a_turn_and_an_onset() -> None:
    machine = VadStateMachine(min_speech_ms=64)
    run(machine, [HI] * 5)
    assert speaking(machine)
    machine.reset()
    assert not speaking(machine)
    assert run(machine, [LO] * 50, start_window=5) == []  # no end for the forgotten turn
    run(machine, [HI], start_window=55)  # half an onset
    machine.reset()
    assert run(machine, [HI], start_window=56) == []  # the count restarted
    assert run(machine, [HI], start_window=57) == [VadEvent("start", 56 * WINDOW_MS)]


def test_window_durations_other_than_32_ms() -> None:
    machine = VadStateMachine(min_speech_ms=60, end_of_speech_ms=100)
    events = [machine.step(p, i * 20.0, 20.0) for i, p in enumerate([HI, HI, HI, LO, LO, LO, LO, LO])]
    assert [e for e in events if e] == [VadEvent("start", 0.0), VadEvent("end", 60.0)]


@pytest.mark.parametrize(
    ("threshold", "neg_threshold", "min_speech_ms", "end_ms"),
    [(0.5, 0.6, 64, 500), (1.0, 0.35, 64, 500), (0.5, 0.0, 64, 500), (0.5, 0.35, -1, 500), (0.5, 0.35, 64, -1)],
)
def test_invalid_parameters(threshold: float, neg_threshold: float, min_speech_ms: float, end_ms: int) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        VadStateMachine(threshold=threshold, neg_threshold=neg_threshold, min_speech_ms=min_speech_ms,
                        end_of_speech_ms=end_ms)


def test_a_pause_is_announced_once_per_quiet_span_before_the_end() -> None:
    from media_host.engines.embedded.vad import VadStateMachine

    machine = VadStateMachine(min_speech_ms=64, end_of_speech_ms=600, pause_ms=300)
    events = []
    t = 0.0
    for probability in [0.9] * 10 + [0.1] * 12 + [0.9] * 3 + [0.1] * 25:
        event = machine.step(probability, t)
        if event is not None:
            events.append((event.kind, event.at_ms))
        t += 32
    kinds = [k for k, _ in events]
    assert kinds == ["start", "pause", "pause", "end"]  # one pause per quiet span; speech in between
    first_pause, second_pause, end = events[1][1], events[2][1], events[3][1]
    assert first_pause == 320  # where the voiced audio ended, not when the pause was noticed
    assert second_pause == end  # nothing was said after the second pause: its transcript is the turn's
