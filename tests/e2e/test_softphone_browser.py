"""The browser softphone page (media_host/static) in headless Chromium, against a real media host.

The host runs the embedded cascade (silero VAD, Whisper, the offline brain, hibari) behind the browser
transport. Chromium's fake microphone plays a WAV made here with the embedded TTS: silence while the
agent greets, then the caller's line. The test clicks Call, waits for the greeting in the transcript,
for the caller's line, the tool calls, the handoff to the cards agent and its answer, and the turn's
latency waterfall, hangs up, and checks that the page threw no JavaScript error. A screenshot of the
page is left in out/softphone.png.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import time
import wave
from pathlib import Path

import pytest

from agents.schema import Voice
from media_host.audio import resample
from media_host.channel import CallInfo
from media_host.engines.base import Engines
from media_host.pipelines import Pipeline
from media_host.pipelines.cascade import CascadePipeline
from media_host.softphone import STATIC_DIR
from media_host.transports.browser import BrowserAdapter, register_routes
from tests.support.cdp import Chromium, Page, find_chromium
from tests.support.media_harness import running_host

pytestmark = pytest.mark.slow

SCREENSHOT = Path(__file__).resolve().parents[2] / "out" / "softphone.png"
WAV_RATE = 16000
# The banking greeting, as long as it is spoken ("Good morning/afternoon/evening, ..."): the fake
# microphone stays silent for that long (plus a margin) so the caller does not interrupt it.
GREETING = ("Good afternoon, and thank you for calling Contoso Bank. To get started, please tell me your "
            "account number and your date of birth.")
# One line that needs verification first: the agent verifies, then hands the call to the cards agent.
CALLER_LINE = "I lost my card. My account number is 4567 and my date of birth is March third, 1980."
MARGIN_S = 2.0


async def speak(engines: Engines, text: str) -> bytes:
    """`text` in the embedded voice, as PCM16 mono at WAV_RATE."""
    chunks = [chunk async for chunk in engines.tts.synthesize(text, Voice(embedded="af_heart"), "en-US")]
    return resample(b"".join(chunks), engines.tts.sample_rate, WAV_RATE)


def seconds(pcm: bytes) -> float:
    return len(pcm) / 2 / WAV_RATE


async def microphone_wav(engines: Engines, path: Path) -> Path:
    """What the fake microphone plays: silence through the greeting, the caller's line, then silence."""
    greeting, line = await speak(engines, GREETING), await speak(engines, CALLER_LINE)
    lead = bytes(2 * int((seconds(greeting) + MARGIN_S) * WAV_RATE))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(WAV_RATE)
        wav.writeframes(lead + line + bytes(2 * 3 * WAV_RATE))
    return path


def texts(selector: str) -> str:
    """JavaScript: the texts of the transcript entries matching `selector`, as a JSON-able list."""
    return f"[...document.querySelectorAll({json.dumps(selector)})].map((e) => e.textContent)"


async def page_state(page: Page) -> str:
    return str(await page.evaluate("document.body.innerText"))


