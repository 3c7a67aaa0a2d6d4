"""When the Realtime service cannot be reached: the call carries on on the cascade engines, on the same channel.

The link gives up after a drop once its reconnect attempts fail (or at REALTIME_RECONNECT_DEADLINE_SECONDS: a
connect may hang), or at the start of the call after one retry within 3 s (pipeline.py `START_RETRIES`: a caller
just answered is not kept waiting through the whole backoff). With cascade engines in the host
(media_host/pipelines/factory.py), the cascade takes the call for the rest of it, with the same Conversation:
the transcript, the current agent, the tools' calls and results (realtime/turns.py `Journal.note`), their state
and the customer if verified. The channel is retuned to the cascade's rates.

A call under way: whatever the caller said that no socket turned into a transcript (the link's kept audio, and
what queued in the channel during the handover) is the start of the caller's turn there, from just before their
first speech; the caller hears `replies.degraded` (Conversation.degraded_apology), then the answer their last
words still need (Conversation.unanswered: the holding phrase is no answer, and it is taken off the history so
the model sees the question last). A call the service never answered at its start simply starts on the cascade
(its greeting, or a resumed call's apology). Either way: a `pipeline_fallback` event and the fallbacks metric.

A host without cascade engines (none installed or configured: it says so at start) hands the call to a person
instead, or ends it: `hand_to_a_person`.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from media_host.audio import frame_bytes, resample
from media_host.channel import CallChannel
from media_host.events import HangUp, Transfer
from media_host.metrics import Counter
from media_host.pipelines.cascade import CascadePipeline
from media_host.pipelines.cascade.conversation import Conversation
from media_host.pipelines.realtime.holding import LOUD
from media_host.pipelines.realtime.link import FRAME_BYTES, PREROLL_FRAMES
from media_host.pipelines.realtime.protocol import SAMPLE_RATE

log = logging.getLogger(__name__)

AT_START = "unreachable_at_start"  # the reasons, as the event and the metric give them
RECONNECT_FAILED = "reconnect_failed"
UNAVAILABLE = "realtime service unavailable"


def fallbacks_counter() -> Counter:
    return Counter("switchboard_pipeline_fallbacks_total",
                   "Calls that went on on another pipeline, by the pipeline left, the one taken and why")


def caller_speech(audio: bytes) -> bytes:
    """`audio` (PCM16, 24 kHz) from just before the caller's first speech in it; empty if they said nothing."""
    frames = len(audio) // FRAME_BYTES
    if frames == 0:
        return b""
    samples = np.frombuffer(audio, dtype="<i2", count=frames * FRAME_BYTES // 2).astype(np.int32)
    loud = np.flatnonzero(np.abs(samples).reshape(frames, -1).mean(axis=1) > LOUD)
    if not loud.size:
        return b""
    return audio[max(0, int(loud[0]) - PREROLL_FRAMES) * FRAME_BYTES:frames * FRAME_BYTES]


def _frames(pcm: bytes, rate: int) -> list[bytes]:
    size = frame_bytes(rate)
    return [pcm[i:i + size] for i in range(0, len(pcm) - size + 1, size)]


async def continue_on_cascade(cascade: CascadePipeline, call: CallChannel, conv: Conversation, *, reason: str,
                              unheard: bytes, fallbacks: Counter) -> None:
    """The rest of the call on `cascade`. `unheard`: the caller audio (24 kHz) the link kept."""
    queued = call.retune(cascade.inbound_rate, cascade.outbound_rate)
    under_way = reason != AT_START
    frames: list[bytes] = []
    speech = caller_speech(unheard + b"".join(queued)) if under_way else b""
    if speech:
        frames = _frames(await asyncio.to_thread(resample, speech, SAMPLE_RATE, call.inbound_rate), call.inbound_rate)
    holding = conv.holding_phrase()
    while conv.history and conv.history[-1].role == "assistant" and conv.history[-1].content == holding:
        conv.history.pop()
    log.warning("realtime: the call goes on on the cascade", extra={"reason": reason, "unheard_ms": len(frames) * 20})
    fallbacks.inc(from_pipeline="realtime", to_pipeline="cascade", reason=reason)
    await conv.record_event("pipeline_fallback", reason=reason, unheard_ms=len(frames) * 20,
                            **{"from": "realtime", "to": "cascade"})
    await cascade.take_over(call, conv, conv.degraded_apology() if under_way else None, frames)


async def hand_to_a_person(call: CallChannel, conv: Conversation) -> bool:
    """A host without cascade engines: once what plays is heard, the call goes to the scenario's human number,
    or ends if it has none. False if it ends."""
    log.error("realtime service unreachable; handing the call to a person")
    await conv.record_event("realtime_unavailable")
    await call.wait_for_playout()
    target = conv.scenario.spec.policy.human_queue
    if target:
        await conv.record_event("transfer", target=target, reason=UNAVAILABLE)
        call.send(Transfer(target, UNAVAILABLE))
        return True
    await conv.record_event("hangup", reason=UNAVAILABLE)
    call.send(HangUp(UNAVAILABLE))
    return False
