"""G.711 µ-law and float conversions for 16-bit signed little-endian mono PCM (`bytes`).

Hand-written: stdlib audioop leaves in 3.13 (PEP 594), audioop-lts needs 3.13, g711 (PyPI) is unreleased since 2021.

Everything here runs once per 20 ms frame for every call, so the work is table look-ups built once
at import and a single numpy pass per frame; no Python loop touches a sample.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

ODD_LENGTH_MESSAGE: Final = "PCM16 audio must have an even number of bytes"

# Explicit little-endian dtypes: the wire format is LE whatever the host byte order is.
_PCM16: Final = np.dtype("<i2")
_UPCM16: Final = np.dtype("<u2")

# ITU-T G.711 µ-law as in the reference C code (Sun g711.c, CCITT G.191 STL): the magnitude is
# clipped, biased by 0x84 so that every segment starts at a power of two, split into a 3-bit
# segment (exponent) and 4-bit step (mantissa), and the byte is inverted for transmission.
_BIAS: Final = 0x84
_CLIP: Final = 32635  # 32635 + 0x84 = 32767: the largest biased magnitude that still fits 15 bits


def _build_decode_table() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    # ((m << 3) + bias) << e, minus bias: the midpoint of the quantisation step (see test_audio.py).
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(_PCM16)


def _build_encode_table() -> npt.NDArray[np.uint8]:
    # Indexed by the sample's bit pattern read as uint16, so encoding is one fancy-index per frame
    # (64 KiB, stays in cache; faster than computing the segments per frame: docs/performance.md).
    sample = np.arange(65536, dtype=np.int32)
    sample = np.where(sample >= 0x8000, sample - 0x10000, sample)  # uint16 pattern -> int16 value
    sign = np.where(sample < 0, 0x80, 0)
    biased = np.minimum(np.abs(sample), _CLIP) + _BIAS  # 132 ..= 32767
    # frexp gives biased = f * 2**e with f in [0.5, 1), so e is the bit length; segment 0 is 8 bits.
    exponent = np.frexp(biased.astype(np.float64))[1] - 8
    mantissa = (biased >> (exponent + 3)) & 0x0F
    code: npt.NDArray[np.int64] = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return code.astype(np.uint8)


_MULAW_DECODE: Final = _build_decode_table()
_MULAW_ENCODE: Final = _build_encode_table()
_TO_FLOAT: Final = np.float32(1.0 / 32768.0)


def _samples(pcm: bytes) -> npt.NDArray[np.int16]:
    """Zero-copy int16 view of PCM16 bytes (read-only)."""
    if len(pcm) & 1:
        raise ValueError(ODD_LENGTH_MESSAGE)
    return np.frombuffer(pcm, dtype=_PCM16)


def mulaw_decode(data: bytes) -> bytes:
    """G.711 µ-law bytes -> PCM16 LE bytes (twice the length)."""
    # ndarray.take beats fancy indexing on 160-byte frames (fewer checks; figures: docs/performance.md).
    return _MULAW_DECODE.take(np.frombuffer(data, dtype=np.uint8)).tobytes()


def mulaw_encode(pcm: bytes) -> bytes:
    """PCM16 LE bytes -> G.711 µ-law bytes (half the length). 0 encodes to 0xFF."""
    if len(pcm) & 1:
        raise ValueError(ODD_LENGTH_MESSAGE)
    return _MULAW_ENCODE.take(np.frombuffer(pcm, dtype=_UPCM16)).tobytes()


def pcm16_to_float(pcm: bytes) -> npt.NDArray[np.float32]:
    """PCM16 LE bytes -> float32 samples in [-1, 1) (a new, writable array)."""
    # One allocation: the multiply converts int16 -> float32 as it scales.
    return np.multiply(_samples(pcm), _TO_FLOAT, dtype=np.float32)


def float_to_pcm16(x: npt.NDArray[np.floating[Any]]) -> bytes:
    """Float samples (nominally [-1, 1)) -> PCM16 LE bytes: clip to the int16 range, then round.

    Out-of-range input saturates instead of wrapping (a wrapped sample is a loud click). NaN is
    not expected from an engine; it is not checked here because it costs a pass per frame.
    """
    scaled = np.multiply(x, 32768.0, dtype=np.float32)  # new array: never mutate the caller's
    np.clip(scaled, -32768.0, 32767.0, out=scaled)
    np.rint(scaled, out=scaled)
    pcm: npt.NDArray[np.int16] = scaled.astype(_PCM16)
    return pcm.tobytes()
