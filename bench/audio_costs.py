"""Per-frame CPU cost of the media host's audio utilities: `python -m bench.audio_costs [iterations]`.

Every number is one 20 ms frame of one call direction, timed call by call with perf_counter_ns
(which adds ~0.1 µs). The budget to compare with: a 2-core host running N calls spends
N x (sum of the per-frame costs on its path) every 20 ms.
"""

from __future__ import annotations

import gc
import os
import platform
import sys
import time
from collections.abc import Callable

import numpy as np
import soxr

from media_host.audio import (
    QUALITIES,
    Framer,
    StreamResampler,
    float_to_pcm16,
    frame_bytes,
    mulaw_decode,
    mulaw_encode,
    pcm16_to_float,
)

PAIRS = [(8000, 16000), (16000, 8000), (16000, 24000), (24000, 16000), (24000, 8000), (22050, 16000)]


def speechlike(rate: int, seconds: float = 1.0, seed: int = 0) -> bytes:
    """Band-limited noise at speech level: a realistic load for codecs and resamplers."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(int(rate * seconds))
    smooth = np.convolve(noise, np.ones(4) / 4, mode="same")  # tilt the spectrum down like speech
    return np.clip(smooth * 6000, -32768, 32767).astype("<i2").tobytes()


def frames_of(pcm: bytes, size: int) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]


def measure(fn: Callable[[int], object], iterations: int) -> tuple[float, float, float]:
    """Median, mean and p99 in µs of fn(i), called once per iteration."""
    for i in range(min(200, iterations)):  # warm caches and lazy allocations
        fn(i)
    times = np.empty(iterations, dtype=np.int64)
    clock = time.perf_counter_ns
    gc.disable()  # a collection landing in one sample would be noise, not the function's cost
    try:
        for i in range(iterations):
            start = clock()
            fn(i)
            times[i] = clock() - start
    finally:
        gc.enable()
    return float(np.median(times)) / 1e3, float(times.mean()) / 1e3, float(np.percentile(times, 99)) / 1e3


def report(name: str, fn: Callable[[int], object], iterations: int) -> None:
    median, mean, p99 = measure(fn, iterations)
    print(f"  {name:<44} {median:8.1f} {mean:8.1f} {p99:8.1f}")


def resampler_case(in_rate: int, out_rate: int, quality: str) -> Callable[[int], object]:
    frames = frames_of(speechlike(in_rate), frame_bytes(in_rate))
    resampler = StreamResampler(in_rate, out_rate, quality)
    return lambda i: resampler.process(frames[i % len(frames)])


def hold_back(in_rate: int, out_rate: int, quality: str, seconds: int = 10) -> tuple[int, int]:
    """Min and max output samples held back over a steady stream of 20 ms frames (after 0.5 s)."""
    resampler = StreamResampler(in_rate, out_rate, quality)
    frames = frames_of(speechlike(in_rate, seconds), frame_bytes(in_rate))
    produced = 0
    held = []
    for n, frame in enumerate(frames, 1):
        produced += len(resampler.process(frame)) // 2
        if n > 25:
            held.append(n * out_rate // 50 - produced)
    return min(held), max(held)


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"audio costs per 20 ms frame, {iterations} iterations each")
    print(f"CPU: {os.cpu_count()} logical CPUs ({affinity} usable), {platform.processor() or platform.machine()}")
    print(f"Python {platform.python_version()}, numpy {np.__version__}, soxr {soxr.__version__}")
    print(f"  {'µs per frame':<44} {'median':>8} {'mean':>8} {'p99':>8}")

    ulaw = mulaw_encode(speechlike(8000))
    ulaw_frames = frames_of(ulaw, 160)
    pcm8 = frames_of(speechlike(8000), 320)
    pcm16 = frames_of(speechlike(16000), 640)
    floats16 = [pcm16_to_float(f) for f in pcm16]
    report("mulaw_decode (160 B -> 320 B)", lambda i: mulaw_decode(ulaw_frames[i % len(ulaw_frames)]), iterations)
    report("mulaw_encode (320 B -> 160 B)", lambda i: mulaw_encode(pcm8[i % len(pcm8)]), iterations)
    report("pcm16_to_float (16 kHz, 640 B)", lambda i: pcm16_to_float(pcm16[i % len(pcm16)]), iterations)
    report("float_to_pcm16 (16 kHz, 320 samples)", lambda i: float_to_pcm16(floats16[i % len(floats16)]), iterations)

    for in_rate, out_rate in PAIRS:
        label = f"StreamResampler {in_rate // 1000}k->{out_rate // 1000}k"
        report(f"{label} HQ", resampler_case(in_rate, out_rate, "HQ"), iterations)
        report(f"{label} VR", resampler_case(in_rate, out_rate, "VR"), iterations)
    for quality in ("VHQ", "MQ", "LQ"):
        report(f"StreamResampler 24k->8k {quality}", resampler_case(24000, 8000, quality), iterations)

    size = frame_bytes(16000)
    aligned = Framer(size)
    report("Framer.push aligned 640 B (16 kHz)", lambda i: aligned.push(pcm16[i % len(pcm16)]), iterations)
    unaligned = Framer(size)
    chunks = frames_of(speechlike(16000), 500)
    report("Framer.push 500 B chunks into 640 B frames", lambda i: unaligned.push(chunks[i % len(chunks)]), iterations)
    second = speechlike(16000)
    big = Framer(size)
    median, mean, p99 = measure(lambda i: big.push(second), max(iterations // 50, 10))
    print(f"  {'Framer.push 1 s (32000 B), per frame of 50':<44} {median / 50:8.2f} {mean / 50:8.2f} {p99 / 50:8.2f}")

    print("\nresampler hold-back (output samples, min-max over 10 s of 20 ms frames; latency in ms)")
    print(f"  {'pair':<12}" + "".join(f"{q:>22}" for q in QUALITIES))
    for in_rate, out_rate in PAIRS:
        cells = []
        for quality in QUALITIES:
            low, high = hold_back(in_rate, out_rate, quality)
            cells.append(f"{low}-{high} ({low * 1000 / out_rate:.0f}-{high * 1000 / out_rate:.0f})")
        print(f"  {f'{in_rate}->{out_rate}':<12}" + "".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
