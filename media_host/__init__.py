"""The always-on media host: transports, pipelines and engines for the real-time audio.

The life of a frame (the caller's audio in, the agent's audio out):

1. socket    server.py routes the WebSocket upgrade by path to a transport adapter; runner.py's
             reader hands it each message.
2. adapter   transports/{acs,audiocodes,browser}.py parse the message into typed models
             (*_models.py) and decode its audio to wire-rate PCM16.
3. channel   channel.py (CallChannel.feed_audio) resamples to the pipeline's rate, cuts 20 ms frames
             and queues them (bounded); events (DTMF, hang-up) go into the same queue.
4. pipeline  pipelines/{cascade,realtime}/pipeline.py or pipelines/echo.py take them (CallChannel.receive).
5. engines   cascade: VAD, speech-to-text and chat (engines/, pipelines/cascade/responder.py), then
             text-to-speech (pipelines/cascade/speaker.py); realtime: the Realtime service over
             pipelines/realtime/link.py.
6. channel   channel.py (CallChannel.play) resamples the agent's audio to the wire rate and frames it.
7. playout   playout.py (PlayoutQueue) releases each frame when due, at real time with a small lead,
             and knows what the caller has heard.
8. socket    runner.py's audio sender (CallChannel.next_audio) passes each frame to the adapter's
             send_audio, which encodes it for the wire.

A pipeline or transport touches the call only through CallChannel (channel.py): its docstring lists
what each side may use.
"""