async def test_softphone_page_calls_the_banking_agent(redis_url: str, engines: Engines, tmp_path: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("SKIPPED: chromium is not installed; run `make chromium` (apt-get install chromium) "
                    "to test the softphone page in a browser")
    wav = await microphone_wav(engines, tmp_path / "caller.wav")

    def pipelines(_info: CallInfo) -> Pipeline:
        return CascadePipeline(engines, host.control_plane)

    started = time.monotonic()
    async with running_host(redis_url, adapters=[BrowserAdapter], pipelines=pipelines,
                            default_scenario="banking") as host:
        register_routes(host)
        flags = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={wav}%noloop", "--autoplay-policy=no-user-gesture-required",
                 "--mute-audio"]
        async with Chromium(chromium, flags) as browser:
            page = await browser.new_page()
            try:
                await page.navigate(f"http://127.0.0.1:{host.port}/")
                await page.wait_for("document.querySelector('#scenario option[value=banking]')", within=10)
                await page.evaluate("document.getElementById('scenario').value = 'banking'")
                await page.evaluate("document.getElementById('call').click()", user_gesture=True)
                await page.wait_for("document.body.dataset.state === 'in-call'", within=15)

                greeting = await page.wait_for(
                    f"{texts('.entry.agent .text')}.find((t) => t.includes('thank you for calling Contoso Bank'))",
                    within=25)
                assert "account number" in greeting
                caller = await page.wait_for(f"{texts('.entry.caller:not(.hypothesis) .text')}[0]", within=25)
                assert "4567" in caller.replace(",", ""), caller
                for tool in ("verify_customer", "handoff_to_cards"):
                    await page.wait_for(f"{texts('.entry.tool .text')}.find((t) => t.startsWith('{tool} ok'))",
                                        within=10)
                await page.wait_for(f"{texts('.entry.handoff .text')}.find((t) => t.includes('auth → cards agent'))",
                                    within=10)
                cards = await page.wait_for(f"{texts('.entry.agent')}.find((t) => t.includes('cards'))", within=20)
                assert "Ada" in cards, cards
                turn = await page.wait_for(f"{texts('.turn figcaption strong')}.find((t) => t === 'Turn 1')",
                                           within=10)
                assert turn == "Turn 1"
                stages = await page.evaluate(
                    "[...document.querySelectorAll('.turn')].find((t) => t.textContent.includes('Turn 1'))"
                    ".querySelectorAll('.row').length")
                assert stages >= 3, await page_state(page)
                assert await page.evaluate("document.getElementById('error').hidden"), await page_state(page)
                await page.screenshot(SCREENSHOT)

                await page.evaluate("document.getElementById('call').click()", user_gesture=True)
                status = await page.wait_for("document.body.dataset.state === 'ended' && "
                                             "document.getElementById('status').textContent", within=10)
                assert status == "Call ended: you hung up", status
            except BaseException:
                with contextlib.suppress(Exception):
                    await page.screenshot(SCREENSHOT.with_name("softphone-failed.png"))
                    print("page:", await page_state(page), "console:", *page.console, "errors:", *page.errors,
                          sep="\n")
                raise
            assert page.errors == [], page.errors
    print(f"softphone call took {time.monotonic() - started:.1f} s; screenshot: {SCREENSHOT}")


