"""The Realtime session of one call: configured for the current agent, switched at a handoff, given
back after a reconnect, and how the model is told to say something word for word.

A session keeps its voice once assistant audio exists in it, or the service may refuse the change:
then the new agent's configuration is applied without it and the caller keeps hearing the same voice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import replace

from media_host.pipelines.cascade.conversation import Conversation
from media_host.pipelines.realtime.link import Event, RealtimeLink
from media_host.pipelines.realtime.protocol import BY_MODEL_NAME, Dialect, ServerError, SessionConfig, Transcription
from media_host.pipelines.realtime.turns import Journal

RESTORED_TURNS = 40  # the most recent text turns given back to a new session
APOLOGY = ("The line to you dropped for a moment. Apologise briefly for the interruption in one short sentence, "
           "then continue where the conversation left off.")


class SessionControl:
    def __init__(self, conv: Conversation, dialect: Dialect, link: RealtimeLink, journal: Journal,
                 transcription: Transcription = BY_MODEL_NAME) -> None:
        self.conv, self.dialect, self.link, self.journal = conv, dialect, link, journal
        self.transcription = transcription
        self.voice = conv.agent.spec.realtime.voice  # the voice the session speaks with
        self.voice_change: tuple[str, str, SessionConfig] | None = None  # (event_id, previous voice, config)
        self.ids = itertools.count(1)

    def config(self) -> SessionConfig:
        return SessionConfig.for_agent(self.conv.agent, self.conv.variables(), self.transcription)

    @property
    def transcribes(self) -> bool:
        """The session transcribes the caller (a transcript follows each caller turn)."""
        return self.transcription.model(self.conv.agent.spec.realtime.transcription_model) is not None

    def instructions(self, then: str) -> str:
        """Per-response instructions replace the session's: the agent's prompt, then what to do now."""
        return f"{self.conv.agent.render_prompt(self.conv.variables())}\n\n{then}"

    def say(self, text: str, preface: str = "") -> None:
        """Have the model speak `text` word for word (greeting, apologies)."""
        self.link.send(self.dialect.response_create(self.instructions(
            f"{preface}Say exactly this to the caller, word for word, and nothing else: \"{text}\"")))

    def resume(self) -> None:
        """The call is back on a new socket (a media host restarted): the agent's apology word for word, then an
        answer if the caller's last words had none."""
        then = ("Then answer the caller's last words." if self.conv.unanswered()
                else "Then stop and let the caller speak.")
        self.link.send(self.dialect.response_create(self.instructions(
            f"The line to the caller dropped and is back. Say exactly this to the caller, word for word: "
            f"\"{self.conv.apology()}\" {then}")))

    def template(self, name: str, default: str) -> str:
        return self.conv.reply(name, default)

    async def restore(self, reconnect: bool, apologise: bool = True) -> list[Event]:
        """What a new socket is sent first: the session, the conversation so far, and after a drop an apology
        (not when the caller's own words are replayed next: the model answers them instead)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self.journal.idle()
        config = self.config()
        if reconnect:
            config = replace(config, voice=self.voice)  # the caller keeps hearing the same voice
        self.voice, self.voice_change = config.voice, None
        events = [self.dialect.session_update(config)]
        history = [m for m in self.conv.history if m.role in ("user", "assistant") and m.content]
        events += [self.dialect.message(m.role, m.content) for m in history[-RESTORED_TURNS:]]
        if reconnect and apologise:
            events.append(self.dialect.response_create(self.instructions(APOLOGY)))
        return events

    def switch(self) -> SessionConfig:
        """The agent changed: new instructions, tools, turn detection and (if the server allows) voice."""
        config = self.config()
        event_id = f"sw_session_{next(self.ids)}"
        if config.voice != self.voice:
            self.voice_change = (event_id, self.voice, config)
            self.voice = config.voice
        self.link.send(self.dialect.session_update(config, event_id=event_id))
        return config

    def on_updated(self, event: Event) -> None:
        session = event.get("session") or {}
        voice = session.get("voice") or (((session.get("audio") or {}).get("output") or {}).get("voice"))
        if self.voice_change is not None and voice == self.voice_change[2].voice:
            self.voice_change = None

    def voice_refused(self, error: ServerError) -> tuple[str, str] | None:
        """If `error` refuses the voice change just asked for, apply the rest with the voice kept.
        Returns (the voice kept, the one refused)."""
        change = self.voice_change
        if change is None or not error.refuses_voice or error.event_id not in (None, "", change[0]):
            return None
        _, previous, config = change
        self.voice_change, self.voice = None, previous
        self.link.send(self.dialect.session_update(replace(config, voice=previous), with_voice=False))
        return previous, config.voice
