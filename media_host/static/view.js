// What the page shows: status, errors, the live transcript and the per-turn latency waterfall.
// Plain DOM, no innerHTML of anything the host sent (text only), styles from softphone.css.

// Latency marks in the order a turn reaches them (ms since the end of the caller's speech).
const STAGES = {
  eos_detected: "end of speech detected",
  stt_done: "STT final",
  first_token: "LLM first token",
  response_created: "response created",
  first_tts_chunk: "TTS first audio",
  first_audio_out: "first frame out",
};
const SUMMARY = new Set(["total", "overhead"]);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function ms(value) {
  return `${Math.round(value).toLocaleString("en-US")} ms`;
}

// The smallest 1, 2 or 5 x 10^n at or above `value`.
function niceCeil(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((v) => v >= value);
}

// A time axis for `longest` ms: a round tick step and the scale (a whole number of steps, 2 to 5).
function axisFor(longest) {
  const step = niceCeil(longest / 4);
  return { step, scale: Math.ceil(longest / step) * step };
}

export class View {
  constructor(root = document) {
    const $ = (id) => root.getElementById(id);
    this.statusEl = $("status");
    this.errorEl = $("error");
    this.transcript = $("transcript");
    this.waterfall = $("waterfall");
    this.level = $("level");
    this.callerPill = $("caller-speaking");
    this.agentPill = $("agent-speaking");
    this.rttEl = $("rtt");
    this.reset();
  }

  reset() {
    this.startedAt = performance.now();
    this.hypothesisEl = null;
    this.turns = [];
    this.transcript.replaceChildren();
    this.renderWaterfall();
    this.speaking("caller", false);
    this.speaking("agent", false);
    this.setLevel(0);
    this.roundTrip(null);
  }

  // --- status and errors ---------------------------------------------------------------------
  status(text, state) {
    this.statusEl.textContent = text;
    if (state) document.body.dataset.state = state;
  }

  error(message) {
    this.errorEl.textContent = message;
    this.errorEl.hidden = !message;
  }

  roundTrip(elapsed) {
    this.rttEl.textContent = elapsed === null ? "" : `network ${ms(elapsed)}`;
  }

  setLevel(level) {
    // RMS 0..1 shown on a dB scale: -60 dBFS empty, 0 dBFS full.
    const db = 20 * Math.log10(Math.max(level, 1e-6));
    this.level.value = Math.max(0, Math.min(1, (db + 60) / 60));
  }

  speaking(who, on) {
    const pill = who === "caller" ? this.callerPill : this.agentPill;
    pill.classList.toggle("on", on);
  }

  // --- transcript ----------------------------------------------------------------------------
  _entry(kind, who, text) {
    const item = el("li", `entry ${kind}`);
    const seconds = Math.max(0, Math.floor((performance.now() - this.startedAt) / 1000));
    const stamp = el("time", "at", `${String(Math.floor(seconds / 60)).padStart(2, "0")}:${String(seconds % 60).padStart(2, "0")}`);
    item.append(stamp, el("span", "who", who), el("p", "text", text));
    return item;
  }

  _append(item) {
    const list = this.transcript;
    const follow = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    if (this.hypothesisEl && item !== this.hypothesisEl) list.insertBefore(item, this.hypothesisEl);
    else list.append(item);
    if (follow) list.scrollTop = list.scrollHeight;
    return item;
  }

  hypothesis(text) {
    if (!this.hypothesisEl) {
      this.hypothesisEl = this._entry("caller hypothesis", "You", text);
      this.hypothesisEl.setAttribute("aria-hidden", "true"); // partial: screen readers get the final line
      this._append(this.hypothesisEl);
    } else {
      this.hypothesisEl.querySelector(".text").textContent = text;
    }
  }

  caller(text) {
    const item = this._entry("caller", "You", text);
    if (this.hypothesisEl) {
      this.hypothesisEl.replaceWith(item);
      this.hypothesisEl = null;
    } else {
      this._append(item);
    }
  }

  agent(name, text, interrupted) {
    const item = this._append(this._entry("agent", name || "agent", text));
    if (interrupted) {
      item.classList.add("interrupted");
      item.querySelector(".text").append(el("span", "cut", " — interrupted"));
    }
  }

