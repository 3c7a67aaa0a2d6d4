"""The simulated caller's voice shared by the local ACS media client and the benchmarks' AudioCodes caller."""

from __future__ import annotations

import asyncio

import pytest

from local_stack.callers.speech import CallerSpeech

RATE = 16000
FRAME = RATE // 50 * 2  # 640 bytes: 20 ms of PCM16


class Gone(Exception):
    """The socket closed under the sender."""


async def test_speech_goes_out_in_whole_frames_then_silence_and_spoken_waits_for_the_last_one() -> None:
    speech = CallerSpeech(RATE)
    sent: list[tuple[bytes, bool]] = []

    async def send(frame: bytes, silent: bool) -> None:
        if len(sent) == 6:
            raise Gone
        sent.append((frame, silent))

    assert speech.say(b"\x01\x00" * (FRAME + 10)) == pytest.approx(0.06)  # 2 frames + 20 bytes: padded to 3
    speaking = [speech.speaking]
    stream = asyncio.create_task(speech.stream(send))
    await asyncio.wait_for(speech.spoken(), 1.0)
    speaking.append(speech.speaking)
    assert speaking == [True, False]
    with pytest.raises(Gone):
        await stream
    assert [silent for _, silent in sent] == [False, False, False, True, True, True]
    assert all(len(frame) == FRAME for frame, _ in sent)
    assert sent[2][0] == b"\x01\x00" * 10 + bytes(FRAME - 20)  # the tail padded with silence
    assert [frame for frame, _ in sent[3:]] == [bytes(FRAME)] * 3
    assert [frame for _, frame in speech.track.frames] == [frame for frame, _ in sent]


async def test_frames_are_paced_at_real_time() -> None:
    speech = CallerSpeech(RATE)
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def send(_frame: bytes, _silent: bool) -> None:
        times.append(loop.time())
        if len(times) == 11:
            raise Gone

    with pytest.raises(Gone):
        await speech.stream(send)
    # 10 periods of 20 ms: never faster than a phone line (slower only if the machine is busy).
    assert times[-1] - times[0] >= 0.2 - 0.005


async def test_a_cut_line_drops_what_was_still_to_be_said() -> None:
    speech = CallerSpeech(RATE)
    assert speech.say(bytes(FRAME * 50)) == pytest.approx(1.0)
    speaking = [speech.speaking]
    speech.cut()
    speaking.append(speech.speaking)
    assert speaking == [True, False]
    await asyncio.wait_for(speech.spoken(), 0.1)  # nobody waits for words that went down a dead line
    assert speech.seconds(bytes(FRAME + 1)) == pytest.approx(0.04)
