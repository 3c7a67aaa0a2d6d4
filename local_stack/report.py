"""What a finished local call leaves behind: the per-turn latency table, a stereo WAV and the record JSON."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import numpy as np

from local_stack.callers.acs_caller import AcsMediaClient
from local_stack.callers.speech import FRAME_S, Track
from local_stack.phone_call import CallResult

# Host-side marks (ms after the caller's speech ended), as media_host/pipelines/cascade/latency.py names them.
COLUMNS = (("eos_detected", "end of speech"), ("stt_done", "STT"), ("first_token", "LLM 1st token"),
           ("first_tts_chunk", "TTS 1st audio"), ("first_audio_out", "1st frame out"), ("overhead", "overhead"))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


VOICED_RMS = 300  # PCM16 level above which a caller frame counts as speech (synthesized lines end in silence)


def _voiced_end(frames: list[tuple[float, bytes]], start: float, end: float) -> float:
    """When the last voiced caller frame sent between `start` and `end` ended (`end` if none was voiced)."""
    for at, pcm in reversed(frames):
        if at > end:
            continue
        if at < start:
            break
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
        if samples.size and float(np.sqrt(np.mean(samples * samples))) > VOICED_RMS:
            return at + FRAME_S  # the frame plays for 20 ms after it is sent
    return end


def caller_waits(result: CallResult) -> list[float | None]:
    """For each line the caller said: ms from the end of its voice until the agent's next audio arrived."""
    if result.media is None:
        return [None for _ in result.said]
    frames, sent = result.media.agent.frames, result.media.caller.frames
    waits: list[float | None] = []
    for said in result.said:
        voice_end = _voiced_end(sent, said.started, said.ended)
        first = next((t for t, _ in frames if t > said.ended), None)
        waits.append(None if first is None else (first - voice_end) * 1000)
    return waits


def latency_table(result: CallResult) -> str:
    """One row per caller turn: what the host measured, and the silence the caller heard."""
    replies = [e["marks"] for e in result.of("latency") if "eos_detected" in e["marks"]]
    heard = [e["text"] for e in result.of("transcript") if e["speaker"] == "caller"]
    waits = caller_waits(result)
    header = ["turn", "caller (as recognised)", *(title for _, title in COLUMNS), "caller waited"]
    rows = []
    for i in range(max(len(replies), len(waits))):
        marks = replies[i] if i < len(replies) else {}
        text = heard[i] if i < len(heard) else ""
        rows.append([str(i + 1), text if len(text) <= 34 else text[:33] + "…",
                     *(_ms(marks.get(key)) for key, _ in COLUMNS), _ms(waits[i] if i < len(waits) else None)])
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if c == 1 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths,
                                                                                                      strict=True)))
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    note = "(ms after the caller stopped speaking; 'caller waited' is measured at the caller's end)"
    return "\n".join([*lines, note])


def _lay(track: Track, start: float, rate: int, length: int) -> np.ndarray[Any, np.dtype[np.int16]]:
    """The track on a timeline: each frame at its time, never before the end of the one before."""
    out = np.zeros(length, dtype=np.int16)
    cursor = 0
    for at, pcm in track.frames:
        samples = np.frombuffer(pcm, dtype=np.int16)
        pos = max(cursor, round((at - start) * rate))
        end = min(pos + len(samples), length)
        if end > pos:
            out[pos:end] = samples[: end - pos]
        cursor = pos + len(samples)
    return out


def write_stereo_wav(path: Path, media: AcsMediaClient) -> float:
    """Caller on the left, agent on the right, PCM16 at the call's rate. Returns the length in seconds."""
    times = [t for t, _ in media.caller.frames[:1] + media.agent.frames[:1]]
    if not times:
        raise ValueError("no audio was exchanged")
    start = min(times)
    ends = [t for t, _ in media.caller.frames[-1:] + media.agent.frames[-1:]]
    length = round((max(ends) - start + 1.0) * media.rate) + sum(len(p) for _, p in media.agent.frames) // 2
    left, right = _lay(media.caller, start, media.rate, length), _lay(media.agent, start, media.rate, length)
    used = max(np.flatnonzero(left).max(initial=0), np.flatnonzero(right).max(initial=0)) + 1
    stereo = np.stack([left[:used], right[:used]], axis=1)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(media.rate)
        wav.writeframes(stereo.tobytes())
    return float(used) / media.rate


def write_record(path: Path, record: dict[str, Any] | None) -> None:
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
