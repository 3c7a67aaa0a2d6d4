"""SSML for one sentence in an agent's Azure voice: name, speaking style and rate.

    <speak version="1.0" xmlns="http://www.w3.org/2001/10/synthesis"
           xmlns:mstts="https://www.w3.org/2001/mstts" xml:lang="en-US">
      <voice name="en-US-AvaMultilingualNeural">
        <mstts:express-as style="cheerful"><prosody rate="+10%">Hello!</prosody></mstts:express-as>
      </voice>
    </speak>

The text comes from a chat model, so it is escaped: "<", "&" and quotes are read out, not parsed.
`express-as` and `prosody` appear only when the voice sets a style or a rate (a voice without the
style ignores it; the service does not fail). `xml:lang` is the agent's locale: multilingual voices
also take the language from the text itself.
"""

from __future__ import annotations

import re
from typing import Final
from xml.sax.saxutils import escape, quoteattr

from agents.schema import Voice

SSML_NS: Final = "http://www.w3.org/2001/10/synthesis"
MSTTS_NS: Final = "https://www.w3.org/2001/mstts"
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_STYLE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_RATE = re.compile(r"^[+-]?\d{1,3}%$")
# Control characters are not allowed in XML 1.0 (the service rejects the document); tab, LF and CR are.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def build_ssml(text: str, voice: Voice, locale: str) -> str:
    """The SSML document that speaks `text` with `voice` (its `azure` name, `style`, `rate`)."""
    if not _LOCALE.match(locale):
        raise ValueError(f"not a locale: {locale!r}")
    if voice.style is not None and not _STYLE.match(voice.style):
        raise ValueError(f"not a speaking style: {voice.style!r}")
    if voice.rate is not None and not _RATE.match(voice.rate):
        raise ValueError(f"speaking rate must look like +10% or -5%, not {voice.rate!r}")
    body = escape(_CONTROL.sub(" ", text), {'"': "&quot;", "'": "&apos;"})
    if voice.rate:
        body = f"<prosody rate={quoteattr(voice.rate)}>{body}</prosody>"
    if voice.style:
        body = f"<mstts:express-as style={quoteattr(voice.style)}>{body}</mstts:express-as>"
    return (f'<speak version="1.0" xmlns="{SSML_NS}" xmlns:mstts="{MSTTS_NS}" xml:lang={quoteattr(locale)}>'
            f"<voice name={quoteattr(voice.azure)}>{body}</voice></speak>")