  handoff(previous, agent, reason) {
    const text = `${previous ? `${previous} ` : ""}→ ${agent} agent${reason ? ` (${reason})` : ""}`;
    this._append(this._entry("handoff", "handoff", text));
  }

  tool(name, ok, elapsedMs) {
    const item = this._append(this._entry(`tool ${ok ? "ok" : "failed"}`, "tool", ""));
    item.querySelector(".text").append(el("code", "", name), ` ${ok ? "ok" : "failed"} · ${ms(elapsedMs)}`);
  }

  note(text, kind = "system") {
    this._append(this._entry(kind, kind === "problem" ? "error" : "call", text));
  }

  // --- latency waterfall -----------------------------------------------------------------------
  latency(marks) {
    const last = this.turns[this.turns.length - 1];
    if (last && JSON.stringify(last.marks) === JSON.stringify(marks)) return; // same turn, reported again
    const replied = "eos_detected" in marks;
    const number = this.turns.filter((t) => t.replied).length + (replied ? 1 : 0);
    this.turns.push({ marks, replied, label: replied ? `Turn ${number}` : "Greeting" });
    this.renderWaterfall();
  }

  renderWaterfall() {
    const box = this.waterfall;
    if (!this.turns.length) {
      box.replaceChildren(el("p", "empty", "Timings appear here after each turn."));
      return;
    }
    const stagesOf = (marks) => Object.entries(marks)
      .filter(([name]) => !name.endsWith("_engine") && !SUMMARY.has(name))
      .sort(([a, x], [b, y]) => stageOrder(a) - stageOrder(b) || x - y);
    const longest = Math.max(200, ...this.turns.flatMap((t) => stagesOf(t.marks).map(([, v]) => v)));
    const { step, scale } = axisFor(longest);
    box.style.setProperty("--grid", `${(step / scale) * 100}%`); // the rows' grid lines, one per tick
    const blocks = this.turns.map((turn) => this._turnBlock(turn, stagesOf(turn.marks), scale));
    box.replaceChildren(this._axis(step, scale), ...blocks.reverse()); // newest first
  }

  _axis(step, scale) {
    const axis = el("div", "axis");
    axis.setAttribute("aria-hidden", "true");
    const track = el("div", "track");
    for (let at = 0; at <= scale; at += step) {
      const tick = el("span", "tick", at === 0 ? "0" : at < 1000 ? `${at} ms` : `${at / 1000} s`);
      tick.style.left = `${(at / scale) * 100}%`;
      track.append(tick);
    }
    axis.append(el("span", "label"), track, el("span", "ms"));
    return axis;
  }

  _turnBlock(turn, stages, scale) {
    const { marks } = turn;
    const block = el("figure", "turn");
    const caption = el("figcaption");
    const total = marks.total ?? marks.first_audio_out;
    caption.append(el("strong", "", turn.label));
    if (total !== undefined) {
      caption.append(` · ${ms(total)} to first audio${turn.replied ? "" : " (from call start)"}`);
    }
    const engines = Object.entries(marks).filter(([name]) => name.endsWith("_engine"))
      .map(([name, v]) => `${name.replace(/_engine$/, "").toUpperCase()} ${ms(v)}`);
    if ("overhead" in marks) engines.push(`pipeline ${ms(marks.overhead)}`);
    if (engines.length) caption.append(el("span", "engines", engines.join(" · ")));
    block.append(caption);
    let reached = 0;
    for (const [name, value] of stages) {
      // Each bar runs from the furthest mark reached so far to this one: the time this stage added.
      const end = Math.max(0, value);
      const start = Math.max(0, Math.min(reached, end));
      reached = Math.max(reached, end);
      const row = el("div", "row");
      row.dataset.stage = name in STAGES ? name : "other";
      const bar = el("div", "seg");
      bar.style.left = `${(start / scale) * 100}%`;
      bar.style.width = `${((end - start) / scale) * 100}%`;
      bar.title = `${STAGES[name] || name}: ${ms(start)} → ${ms(value)}`;
      const track = el("div", "track");
      track.append(bar);
      row.append(el("span", "label", STAGES[name] || name.replaceAll("_", " ")), track, el("span", "ms", ms(value)));
      block.append(row);
    }
    return block;
  }
}

function stageOrder(name) {
  const index = Object.keys(STAGES).indexOf(name);
  return index < 0 ? 100 : index;
}
