// AudioWorklet processors: the microphone encoder and the agent's playback, off the main thread.
// `sampleRate` is the AudioContext's rate (a global of the worklet scope); the wire rate comes in
// processorOptions. The conversions themselves live in dsp.js, shared with the ScriptProcessor fallback.
import { FrameEncoder, Player } from "./dsp.js";

// Input: the microphone. Posts {pcm: ArrayBuffer, level} per 20 ms frame at the wire rate.
class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { rate, frameMs } = options.processorOptions;
    this.encoder = new FrameEncoder(sampleRate, rate, frameMs);
    this.emit = (pcm, level) => this.port.postMessage({ pcm, level }, [pcm]);
    this.running = true;
    this.port.onmessage = (event) => {
      if (event.data === "stop") this.running = false;
    };
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) this.encoder.push(channel, this.emit);
    return this.running;
  }
}

// Output: the agent. Receives ArrayBuffers of PCM16 at the wire rate, or "flush"; posts {playing}
// when it starts or stops producing sound.
class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { rate, primeMs } = options.processorOptions;
    this.player = new Player(rate, sampleRate, primeMs);
    this.playing = false;
    this.running = true;
    this.port.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) this.player.enqueue(event.data);
      else if (event.data === "flush") this.player.flush();
      else if (event.data === "stop") this.running = false;
    };
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    const playing = this.player.render(out);
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    if (playing !== this.playing) {
      this.playing = playing;
      this.port.postMessage({ playing });
    }
    return this.running;
  }
}

registerProcessor("pcm-capture", CaptureProcessor);
registerProcessor("pcm-playback", PlaybackProcessor);
