"""Sample-rate conversion of PCM16 LE mono `bytes` with libsoxr (python-soxr, int16 I/O).

StreamResampler latency is its hold-back: output samples already paid for by input but not yet
returned. `python -m bench.audio_costs` prints it per rate pair and mode (20 ms frames over 10 s),
with the CPU per frame; the figures are in docs/performance.md ("Audio, per frame"). In short, "HQ"
holds back in bursts, "VR" steadily and less.

HQ (also VHQ/MQ/LQ) is linear-phase and time-aligned: stream + flush() equals `resample()` of
the whole signal to within dither (2 LSB), so the hold-back is its entire latency. But libsoxr's
fixed-rate engines filter in FFT blocks: a 20 ms frame often returns b"" and a later one several
frames at once. Harmless for TTS (faster than real time, ended by flush()); on a real-time
inbound path the hold-back is added latency.

"VR" runs libsoxr's variable-rate engine at a fixed ratio: constant and lower hold-back, and
exactly one frame's worth per frame once primed. The costs: more CPU than HQ (still tens of
µs per frame: docs/performance.md), a fixed filter (same >80 dB alias rejection; 3.8 kHz is -10 dB for 8k -> 16k),
and, when downsampling, a further 1.6-2.7 output samples of frequency-dependent delay, so its
waveform is not sample-aligned with `resample()` (inaudible: < 0.35 ms).

"QQ" is refused: it does not filter (a 6 kHz tone taken 24k -> 8k comes out at full level as a
2 kHz alias). All modes TPDF-dither their int16 output (libsoxr's default, not configurable
through python-soxr): digital silence comes out as +-1 LSB, and streams are not bit-reproducible.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import soxr

from media_host.audio.codecs import ODD_LENGTH_MESSAGE

SUPPORTED_RATES: Final = frozenset({8000, 16000, 22050, 24000, 48000})
QUALITIES: Final = ("VHQ", "HQ", "MQ", "LQ", "VR")

_PCM16: Final = np.dtype("<i2")
_NO_INPUT: Final = np.zeros(0, dtype=_PCM16)  # flush input; soxr never writes to its input


def _check_rate(rate: int) -> None:
    if rate not in SUPPORTED_RATES:
        raise ValueError(f"unsupported sample rate {rate} Hz (supported: {sorted(SUPPORTED_RATES)})")


def _samples(pcm: bytes) -> npt.NDArray[np.int16]:
    if len(pcm) & 1:
        raise ValueError(ODD_LENGTH_MESSAGE)
    return np.frombuffer(pcm, dtype=_PCM16)  # zero-copy view of the caller's bytes


class StreamResampler:
    """Resample one continuous stream (one call direction) chunk by chunk.

    The filter state lives here between calls, so consecutive frames join without clicks. Output
    lags input by the hold-back in the module docstring; `flush()` returns it at the end of a
    stream. Make one per call and direction: the soxr object is allocated once, not per frame.
    When `in_rate == out_rate` it is a passthrough that returns the very object it was given.
    """

    __slots__ = ("_in_rate", "_out_rate", "_stream")

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        _check_rate(in_rate)
        _check_rate(out_rate)
        mode = quality.upper()
        if mode not in QUALITIES:
            raise ValueError(f"unsupported resampler quality {quality!r} (supported: {', '.join(QUALITIES)})")
        self._in_rate = in_rate
        self._out_rate = out_rate
        self._stream: soxr.ResampleStream | None = None
        if in_rate != out_rate:
            vr = mode == "VR"
            # The VR engine ignores the quality recipe; "HQ" is only a valid placeholder for it.
            self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ" if vr else mode, vr=vr)

    @property
    def in_rate(self) -> int:
        return self._in_rate

    @property
    def out_rate(self) -> int:
        return self._out_rate

    def process(self, pcm: bytes) -> bytes:
        """Resample the next chunk (any even length). May return b"" while the filter fills."""
        if self._stream is None:
            if len(pcm) & 1:  # same contract as the resampling path, at O(1) cost
                raise ValueError(ODD_LENGTH_MESSAGE)
            return pcm
        samples = _samples(pcm)
        if not samples.size:
            return b""
        out: npt.NDArray[np.int16] = self._stream.resample_chunk(samples)
        return out.tobytes()

    def flush(self) -> bytes:
        """End of stream: return the held-back tail. The resampler is then ready for a new stream."""
        if self._stream is None:
            return b""
        tail: npt.NDArray[np.int16] = self._stream.resample_chunk(_NO_INPUT, last=True)
        # After last=True python-soxr refuses input until cleared; clearing keeps it reusable.
        self._stream.clear()
        return tail.tobytes()

    def reset(self) -> None:
        """Drop buffered audio and filter state (e.g. after a barge-in flush). Cheap: no realloc."""
        if self._stream is not None:
            self._stream.clear()


def resample(pcm: bytes, in_rate: int, out_rate: int) -> bytes:
    """Resample a whole utterance at once (HQ, time-aligned, same length ratio as the rates)."""
    _check_rate(in_rate)
    _check_rate(out_rate)
    samples = _samples(pcm)
    if in_rate == out_rate:
        return pcm
    if not samples.size:
        return b""
    out: npt.NDArray[np.int16] = soxr.resample(samples, in_rate, out_rate, quality="HQ")
    return out.tobytes()
