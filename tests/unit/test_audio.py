"""media_host.audio: µ-law and float codecs, resampling (one-shot and streaming), framing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt
import pytest

from media_host.audio import (
    SUPPORTED_RATES,
    Framer,
    StreamResampler,
    float_to_pcm16,
    frame_bytes,
    mulaw_decode,
    mulaw_encode,
    pcm16_to_float,
    resample,
)

ODD = "PCM16 audio must have an even number of bytes"
TELEPHONE_PAIRS = [(a, b) for a in (8000, 16000, 24000) for b in (8000, 16000, 24000) if a != b]
TTS_PAIRS = [(22050, 16000), (22050, 8000), (48000, 16000), (16000, 48000)]
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int64)


# --- helpers --------------------------------------------------------------------------------------
def pcm(samples: Iterable[float] | npt.NDArray[np.generic]) -> bytes:
    return np.asarray(samples).astype("<i2").tobytes()


def samples_of(data: bytes) -> npt.NDArray[np.float64]:
    return np.frombuffer(data, dtype="<i2").astype(np.float64)


def tone(freq: float, rate: int, seconds: float = 0.5, amplitude: float = 0.5) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return pcm(np.round(amplitude * 32767 * np.sin(2 * np.pi * freq * t)))


def speechlike(rate: int, seconds: float = 1.0, seed: int = 7) -> bytes:
    """Twelve random tones in the telephone band (200-3400 Hz) with a slow envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    x = sum(
        np.sin(2 * np.pi * f * t + p) for f, p in zip(rng.uniform(200, 3400, 12), rng.uniform(0, 6.3, 12), strict=True)
    )
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return pcm(np.round(x / np.abs(x).max() * 16000))