def get(port: int, path: str, method: str = "GET",
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One blocking request, the path sent exactly as given (no normalising of `..`)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


async def test_the_page_its_files_and_nothing_else_are_served(redis_url: str) -> None:
    async with running_host(redis_url, adapters=[BrowserAdapter], default_scenario="banking") as host:
        port = host.port
        assert port is not None

        async def fetch(path: str, method: str = "GET",
                        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
            return await asyncio.to_thread(get, port, path, method, headers)

        status, headers, body = await fetch("/")
        assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
        assert b'src="/static/softphone.js"' in body
        assert "connect-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-cache"
        assert (await fetch("/static/index.html"))[2] == body
        for name, kind in [("softphone.js", "text/javascript"), ("audio.js", "text/javascript"),
                           ("view.js", "text/javascript"), ("worklet.js", "text/javascript"),
                           ("dsp.js", "text/javascript"), ("softphone.css", "text/css")]:
            status, headers, body = await fetch(f"/static/{name}")
            assert (status, headers["Content-Type"]) == (200, f"{kind}; charset=utf-8"), name
            assert headers["Cache-Control"] == "public, max-age=60"
            assert body == await asyncio.to_thread((STATIC_DIR / name).read_bytes)
            again = await fetch(f"/static/{name}", headers={"If-None-Match": headers["ETag"]})
            assert (again[0], again[2]) == (304, b"")

        # Only the directory's plain files: no traversal, no directory listing, no guessing.
        for path in ("/static/", "/static", "/static/../server.py", "/static/%2e%2e/server.py",
                     "/static/..%2fserver.py", "/static//etc/passwd", "/static/softphone.js/",
                     "/static/nope.js", "/static/.hidden", "/index.html", "/softphone.js", "/static/__init__.py",
                     "/static/../../pyproject.toml"):
            status, _headers, body = await fetch(path)
            assert status == 404, (path, status, body[:80])
        assert (await fetch("/", method="POST"))[0] == 405
        assert (await fetch("/static/softphone.js", method="DELETE"))[0] == 405

        status, headers, body = await fetch("/api/v1/realtime/scenarios")
        assert status == 200
        listed = json.loads(body)
        assert listed["default"] == "banking"
        assert listed["scenarios"][0] == {"name": "banking", "agent": "auth"}
        assert {s["name"] for s in listed["scenarios"]} == set(host.agents.current.scenarios)


# The page's own audio conversions (static/dsp.js), run in the browser on synthetic tones.
DSP_CHECK = """(async () => {
  const { FrameEncoder, Player } = await import("/static/dsp.js");
  const tone = (hz, rate, n) => Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin(2 * Math.PI * hz * i / rate));
  const rms = (a) => Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length);
  const encode = (hz, rate) => {
    const encoder = new FrameEncoder(rate, 16000, 20);
    const frames = [];
    const input = tone(hz, rate, rate);
    const keep = (pcm) => frames.push(new Int16Array(pcm));
    for (let i = 0; i < input.length; i += 128) encoder.push(input.subarray(i, i + 128), keep);
    const all = Float32Array.from(frames.flatMap((f) => [...f]), (x) => x / 32768);
    return { frames: frames.length, sizes: [...new Set(frames.map((f) => f.length))], rms: rms(all.subarray(320)) };
  };
  const capture = {};
  for (const rate of [48000, 44100, 16000]) capture[rate] = { pass: encode(1000, rate), stop: encode(12000, rate) };

  const player = new Player(16000, 48000, 60);
  const pcm = (ms) => Int16Array.from(tone(1000, 16000, 16 * ms), (x) => Math.round(x * 32767)).buffer;
  const out = new Float32Array(128);
  player.enqueue(pcm(20)); player.enqueue(pcm(20));
  const early = player.render(out) || out.some((x) => x !== 0);  // 40 ms < the 60 ms jitter buffer
  player.enqueue(pcm(960));
  const played = [];
  for (let i = 0; i < 300; i++) { player.render(out); played.push(...out); }
  let jump = 0;
  for (let i = 1; i < played.length; i++) jump = Math.max(jump, Math.abs(played[i] - played[i - 1]));
  player.flush();
  const afterFlush = player.render(out) || out.some((x) => x !== 0);
  return { capture, early, playedRms: rms(Float32Array.from(played)), jump, afterFlush };
})()"""


async def test_the_pages_audio_conversions_in_chromium(redis_url: str) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("SKIPPED: chromium is not installed; run `make chromium` (apt-get install chromium)")
    async with running_host(redis_url, adapters=[BrowserAdapter]) as host, Chromium(chromium) as browser:
        page = await browser.new_page()
        await page.navigate(f"http://127.0.0.1:{host.port}/")
        result = await page.evaluate(DSP_CHECK, await_promise=True)
        assert page.errors == [], page.errors
    tone_rms = 0.5 / 2**0.5
    for rate, check in result["capture"].items():
        # One second in: 50 frames of 20 ms at 16 kHz (the last may still be filling), level kept, and a
        # tone above 8 kHz filtered out rather than folded back into the band.
        assert check["pass"]["frames"] in (49, 50), (rate, check)
        assert check["pass"]["sizes"] == [320], (rate, check)
        assert abs(check["pass"]["rms"] - tone_rms) < 0.02 * tone_rms, (rate, check)
        if rate != "16000":
            assert check["stop"]["rms"] < 0.02 * tone_rms, (rate, check)
    assert result["early"] is False  # nothing plays before the jitter buffer holds 60 ms
    assert abs(result["playedRms"] - tone_rms) < 0.03 * tone_rms, result
    assert result["jump"] < 0.08, result  # gap-free: no step larger than the tone's own slope (0.065)
    assert result["afterFlush"] is False  # barge-in: silence right after the flush
