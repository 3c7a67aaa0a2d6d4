// Sample-rate conversion and PCM16 framing, shared by the AudioWorklet processors (worklet.js) and the
// ScriptProcessor fallback (audio.js). Plain functions on Float32Array / Int16Array: no DOM, no Web Audio.

// Microphone: the context's rate -> the wire rate, as 20 ms frames of PCM16 little-endian mono.
// A windowed-sinc low-pass (below the wire rate's Nyquist) then linear interpolation at the output
// instants: cheap, continuous across calls, good enough for speech recognition.
export class FrameEncoder {
  constructor(inRate, outRate, frameMs = 20) {
    this.step = inRate / outRate; // input samples per output sample
    this.taps = this.step > 1 ? lowPass(0.45 / this.step, 31) : null;
    this.history = new Float32Array(this.taps ? this.taps.length : 1);
    this.at = 0; // index of the next history slot
    this.n = 0; // input samples seen
    this.next = 0; // input position of the next output sample
    this.previous = 0; // the previous filtered input sample
    this.frame = new Int16Array(Math.round((outRate * frameMs) / 1000));
    this.filled = 0;
    this.energy = 0;
  }

  // Feed captured samples; `emit(frame, level)` gets each complete frame's ArrayBuffer (a fresh one,
  // transferable) and its RMS level in 0..1.
  push(input, emit) {
    const taps = this.taps;
    const history = this.history;
    for (let i = 0; i < input.length; i++) {
      let y = input[i];
      if (taps) {
        history[this.at] = y;
        this.at = (this.at + 1) % history.length;
        y = 0;
        for (let k = 0, j = this.at; k < taps.length; k++, j = (j + 1) % history.length) {
          y += taps[k] * history[j];
        }
      }
      while (this.next <= this.n) {
        const frac = this.next - (this.n - 1);
        this._sample(this.previous + (y - this.previous) * frac, emit);
        this.next += this.step;
      }
      this.previous = y;
      this.n += 1;
    }
  }

  _sample(value, emit) {
    const s = Math.max(-1, Math.min(1, value));
    this.energy += s * s;
    this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    if (this.filled === this.frame.length) {
      const level = Math.sqrt(this.energy / this.frame.length);
      emit(this.frame.slice().buffer, level); // Int16Array is little-endian on every platform browsers run on
      this.filled = 0;
      this.energy = 0;
    }
  }
}

// A Hann-windowed sinc low-pass: `cutoff` in cycles per input sample (0..0.5), `n` odd taps, unit gain.
function lowPass(cutoff, n) {
  const taps = new Float32Array(n);
  const mid = (n - 1) / 2;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const x = i - mid;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    taps[i] = sinc * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1)));
    sum += taps[i];
  }
  for (let i = 0; i < n; i++) taps[i] /= sum;
  return taps;
}

// Agent audio: PCM16 frames at the wire rate -> the context's rate, from a small jitter buffer.
// Playback starts once `primeMs` are queued (and again after running dry); `flush()` drops everything
// at once (barge-in). Linear interpolation keeps its phase across frames, so there are no seams.
export class Player {
  constructor(inRate, outRate, primeMs = 60) {
    this.step = inRate / outRate; // input samples per output sample
    this.prime = Math.round((inRate * primeMs) / 1000);
    this.chunks = [];
    this.offset = 0; // read position in chunks[0]
    this.queued = 0; // samples queued
    this.playing = false;
    this.flush();
  }

  enqueue(arrayBuffer) {
    const pcm = new Int16Array(arrayBuffer);
    const chunk = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) chunk[i] = pcm[i] / 0x8000;
    this.chunks.push(chunk);
    this.queued += chunk.length;
  }

  flush() {
    this.chunks = [];
    this.offset = 0;
    this.queued = 0;
    this.a = 0; // the two input samples the output is interpolated between
    this.b = 0;
    this.frac = 1; // position between a and b; >= 1 means b must advance
    this.playing = false;
  }

  // Fill `out` (one render quantum); returns whether anything was played.
  render(out) {
    if (!this.playing && this.queued >= this.prime) this.playing = true;
    if (!this.playing) {
      out.fill(0);
      return false;
    }
    for (let i = 0; i < out.length; i++) {
      while (this.frac >= 1) {
        if (this.queued === 0) {
          this.playing = false; // ran dry: wait for the buffer to fill again
          out.fill(0, i);
          return i > 0;
        }
        this.a = this.b;
        this.b = this._shift();
        this.frac -= 1;
      }
      out[i] = this.a + (this.b - this.a) * this.frac;
      this.frac += this.step;
    }
    return true;
  }

  _shift() {
    const chunk = this.chunks[0];
    const value = chunk[this.offset++];
    this.queued -= 1;
    if (this.offset === chunk.length) {
      this.chunks.shift();
      this.offset = 0;
    }
    return value;
  }
}
