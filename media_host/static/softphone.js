// The softphone: get a call from the media host, open its WebSocket, stream the microphone, play the
// agent and show what happens. The protocol is docs/browser-protocol.md; audio is in audio.js, the
// page's rendering in view.js.
import { CallAudio } from "./audio.js";
import { View } from "./view.js";

const WIRE_RATE = 16000; // the rate the protocol recommends; the host supports 8000, 16000, 24000, 48000
const SESSIONS_URL = "/api/v1/realtime/sessions";
const SCENARIOS_URL = "/api/v1/realtime/scenarios";
const PING_EVERY_MS = 5000;
const HANGUP_GRACE_MS = 2000; // after our `hangup`, close the socket ourselves if the host has not

const view = new View();
const $ = (id) => document.getElementById(id);
const callButton = $("call");
const muteButton = $("mute");
const scenarioSelect = $("scenario");
const keyInput = $("access-key");

let call = null; // the call in progress: {ws, audio, ...}

// --- getting a call ---------------------------------------------------------------------------
async function loadScenarios() {
  try {
    const response = await fetch(SCENARIOS_URL, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const { scenarios, default: preferred } = await response.json();
    scenarioSelect.replaceChildren(...scenarios.map(({ name, agent }) => {
      const option = new Option(`${name} (${agent})`, name, false, name === preferred);
      return option;
    }));
  } catch {
    // Keep the "host default" entry: the call can still be made.
  }
}

async function createSession(scenario) {
  const headers = { "Content-Type": "application/json" };
  if (keyInput.value.trim()) headers.Authorization = `Bearer ${keyInput.value.trim()}`;
  let response;
  try {
    response = await fetch(SESSIONS_URL, {
      method: "POST", headers, body: JSON.stringify(scenario ? { scenario } : {}), cache: "no-store",
    });
  } catch (err) {
    throw new Error(`Cannot reach the media host: ${err.message}`);
  }
  const body = await response.json().catch(() => ({}));
  if (response.status !== 201) {
    const hint = response.status === 401 ? " Enter the access key under Settings." : "";
    throw new Error(`The host refused the call (${response.status} ${body.error || ""}): ${body.detail || response.statusText}.${hint}`);
  }
  return body;
}

// --- the call ---------------------------------------------------------------------------------
async function startCall() {
  view.reset();
  view.error("");
  view.status("Connecting…", "connecting");
  setButtons("connecting");
  const current = { ws: null, audio: null, ready: false, endReason: "", pinger: null, closed: false };
  call = current;
  current.audio = new CallAudio({
    rate: WIRE_RATE,
    onFrame: (pcm) => {
      if (current.ready && current.ws.readyState === WebSocket.OPEN) current.ws.send(pcm);
    },
    onLevel: (level) => view.setLevel(level),
    onPlaying: (playing) => view.speaking("agent", playing),
  });
  try {
    await current.audio.open(); // first: it needs the click's user gesture
    if (current.closed) return current.audio.close(); // hung up while the microphone was being opened
    const session = await createSession(scenarioSelect.value);
    if (current.closed) return undefined;
    view.status(`Calling ${session.scenario}…`, "connecting");
    openSocket(current, session);
  } catch (err) {
    if (current.closed) return current.audio.close();
    fail(current, err.message);
  }
  return undefined;
}

function openSocket(current, session) {
  const url = new URL(session.ws_url, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  current.ws = ws;
  ws.onopen = () => {
    ws.send(JSON.stringify({
      type: "start", format: { encoding: "pcm16", sample_rate: WIRE_RATE, channels: 1, frame_ms: 20 },
    }));
  };
  ws.onmessage = (event) => {
    if (typeof event.data !== "string") {
      if (current.ready) current.audio.play(event.data);
      return;
    }
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return; // the host only sends JSON; ignore anything else rather than end the call
    }
    onEvent(current, message);
  };
  ws.onclose = (event) => ended(current, event);
}

function onEvent(current, m) {
  switch (m.type) {
    case "ready":
      current.ready = true;
      view.status(`In call · ${m.scenario} · ${m.agent} agent${m.resumed ? " (resumed)" : ""}`, "in-call");
      setButtons("in-call");
      current.pinger = setInterval(() => ping(current), PING_EVERY_MS);
      break;
    case "transcript":
      if (m.speaker === "caller") {
        if (m.final) view.caller(m.text);
        else view.hypothesis(m.text);
      } else {
        view.agent(m.agent, m.text, m.interrupted);
      }
      break;
    case "stop_audio":
      current.audio.flush(); // barge-in: the caller talks over the agent
      break;
    case "speech_started":
      view.speaking("caller", true);
      break;
    case "speech_stopped":
      view.speaking("caller", false);
      break;
    case "agent":
      view.handoff(m.previous, m.agent, m.reason);
      view.status(`In call · ${m.agent} agent`, "in-call");
      break;
    case "tool":
      view.tool(m.name, m.ok, m.elapsed_ms);
      break;
    case "latency":
      view.latency(m.marks || {});
      break;
    case "transfer":
      view.note(`Transfer to ${m.target} requested${m.reason ? `: ${m.reason}` : ""}. A browser cannot follow it.`);
      break;
    case "hangup":
      current.endReason = `the agent hung up${m.reason ? ` (${m.reason})` : ""}`;
      break;
    case "error":
      current.endReason = `error ${m.code}: ${m.reason}`;
      break;
    case "pong":
      if (typeof m.id === "string" && m.id.startsWith("t-")) view.roundTrip(performance.now() - Number(m.id.slice(2)));
      break;
    default:
      break; // audio_end, turn_committed and anything newer: nothing to show
  }
}

function ping(current) {
  if (current.ws && current.ws.readyState === WebSocket.OPEN) {
    current.ws.send(JSON.stringify({ type: "ping", id: `t-${Math.round(performance.now())}` }));
  }
}

function hangUp() {
  const current = call;
  if (!current) return;
  if (!current.ws || current.ws.readyState !== WebSocket.OPEN || !current.ready) {
    if (current.ws) current.ws.close(1000, "caller hung up");
    current.endReason = "you hung up";
    finish(current, "Call ended: you hung up", "ended");
    return;
  }
  current.endReason = "you hung up";
  view.status("Hanging up…", "ending");
  current.ws.send(JSON.stringify({ type: "hangup" }));
  setTimeout(() => current.ws.close(1000, "caller hung up"), HANGUP_GRACE_MS);
}

function ended(current, event) {
  if (current.closed) return;
  if (event.code === 1000) {
    finish(current, `Call ended: ${current.endReason || event.reason || "call ended"}`, "ended");
    return;
  }
  // 1006 without a reason: the upgrade was refused (e.g. an expired token) or the network dropped.
  const why = current.endReason || event.reason || (current.ready ? "connection lost" : "the host refused the connection");
  const what = current.ready ? "The call ended abnormally" : "The call could not start";
  fail(current, `${what}: ${why} (close ${event.code})`, `Call ended: ${why}`);
}

function fail(current, message, statusText = "Call failed") {
  view.error(message);
  if (current.ready) view.note(message, "problem"); // in the call's history too, where it happened
  if (current.ws && current.ws.readyState <= WebSocket.OPEN) current.ws.close(1000);
  finish(current, statusText, "failed");
}

function finish(current, text, state) {
  if (current.closed) return;
  current.closed = true;
  clearInterval(current.pinger);
  current.audio.close().catch(() => {});
  view.speaking("caller", false);
  view.speaking("agent", false);
  view.setLevel(0);
  view.status(text, state);
  if (call === current) call = null;
  setButtons("idle");
}

// --- controls ---------------------------------------------------------------------------------
function setButtons(state) {
  const idle = state === "idle";
  callButton.textContent = idle ? "Call" : "Hang up";
  callButton.classList.toggle("hangup", !idle);
  scenarioSelect.disabled = !idle;
  muteButton.disabled = state !== "in-call";
  if (idle) setMuted(false);
  for (const key of document.querySelectorAll(".keypad button")) key.disabled = state !== "in-call";
}

function setMuted(muted) {
  muteButton.setAttribute("aria-pressed", String(muted)); // a toggle: pressed means muted
  if (call && call.audio) call.audio.muted = muted;
}

function sendDigit(digit) {
  if (call && call.ready && call.ws.readyState === WebSocket.OPEN) {
    call.ws.send(JSON.stringify({ type: "dtmf", digits: digit }));
    view.note(`Keypad: ${digit}`);
  }
}

callButton.addEventListener("click", () => (call ? hangUp() : startCall()));
muteButton.addEventListener("click", () => setMuted(muteButton.getAttribute("aria-pressed") !== "true"));
for (const key of document.querySelectorAll(".keypad button")) {
  key.addEventListener("click", () => sendDigit(key.dataset.digit));
}
window.addEventListener("pagehide", () => {
  if (call && call.ws && call.ws.readyState === WebSocket.OPEN) call.ws.send(JSON.stringify({ type: "hangup" }));
});

setButtons("idle");
view.status("Ready. Press Call to talk to an agent.", "idle");
loadScenarios();
