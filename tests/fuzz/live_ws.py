"""Run one WebSocket fuzz script against a live media host and tell what the host made of it.

After the fuzz frames, each protocol gets a terminator whose answer proves the host read everything
before it and is still in a sane state, so no input has to wait out a timeout:
- ACS: DtmfData `#` (the echo pipeline hangs up: close 1000), then AudioData (before AudioMetadata
  it is out of order: close 1008). Either way the socket closes at once.
- AudioCodes: `connection.validate`, answered with `connection.validated` on a live session.
- browser: `ping` with an id, answered with `pong` carrying it, before or after `start`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from dataclasses import dataclass
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from switchboard.session_models import CallSession
from switchboard.session_store import SessionStore
from switchboard.tokens import Purpose, TokenSigner
from tests.fuzz.report import Outcome, reason_head
from tests.fuzz.scripts import WsScript
from tests.support.media_harness import AUDIOCODES_TOKEN

VERDICT_TIMEOUT_S = 5.0  # every terminator is answered in milliseconds; this long is a hang
PATHS = {"acs": "/api/v1/media/stream", "audiocodes": "/ws", "browser": "/api/v1/realtime/conversation"}
SENTINEL = json.dumps({"kind": "AudioData", "audioData": {"data": base64.b64encode(bytes(640)).decode()}})
HANG_UP = json.dumps({"kind": "DtmfData", "dtmfData": {"data": "#"}})
AUDIOCODES_AUTH = {"valid": f"Bearer {AUDIOCODES_TOKEN}", "wrong": "Bearer not-the-token", "empty": "Bearer ",
                   "basic": "Basic dXNlcjpwYXNz", "garbage": "Bearer \x7f\u00ff" + "z" * 300}


@dataclass
class WsContext:
    port: int
    store: SessionStore


async def _token(script: WsScript, ctx: WsContext) -> str | None:
    """The `?token=` the script asks for, with a session behind it where the variant needs one."""
    purpose = Purpose.MEDIA if script.target == "acs" else Purpose.BROWSER
    call_id = f"fuzz-{script.target}-{script.index}-{uuid.uuid4().hex[:8]}"
    if script.token == "missing":
        return None
    if script.token not in {"forged", "expired", "wrong_purpose", "unknown_call", "valid"}:
        return script.token  # a garbage token, sent as generated
    if script.token != "unknown_call":
        await ctx.store.create(CallSession(call_id=call_id, scenario="banking", current_agent="auth",
                                           caller="+14255550123", callee="+18005550100"))
    if script.token == "forged":
        return TokenSigner("another-secret-0123456789").issue(call_id, purpose, 60)
    if script.token == "expired":
        return ctx.store.signer.issue(call_id, purpose, -1)
    if script.token == "wrong_purpose":
        return ctx.store.issue_token(call_id, Purpose.CALLBACK, 60)
    return ctx.store.issue_token(call_id, purpose, 60)


async def _url_and_headers(script: WsScript, ctx: WsContext) -> tuple[str, dict[str, str]]:
    url = f"ws://127.0.0.1:{ctx.port}{PATHS[script.target]}"
    headers = dict(script.headers)
    if script.target == "audiocodes":
        if script.token in AUDIOCODES_AUTH:
            headers["Authorization"] = AUDIOCODES_AUTH[script.token]
        return url + ("?" + script.query.lstrip("&") if script.query else ""), headers
    token = await _token(script, ctx)
    query = f"token={quote(token, safe='')}" if token is not None else ""
    return f"{url}?{query}{script.query}", headers


def _closed(ws: ClientConnection) -> Outcome:
    code, reason = ws.close_code, ws.close_reason or ""
    if code is None or code == 1006:
        return Outcome("dropped", "no close frame")
    if code == 1011:
        return Outcome("crash", f"1011 {reason}")
    if code == 1000:
        return Outcome("ended", f"1000 {reason_head(reason)}")
    return Outcome("closed", f"{code} {reason_head(reason)}")


async def _verdict(ws: ClientConnection, script: WsScript) -> Outcome:
    """Send the terminator and read until its answer or the close."""
    started = False  # the call opened (metadata accepted is not visible on ACS: its close tells)
    if script.target == "acs":
        for message in (HANG_UP, SENTINEL):
            with contextlib.suppress(ConnectionClosed):
                await ws.send(message)
    elif script.target == "audiocodes":
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"type": "connection.validate"}))
    else:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"type": "ping", "id": f"fuzz-end-{script.index}"}))
    try:
        async with asyncio.timeout(VERDICT_TIMEOUT_S):
            async for raw in ws:
                if isinstance(raw, bytes):
                    continue  # echoed audio (browser)
                doc = json.loads(raw)
                kind = doc.get("type") if isinstance(doc, dict) else None
                started = started or kind in ("ready", "session.accepted")
                if kind == "connection.validated" or (kind == "pong" and doc.get("id") == f"fuzz-end-{script.index}"):
                    return Outcome("accepted", "in call" if started else "waiting for the call to start")
    except TimeoutError:
        return Outcome("hang", f"no answer to the terminator within {VERDICT_TIMEOUT_S:g} s")
    except ConnectionClosed:
        pass
    outcome = _closed(ws)
    if script.target == "acs" and outcome.label == "ended 1000 call ended":
        return Outcome("accepted", "in call (hung up with #)")
    return outcome


async def run_script(script: WsScript, ctx: WsContext) -> Outcome:
    url, headers = await _url_and_headers(script, ctx)
    try:
        ws = await connect(url, additional_headers=headers, max_size=None, compression=None, open_timeout=5,
                           close_timeout=2, ping_interval=None, user_agent_header=None)
    except InvalidStatus as exc:
        response = exc.response
        try:
            body = json.loads(response.body or b"{}")
            detail = f"{body.get('error')}: {reason_head(str(body.get('detail', '')))}"
        except ValueError:
            detail = (response.body or b"")[:60].decode(errors="replace").strip()
        kind = "crash" if response.status_code >= 500 and response.status_code != 503 else "refused"
        return Outcome(kind, f"{response.status_code} {detail}")
    except (InvalidHandshake, OSError, TimeoutError) as exc:  # the host answered with no HTTP at all
        return Outcome("dropped", type(exc).__name__)
    try:
        for message in script.frames:
            await ws.send(message)
        if script.ending == "abort":
            ws.transport.abort()
            return Outcome("left", "aborted the connection")
        if script.ending == "close":
            await ws.close()
            return Outcome("left", "closed first")
        return await _verdict(ws, script)
    except ConnectionClosed:
        return _closed(ws) if script.ending == "verdict" else Outcome("left", "closed by host first")
    finally:
        with contextlib.suppress(Exception):
            await ws.close()