def middle(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Drop the first and last 10%, where the filters ramp in and out."""
    return x[len(x) // 10 : -len(x) // 10]


def rms(x: npt.NDArray[np.float64]) -> float:
    return float(np.sqrt(np.mean(x**2)))


def peak_hz(x: npt.NDArray[np.float64], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def stream(data: bytes, in_rate: int, out_rate: int, quality: str = "HQ", chunk: int | None = None) -> bytes:
    """Push `data` through a StreamResampler in 20 ms chunks (or `chunk` bytes), then flush."""
    step = chunk or frame_bytes(in_rate)
    resampler = StreamResampler(in_rate, out_rate, quality)
    parts = [resampler.process(data[i : i + step]) for i in range(0, len(data), step)]
    return b"".join([*parts, resampler.flush()])


Resampling = Callable[[bytes, int, int], bytes]
ONE_SHOT_AND_STREAMS: list[Resampling] = [
    resample,
    lambda d, a, b: stream(d, a, b, "HQ"),
    lambda d, a, b: stream(d, a, b, "VR"),
]
IDS = ["resample", "stream-HQ", "stream-VR"]


# --- resampling -----------------------------------------------------------------------------------
@pytest.mark.parametrize("convert", ONE_SHOT_AND_STREAMS, ids=IDS)
@pytest.mark.parametrize(("in_rate", "out_rate"), TELEPHONE_PAIRS + TTS_PAIRS)
@pytest.mark.parametrize("freq", [1000, 3000])
def test_tone_keeps_its_frequency_level_and_length(convert: Resampling, in_rate: int, out_rate: int, freq: int) -> None:
    source = tone(freq, in_rate)
    out = convert(source, in_rate, out_rate)
    # No audio lost or invented (VR's flush comes up one sample short for 22.05k -> 8k).
    assert abs(len(out) // 2 - len(source) // 2 * out_rate // in_rate) <= 1
    y = middle(samples_of(out))
    assert peak_hz(y, out_rate) == pytest.approx(freq, rel=0.01)
    assert rms(y) == pytest.approx(rms(middle(samples_of(source))), rel=0.05)


@pytest.mark.parametrize("convert", [*ONE_SHOT_AND_STREAMS, lambda d, a, b: stream(d, a, b, "LQ")], ids=[*IDS, "LQ"])
def test_a_tone_above_the_new_nyquist_is_filtered_out_not_aliased(convert: Resampling) -> None:
    source = tone(6000, 24000)  # 6 kHz cannot exist at 8 kHz; plain decimation folds it to 2 kHz
    level = rms(middle(samples_of(source)))
    decimated = rms(middle(samples_of(source)[::3]))
    assert 20 * np.log10(decimated / level) > -1  # the test signal does alias without a filter
    attenuation = 20 * np.log10(max(rms(middle(samples_of(convert(source, 24000, 8000)))), 1e-9) / level)
    assert attenuation < -40


@pytest.mark.parametrize(("in_rate", "out_rate"), TELEPHONE_PAIRS + TTS_PAIRS)
def test_hq_stream_in_20ms_frames_equals_one_shot(in_rate: int, out_rate: int) -> None:
    source = speechlike(in_rate)
    whole = samples_of(resample(source, in_rate, out_rate))
    streamed = samples_of(stream(source, in_rate, out_rate))
    # The measured alignment offset is 0 (soxr trims its linear-phase filter delay when streaming
    # too), so the waveforms compare sample for sample, and the lengths match exactly.
    assert len(streamed) == len(whole)
    n = min(len(streamed), len(whole))
    assert np.corrcoef(streamed[:n], whole[:n])[0, 1] > 0.999
    assert np.abs(streamed[:n] - whole[:n]).max() <= 4  # only libsoxr's TPDF dither differs


@pytest.mark.parametrize("quality", ["HQ", "VR"])
@pytest.mark.parametrize(("in_rate", "out_rate"), TELEPHONE_PAIRS)
def test_chunk_boundaries_do_not_click(quality: str, in_rate: int, out_rate: int) -> None:
    amplitude = 0.5 * 32767
    out = samples_of(stream(tone(200, in_rate, 1.0), in_rate, out_rate, quality))[out_rate // 10 : -out_rate // 10]
    # A 200 Hz sine moves at most 2 A sin(pi f / fs) per sample; a filter restarted at a frame
    # boundary (state lost) would jump far more. Allow 2% + a few LSB of dither.
    bound = 2 * amplitude * np.sin(np.pi * 200 / out_rate) * 1.02 + 4
    assert np.abs(np.diff(out)).max() < bound


def test_restarting_the_filter_per_frame_would_click() -> None:
    """The bound above can fail: resampling each 20 ms frame on its own breaks the waveform."""
    source = tone(200, 8000, 1.0)
    out = samples_of(b"".join(resample(source[i : i + 320], 8000, 16000) for i in range(0, len(source), 320)))
    assert np.abs(np.diff(out[1600:-1600])).max() > 2 * 0.5 * 32767 * np.sin(np.pi * 200 / 16000) * 1.02 + 4


@pytest.mark.parametrize(("in_rate", "out_rate"), TELEPHONE_PAIRS)
def test_vr_returns_exactly_one_frame_per_frame_once_primed(in_rate: int, out_rate: int) -> None:
    resampler = StreamResampler(in_rate, out_rate, "VR")
    frame = frame_bytes(in_rate)
    source = speechlike(in_rate)
    sizes = [len(resampler.process(source[i : i + frame])) for i in range(0, len(source), frame)]
    assert sizes[5:] == [frame_bytes(out_rate)] * (len(sizes) - 5)


@pytest.mark.parametrize("quality", ["HQ", "VR"])
def test_reset_and_flush_leave_the_resampler_as_good_as_new(quality: str) -> None:
    source = tone(1000, 8000)
    fresh = samples_of(stream(source, 8000, 16000, quality))
    resampler = StreamResampler(8000, 16000, quality)
    resampler.process(speechlike(8000))  # unrelated audio, then a barge-in
    resampler.reset()
    after_reset = samples_of(b"".join([resampler.process(source), resampler.flush()]))
    again = samples_of(b"".join([resampler.process(source), resampler.flush()]))  # reusable after flush
    for out in (after_reset, again):
        assert len(out) == len(fresh)
        assert np.abs(out - fresh).max() <= 4


def test_same_rate_is_a_passthrough() -> None:
    resampler = StreamResampler(16000, 16000)
    data = speechlike(16000, 0.02)
    assert resampler.process(data) is data
    assert resampler.flush() == b""
    assert (resampler.in_rate, resampler.out_rate) == (16000, 16000)
    assert resample(data, 24000, 24000) is data


def test_properties_and_empty_input() -> None:
    resampler = StreamResampler(24000, 8000, "lq")
    assert (resampler.in_rate, resampler.out_rate) == (24000, 8000)
    assert resampler.process(b"") == b""
    assert resampler.flush() == b""
    assert resample(b"", 8000, 16000) == b""


@pytest.mark.parametrize("bad", [(44100, 16000), (16000, 11025), (0, 8000)])
def test_unsupported_rates_are_refused_by_name(bad: tuple[int, int]) -> None:
    rate = next(r for r in bad if r not in SUPPORTED_RATES)
    with pytest.raises(ValueError, match=str(rate)):
        StreamResampler(*bad)
    with pytest.raises(ValueError, match=str(rate)):
        resample(bytes(320), *bad)


@pytest.mark.parametrize("quality", ["QQ", "best", ""])
def test_non_filtering_or_unknown_quality_is_refused(quality: str) -> None:
    with pytest.raises(ValueError, match="quality"):
        StreamResampler(24000, 8000, quality)


@pytest.mark.parametrize(
    "call",
    [
        mulaw_encode,
        pcm16_to_float,
        lambda d: resample(d, 8000, 16000),
        lambda d: resample(d, 8000, 8000),
        StreamResampler(8000, 16000).process,
        StreamResampler(8000, 8000).process,
    ],
)
def test_odd_length_pcm_is_refused(call: Callable[[bytes], object]) -> None:
    with pytest.raises(ValueError, match=f"^{ODD}$"):
        call(bytes(321))


# --- G.711 µ-law ----------------------------------------------------------------------------------
# Independent scalar transcriptions of the two reference encoders, checked over all 65536 inputs.
_EXP_LUT = [0, 0, 1, 1, 2, 2, 2, 2] + [3] * 8 + [4] * 16 + [5] * 32 + [6] * 64 + [7] * 128


def reference_encode(sample: int) -> int:
    """linear2ulaw with BIAS 0x84 and CLIP 32635 (Sun/CCITT g711.c as in Asterisk, sox)."""
    sign = (sample >> 8) & 0x80
    magnitude = min(-sample if sign else sample, 32635) + 0x84
    exponent = _EXP_LUT[(magnitude >> 7) & 0xFF]
    return ~(sign | (exponent << 4) | ((magnitude >> (exponent + 3)) & 0x0F)) & 0xFF


def g191_encode(sample: int) -> int:
    """ITU-T G.191 STL ulaw_compress: 14-bit input taken as (x >> 2), or (~x >> 2) when negative."""
    absno = min(((~sample) >> 2 if sample < 0 else sample >> 2) + 33, 0x1FFF)
    segment = 1 + max(absno.bit_length() - 6, 0)  # the C code's shift-and-count loop
    code = ((8 - segment) << 4) | (0x0F - ((absno >> segment) & 0x0F))
    return code | 0x80 if sample >= 0 else code


def g191_decode(code: int) -> int:
    """ITU-T G.191 STL ulaw_expand."""
    inverted = ~code
    exponent = (inverted >> 4) & 0x07
    step = 4 << (exponent + 1)
    magnitude = (0x80 << exponent) + step * (inverted & 0x0F) + step // 2 - 4 * 33
    return magnitude if code >= 0x80 else -magnitude


def encode_all() -> npt.NDArray[np.uint8]:
    return np.frombuffer(mulaw_encode(pcm(ALL_INT16)), dtype=np.uint8)


def test_mulaw_known_code_points() -> None:
    assert mulaw_encode(pcm([0, 32767, -32768, 1, -1])) == bytes([0xFF, 0x80, 0x00, 0xFF, 0x7F])
    assert samples_of(mulaw_decode(bytes([0xFF, 0x7F, 0x80, 0x00]))).tolist() == [0, 0, 32124, -32124]
    assert len(mulaw_decode(bytes(160))) == 320
    assert len(mulaw_encode(bytes(320))) == 160


def test_mulaw_encoder_matches_the_reference_code_for_every_input() -> None:
    ours = encode_all()
    assert ours.tolist() == [reference_encode(int(x)) for x in ALL_INT16]
    # G.191 truncates negative inputs one LSB differently: the same codes for all x >= 0, and at
    # most one step apart on 127 negative decision boundaries (both are valid G.711).
    g191 = np.array([g191_encode(int(x)) for x in ALL_INT16])
    assert (ours[ALL_INT16 >= 0] == g191[ALL_INT16 >= 0]).all()
    assert np.abs(ours.astype(np.int64) - g191).max() == 1
    assert (ours != g191).sum() == 127


def test_mulaw_decoder_matches_g191_for_every_code() -> None:
    assert samples_of(mulaw_decode(bytes(range(256)))).tolist() == [g191_decode(c) for c in range(256)]


def test_mulaw_round_trip_error_is_half_a_quantisation_step() -> None:
    decoded = samples_of(mulaw_decode(encode_all().tobytes()))
    error = np.abs(decoded - ALL_INT16)
    # Segment e (magnitude + 0x84 in [2**(e+7), 2**(e+8))) has steps of 2**(e+3) and decodes to the
    # middle of the step: |error| <= 2**(e+2), i.e. 4 LSB in segment 0 and 8 in segment 1.
    magnitude = np.minimum(np.abs(ALL_INT16), 32635)
    segment = np.floor(np.log2(magnitude + 0x84)).astype(np.int64) - 7
    unclipped = np.abs(ALL_INT16) <= 32635
    assert (error[unclipped] <= 2.0 ** (segment[unclipped] + 2)).all()
    small = np.abs(ALL_INT16) < 256
    assert error[small].max() <= 8
    # Relative: 2**(e+2) / (2**(e+7) - 132) at the bottom of segment e, so 4.2% at |x| = 380 (the
    # bottom of segment 2; segment 1 starts below 256), falling towards 1/32 = 3.1% for louder
    # segments. ~3% is the typical figure, not the bound. Above the clip point: <= 2%.
    relative = error[~small] / np.abs(ALL_INT16[~small])
    assert relative.max() == pytest.approx(16 / 380)  # the bound, and it is reached


def test_mulaw_codes_survive_decode_then_encode() -> None:
    codes = bytes(range(256))
    back = mulaw_encode(mulaw_decode(codes))
    # 0x7F is "negative zero": it decodes to 0, which encodes as 0xFF (positive zero).
    assert [c for c in range(256) if back[c] != c] == [0x7F]
    assert back[0x7F] == 0xFF


# --- float conversion -----------------------------------------------------------------------------
def test_float_conversion_is_exact_and_in_range() -> None:
    x = pcm16_to_float(pcm(ALL_INT16))
    assert x.dtype == np.float32
    assert x.min() == -1.0
    assert x.max() == pytest.approx(32767 / 32768)
    assert x.max() < 1.0
    assert float_to_pcm16(x) == pcm(ALL_INT16)  # every sample round-trips bit-exactly


def test_float_to_pcm16_clips_then_rounds_without_touching_its_input() -> None:
    x = np.array([2.0, -3.0, 1.0, -1.0, 0.6 / 32768, -0.6 / 32768, 100.4 / 32768], dtype=np.float64)
    before = x.copy()
    assert samples_of(float_to_pcm16(x)).tolist() == [32767, -32768, 32767, -32768, 1, -1, 100]
    assert (x == before).all()


# --- framing --------------------------------------------------------------------------------------
def test_frame_bytes() -> None:
    assert [frame_bytes(r) for r in (8000, 16000, 24000, 22050, 48000)] == [320, 640, 960, 882, 1920]
    assert frame_bytes(16000, 10) == 320
    for bad in [(22050, 10), (0, 20), (16000, 0)]:
        with pytest.raises(ValueError, match=r"whole number|positive"):
            frame_bytes(*bad)


@pytest.mark.parametrize("size", [320, 640, 960, 160])
def test_random_chunks_reassemble_into_exact_frames(size: int) -> None:
    rng = np.random.default_rng(size)
    data = rng.integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    framer = Framer(size)
    frames: list[bytes] = []
    pos = 0
    while pos < len(data):
        n = int(rng.choice([0, 1, 7, size - 1, size, size + 1, 3 * size + 5, int(rng.integers(0, 4000))]))
        frames += framer.push(data[pos : pos + n])
        pos += n
        assert framer.pending == pos % size if pos <= len(data) else True
    assert all(type(f) is bytes and len(f) == size for f in frames)
    tail = framer.flush(pad=False)
    assert b"".join(frames) + (tail or b"") == data
    assert framer.pending == 0


def test_flush_pads_with_zeros_and_clear_drops() -> None:
    framer = Framer(640)
    assert framer.flush() is None
    assert framer.push(b"\x01" * 100) == []
    assert framer.pending == 100
    padded = framer.flush()
    assert padded == b"\x01" * 100 + bytes(540)
    assert framer.flush() is None
    framer.push(b"\x02" * 1000)
    assert framer.flush(pad=False) == b"\x02" * 360
    framer.push(b"\x03" * 10)
    framer.clear()
    assert framer.pending == 0
    assert framer.push(b"\x04" * 640) == [b"\x04" * 640]


def test_frames_do_not_change_when_the_buffer_does() -> None:
    framer = Framer(4)
    framer.push(b"ab")
    first = framer.push(b"cdefgh")
    framer.push(b"ijklmnop")
    assert first == [b"abcd", b"efgh"]
    assert framer.pending == 0


def test_a_large_push_is_linear() -> None:
    size = frame_bytes(16000)
    data = bytes(range(256)) * (600 * 32000 // 256)  # ten minutes of 16 kHz audio in one push
    framer = Framer(size)
    framer.push(b"\x00" * 10)  # unaligned: exercises the buffered path
    start = time.perf_counter()
    frames = framer.push(data)
    elapsed = time.perf_counter() - start
    assert len(frames) == (len(data) + 10) // size
    assert b"".join(frames) == (b"\x00" * 10 + data)[: len(frames) * size]
    # ~20 ms when linear; re-copying the rest of the 19 MB buffer per frame (30000 frames) is ~10 s.
    assert elapsed < 1.0
    assert len(Framer(size).push(speechlike(16000))) == 50


def test_framer_rejects_a_zero_frame_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        Framer(0)
