"""Simulated callers, one client per transport, for the local stack, the benchmarks and the tests.

- speech.py     the caller's voice: speech queued and sent in 20 ms frames at real-time pace (Pacer)
- socket.py     what every client does with its socket: connect with headers, read, close codes, waits
- live.py       a caller on a live line: paced speech out, agent audio timed in, waits on the agent
- scripted.py   a scripted caller over a live line: Line, ScriptedCaller, the telephone-band voice
- acs.py        the ACS media wire (builders and the app's replies); acs_client.py: a test's raw ACS
                socket; acs_caller.py: the local ACS caller (AcsMediaClient, as the call's options ask)
- audiocodes.py the VAIC Bot API wire and the rules bot messages are held to; audiocodes_client.py: a
                test's VAIC; audiocodes_caller.py: a live caller on the Bot API
- browser.py    the browser softphone protocol (docs/browser-protocol.md)

Nothing deployed imports this package. bench/media_clients.py keeps its own raw socket loop (hundreds of
calls per process) but builds its messages with acs.py and audiocodes.py.
"""
