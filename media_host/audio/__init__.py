"""Audio utilities of the media host: PCM16 LE mono `bytes` in and out, cheap per 20 ms frame."""

from media_host.audio.codecs import float_to_pcm16, mulaw_decode, mulaw_encode, pcm16_to_float
from media_host.audio.framing import Framer, frame_bytes
from media_host.audio.resample import QUALITIES, SUPPORTED_RATES, StreamResampler, resample

__all__ = [
    "QUALITIES",
    "SUPPORTED_RATES",
    "Framer",
    "StreamResampler",
    "float_to_pcm16",
    "frame_bytes",
    "mulaw_decode",
    "mulaw_encode",
    "pcm16_to_float",
    "resample",
]
