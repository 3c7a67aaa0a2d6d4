"""The playout queue on a fake clock: pacing, lateness, flushing and what the caller heard."""

from __future__ import annotations

import pytest

from media_host.playout import PlayoutQueue, UtteranceEnd


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def t() -> FakeTime:
    return FakeTime()


def queue(t: FakeTime, **kw: float) -> PlayoutQueue:
    return PlayoutQueue(clock=t.clock, sleep=t.sleep, **kw)  # type: ignore[arg-type]


def frames(n: int) -> list[bytes]:
    return [bytes([i]) * 4 for i in range(n)]


async def test_keeps_the_far_end_sixty_ms_ahead_then_paces_at_real_time(t: FakeTime) -> None:
    q = queue(t)
    q.push_frames(frames(8))
    sent_at = []
    for _ in range(8):
        await q.next_item()
        sent_at.append(round((t.now - 100.0) * 1000))
    # Four frames at once (the one playing plus 60 ms of lead), then one every 20 ms.
    assert sent_at == [0, 0, 0, 0, 20, 40, 60, 80]
    assert q.late_frames == 0
    assert q.frames_sent == 8


async def test_frames_queued_together_are_not_late(t: FakeTime) -> None:
    q = queue(t)
    for _ in range(50):  # a source that delivers two frames every 40 ms, slower than the lead
        q.push_frames(frames(2))
        await q.next_item()
        await q.next_item()
        t.now += 0.04
    assert q.late_frames == 0


async def test_a_stalled_sender_counts_late_frames(t: FakeTime) -> None:
    q = queue(t)
    q.push_frames(frames(10))
    for _ in range(4):
        await q.next_item()
    t.now += 0.05  # the event loop was busy for 50 ms while frame 5 was due
    await q.next_item()
    assert q.late_frames == 1


async def test_heard_is_what_was_sent_minus_what_the_far_end_still_holds(t: FakeTime) -> None:
    q = queue(t)
    q.start_utterance()
    q.push_frames(frames(10))
    for _ in range(4):
        await q.next_item()  # 80 ms sent at once, nothing heard yet
    assert q.heard_ms() == pytest.approx(0.0, abs=1e-6)
    t.now += 0.03
    assert q.heard_ms() == pytest.approx(30.0)
    heard = q.flush()  # barge-in
    assert heard == pytest.approx(30.0)
    assert q.queued_frames == 0
    assert not q.playing


async def test_flush_restarts_the_schedule_and_utterances_are_marked(t: FakeTime) -> None:
    q = queue(t)
    q.start_utterance()
    q.push_frames(frames(6))
    for _ in range(4):
        await q.next_item()
    q.flush()
    second = q.start_utterance()
    q.push_frames(frames(1))
    q.end_utterance()
    start = t.now
    assert await q.next_item() == frames(1)[0]
    assert t.now == start  # after a flush the far end is empty: the next frame goes at once
    assert await q.next_item() == UtteranceEnd(second)


async def test_queue_depth_and_playing(t: FakeTime) -> None:
    q = queue(t)
    q.push_frames(frames(5))
    assert q.queued_frames == 5
    assert q.queued_ms == pytest.approx(100.0)
    assert q.playing
    for _ in range(5):
        await q.next_item()
    assert q.queued_frames == 0
    assert q.playing  # the far end still holds audio
    t.now += 1
    assert not q.playing


async def test_positions_tell_what_was_heard_across_utterances(t: FakeTime) -> None:
    q = queue(t)
    q.push_frames(frames(5))  # a greeting: positions 0-5
    greeting_end = q.frames_pushed
    q.push_frames(frames(5))  # an answer: positions 5-10
    for _ in range(7):
        await q.next_item()  # the 7th goes out at +60 ms; the far end then holds 80 ms
    assert q.heard_position() == pytest.approx(3.0)  # what has played so far: 3 of 7 frames sent
    t.now += 0.05
    heard = q.heard_position()
    assert greeting_end < heard < 10  # all of the greeting, part of the answer
    q.flush()
    assert q.frames_pushed == q.frames_sent == 7  # unsent frames are gone from the stream


async def test_wait_played_returns_when_the_far_end_is_done(t: FakeTime) -> None:
    q = queue(t)
    q.start_utterance()
    q.push_frames(frames(3))
    while q.queued_frames:
        await q.next_item()
    assert q.first_sent_at == 100.0
    await q.wait_played()
    assert not q.playing
    assert t.now == pytest.approx(100.06)


async def test_an_utterance_queued_behind_another_is_stamped_when_its_own_audio_starts(t: FakeTime) -> None:
    q = queue(t)
    a = q.start_utterance()
    q.push_frames(frames(10))  # 200 ms of A
    q.end_utterance()
    b = q.start_utterance()  # B is queued while A is still to play
    q.push_frames(frames(2))
    q.end_utterance()
    sent: list[object] = []
    while len(sent) < 14:
        sent.append(await q.next_item())
    a_start, b_start = q.first_sent[a], q.first_sent[b]
    assert a_start == pytest.approx(100.0)
    assert b_start == pytest.approx(100.14)  # after A's 10 frames (4 at once, then one per 20 ms)
    assert q.heard_ms() == pytest.approx(0.0, abs=1e-6)  # B's own audio has not played yet
