"""A tiny Chrome DevTools Protocol client for browser tests: headless Chromium and one page, over `websockets`.

`Chromium(...)` starts the browser in its own process group with a temporary profile and
`--remote-debugging-port=0`, reads the port from the profile's DevToolsActivePort file and connects to
the browser's endpoint. `await browser.new_page()` opens a tab and attaches to it (flattened sessions,
so one socket carries everything). A `Page` navigates, evaluates JavaScript, waits for a condition on
the DOM (a MutationObserver in the page: no polling from here), takes screenshots, and collects every
JavaScript exception and console/log error in `page.errors`. Leaving the context closes the browser,
kills what is left of its process group and deletes the profile.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

CHROMIUM_NAMES = ("chromium", "chromium-browser")
START_TIMEOUT_S = 30.0


def find_chromium() -> str | None:
    """The Chromium binary on PATH (Debian's `chromium` package; `make chromium` installs it), or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class CdpError(RuntimeError):
    pass


class Chromium:
    def __init__(self, binary: str, extra_args: list[str] | None = None, *, width: int = 1280,
                 height: int = 900) -> None:
        self.binary = binary
        self.extra_args = extra_args or []
        self.size = (width, height)
        self.profile = Path(tempfile.mkdtemp(prefix="sb-chromium-"))
        self.process: asyncio.subprocess.Process | None = None
        self.ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._sessions: dict[str, Page] = {}
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Chromium:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def _start(self) -> None:
        args = [self.binary, "--headless", f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--password-store=basic", "--use-mock-keychain", f"--window-size={self.size[0]},{self.size[1]}",
                *(["--no-sandbox"] if os.geteuid() == 0 else []), *self.extra_args, "about:blank"]
        log = (self.profile / "chromium.log").open("wb")
        with log:
            self.process = await asyncio.create_subprocess_exec(
                *args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)  # its own process group: killed as a whole
        port_file = self.profile / "DevToolsActivePort"
        async with asyncio.timeout(START_TIMEOUT_S):
            while not _complete(port_file):  # written once the debugging port is open
                if self.process.returncode is not None:
                    raise CdpError(f"chromium exited with {self.process.returncode}: {self.log_tail()}")
                await asyncio.sleep(0.05)
        port, path = port_file.read_text().split()[:2]
        self.ws = await connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=10)
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")

    def log_tail(self, lines: int = 20) -> str:
        log = self.profile / "chromium.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    async def send(self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None,
                   within: float = 30.0) -> dict[str, Any]:
        if self.ws is None:
            raise CdpError("not connected")
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = answer
        try:
            await self.ws.send(json.dumps(message))
            async with asyncio.timeout(within):
                return await answer
        finally:
            self._pending.pop(message_id, None)

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if "id" in message:
                    answer = self._pending.get(message["id"])
                    if answer is not None and not answer.done():
                        if "error" in message:
                            answer.set_exception(CdpError(f"{message['error']}"))
                        else:
                            answer.set_result(message.get("result", {}))
                elif (page := self._sessions.get(message.get("sessionId", ""))) is not None:
                    page.on_event(message["method"], message.get("params", {}))
        finally:
            for answer in self._pending.values():
                if not answer.done():
                    answer.set_exception(CdpError("the browser connection closed"))

    async def new_page(self) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        self._sessions[page.session_id] = page
        for domain in ("Page", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        await page.send("Emulation.setDeviceMetricsOverride", {"width": self.size[0], "height": self.size[1],
                                                               "deviceScaleFactor": 1, "mobile": False})
        return page

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self.send("Browser.close")
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self.process is not None:
            await _stop_group(self.process)
        shutil.rmtree(self.profile, ignore_errors=True)


def _complete(port_file: Path) -> bool:
    try:
        return len(port_file.read_text().split()) >= 2
    except OSError:
        return False


async def _stop_group(process: asyncio.subprocess.Process) -> None:
    """End the browser and every helper process it started (its own process group), then reap it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await process.wait()
                while _group_alive(process.pid):  # helpers (zygote, renderers) exit just after the browser
                    await asyncio.sleep(0.05)
                return
    await process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class Page:
    def __init__(self, browser: Chromium, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id
        self.errors: list[str] = []  # JavaScript exceptions and console/log errors, as they happen
        self.console: list[str] = []  # every console message, for diagnosis
        self._loaded = asyncio.Event()

    async def send(self, method: str, params: dict[str, Any] | None = None, within: float = 30.0) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session_id, within)

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Page.loadEventFired":
            self._loaded.set()
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            description = details.get("exception", {}).get("description") or details.get("text", "")
            self.errors.append(f"exception: {description} ({details.get('url', '')}:{details.get('lineNumber')})")
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append(f"{params['type']}: {text}")
            if params["type"] in ("error", "assert"):
                self.errors.append(f"console.{params['type']}: {text}")
        elif method == "Log.entryAdded":
            entry = params["entry"]
            self.console.append(f"log {entry['level']}: {entry['text']} {entry.get('url', '')}")
            if entry["level"] == "error":
                self.errors.append(f"log: {entry['text']} {entry.get('url', '')}".strip())

    async def navigate(self, url: str, within: float = 15.0) -> None:
        self._loaded.clear()
        answer = await self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise CdpError(f"navigation to {url} failed: {answer['errorText']}")
        async with asyncio.timeout(within):
            await self._loaded.wait()

    async def evaluate(self, expression: str, *, await_promise: bool = False, user_gesture: bool = False,
                       within: float = 30.0) -> Any:
        """The expression's value (JSON-able values only); a thrown exception becomes CdpError."""
        answer = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                      "awaitPromise": await_promise, "userGesture": user_gesture},
                                 within=within)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise CdpError(details.get("exception", {}).get("description") or details.get("text", "error"))
        return answer["result"].get("value")

    async def wait_for(self, condition: str, within: float) -> Any:
        """Wait until the JavaScript expression `condition` is truthy, re-checked on every DOM change."""
        script = f"""new Promise((resolve) => {{
            const check = () => {{
                let value;
                try {{ value = ({condition}); }} catch (e) {{ value = undefined; }}
                if (value) {{ observer.disconnect(); resolve(value); }}
            }};
            const observer = new MutationObserver(check);
            observer.observe(document, {{subtree: true, childList: true, characterData: true, attributes: true}});
            check();
        }})"""
        try:
            return await self.evaluate(script, await_promise=True, within=within)
        except TimeoutError:
            raise AssertionError(f"not true within {within} s: {condition}") from None

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})
        await asyncio.to_thread(_write, path, base64.b64decode(shot["data"]))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
