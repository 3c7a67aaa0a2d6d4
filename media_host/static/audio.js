// The call's audio: microphone capture to PCM16 frames at the wire rate, and the agent's PCM16 frames
// played gap-free. An AudioWorklet does both off the main thread; a ScriptProcessor is the fallback
// for browsers without one. The AudioContext runs at the device's rate: conversions are ours (dsp.js).
import { FrameEncoder, Player } from "./dsp.js";

const FRAME_MS = 20;
const PRIME_MS = 60; // jitter buffer before the agent's audio starts (docs/browser-protocol.md, section 3)

export class CallAudio {
  // `onFrame(arrayBuffer)`: one 20 ms microphone frame; `onLevel(0..1)`: its loudness;
  // `onPlaying(bool)`: the agent's audio started or stopped sounding.
  constructor({ rate, onFrame, onLevel = () => {}, onPlaying = () => {} }) {
    this.rate = rate;
    this.onFrame = onFrame;
    this.onLevel = onLevel;
    this.onPlaying = onPlaying;
    this.muted = false;
    this.context = null;
    this.stream = null;
    this.nodes = [];
    this.playback = null; // the AudioWorklet playback node, or
    this.player = null; // the ScriptProcessor fallback's player
  }

  // Ask for the microphone and start the audio graph; throws a readable Error when it cannot. Call it
  // straight from the click handler: the AudioContext is created before the first await, while the
  // page still has the user's gesture (Safari insists on it).
  async open() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.isSecureContext) {
      throw new Error("The microphone needs a secure page: open it over https or on localhost.");
    }
    const Context = window.AudioContext || window.webkitAudioContext;
    this.context = new Context({ latencyHint: "interactive" });
    const resumed = this.context.resume();
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (err) {
      throw new Error(`Microphone unavailable: ${err.name === "NotAllowedError" ? "permission denied" : err.message}`);
    }
    await resumed;
    const source = this.context.createMediaStreamSource(this.stream);
    this.nodes.push(source);
    if (this.context.audioWorklet) {
      await this._worklets(source);
    } else {
      this._scriptProcessor(source);
    }
    return this;
  }

  async _worklets(source) {
    const ctx = this.context;
    await ctx.audioWorklet.addModule(new URL("./worklet.js", import.meta.url).href);
    const options = { rate: this.rate, frameMs: FRAME_MS, primeMs: PRIME_MS };
    const capture = new AudioWorkletNode(ctx, "pcm-capture", {
      numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1], processorOptions: options,
    });
    capture.port.onmessage = (event) => this._frame(event.data.pcm, event.data.level);
    const playback = new AudioWorkletNode(ctx, "pcm-playback", {
      numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1], processorOptions: options,
    });
    playback.port.onmessage = (event) => this.onPlaying(event.data.playing);
    source.connect(capture);
    capture.connect(ctx.destination); // silent: keeps the capture node pulled by the graph
    playback.connect(ctx.destination);
    this.playback = playback;
    this.nodes.push(capture, playback);
  }

  _scriptProcessor(source) {
    const ctx = this.context;
    const encoder = new FrameEncoder(ctx.sampleRate, this.rate, FRAME_MS);
    this.player = new Player(this.rate, ctx.sampleRate, PRIME_MS);
    const node = ctx.createScriptProcessor(1024, 1, 1);
    let playing = false;
    node.onaudioprocess = (event) => {
      encoder.push(event.inputBuffer.getChannelData(0), (pcm, level) => this._frame(pcm, level));
      const now = this.player.render(event.outputBuffer.getChannelData(0));
      if (now !== playing) this.onPlaying((playing = now));
    };
    source.connect(node);
    node.connect(ctx.destination);
    this.nodes.push(node);
  }

  _frame(pcm, level) {
    this.onLevel(this.muted ? 0 : level);
    // Muted still streams (silence): the host needs the stream to keep going (section 3).
    this.onFrame(this.muted ? new ArrayBuffer(pcm.byteLength) : pcm);
  }

  // One binary message of the agent's audio (PCM16 at the wire rate).
  play(arrayBuffer) {
    if (this.playback) this.playback.port.postMessage(arrayBuffer, [arrayBuffer]);
    else if (this.player) this.player.enqueue(arrayBuffer);
  }

  // Barge-in: drop everything not yet played, now.
  flush() {
    if (this.playback) this.playback.port.postMessage("flush");
    else if (this.player) this.player.flush();
  }

  async close() {
    for (const node of this.nodes) {
      if (node.port) node.port.postMessage("stop");
      node.disconnect();
    }
    this.nodes = [];
    this.playback = null;
    this.player = null;
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    this.stream = null;
    if (this.context && this.context.state !== "closed") await this.context.close();
    this.context = null;
  }
}
