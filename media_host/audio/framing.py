"""Cutting a byte stream of audio into fixed-size frames (20 ms telephone frames)."""

from __future__ import annotations


def frame_bytes(sample_rate: int, frame_ms: int = 20) -> int:
    """Bytes in one frame of PCM16 mono: 320 at 8 kHz, 640 at 16 kHz, 960 at 24 kHz (20 ms)."""
    if sample_rate <= 0 or frame_ms <= 0:
        raise ValueError(f"sample rate and frame length must be positive, not {sample_rate} Hz, {frame_ms} ms")
    samples, rest = divmod(sample_rate * frame_ms, 1000)
    if rest:
        # A fractional sample per frame would make frames drift in length; refuse it outright.
        raise ValueError(f"{frame_ms} ms at {sample_rate} Hz is not a whole number of samples")
    return samples * 2


class Framer:
    """Re-chunks audio of any length into frames of exactly `frame_size` bytes.

    The remainder waits in a bytearray for the next push. Each byte is copied at most twice (into
    the buffer, out into its frame), so a 1 s push from a TTS engine costs the same per byte as a
    stream of 20 ms pushes; nothing is re-copied per frame.
    """

    __slots__ = ("_buf", "_frame_size")

    def __init__(self, frame_size: int) -> None:
        if frame_size <= 0:
            raise ValueError(f"frame size must be positive, not {frame_size}")
        self._frame_size = frame_size
        self._buf = bytearray()

    @property
    def frame_size(self) -> int:
        return self._frame_size

    @property
    def pending(self) -> int:
        """Bytes buffered, short of a full frame."""
        return len(self._buf)

    def push(self, data: bytes) -> list[bytes]:
        """Add audio; return the complete frames now available (possibly none)."""
        size = self._frame_size
        buf = self._buf
        if not buf:
            if len(data) == size and type(data) is bytes:
                return [data]  # the common aligned case: no copy at all
            src: bytes | bytearray = data  # slice frames straight from the input
        else:
            buf += data
            src = buf
        end = len(src) - len(src) % size
        with memoryview(src) as view:
            # memoryview slices are zero-copy; tobytes() is the one copy into each frame.
            frames = [view[i : i + size].tobytes() for i in range(0, end, size)]
            if src is data:
                buf += view[end:]
        if src is buf:
            # Outside the `with`: a bytearray cannot be resized while a view is exported. CPython
            # deletes from the front of a bytearray by moving its start pointer (no full copy).
            del buf[:end]
        return frames

    def flush(self, pad: bool = True) -> bytes | None:
        """Return the buffered remainder (zero-padded to a full frame unless pad=False), or None."""
        if not self._buf:
            return None
        if pad:
            self._buf += bytes(self._frame_size - len(self._buf))
        out = bytes(self._buf)
        self._buf.clear()
        return out

    def clear(self) -> None:
        """Drop the buffered remainder (e.g. on barge-in)."""
        self._buf.clear()
