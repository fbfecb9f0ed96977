// Web Audio for a measurement: one AudioContext at 48 kHz (made on a tap: phones allow sound
// only after a gesture), the microphone as raw PCM through an AudioWorklet (no echo
// cancellation, noise suppression or gain control), and the sweep played at a server time.

const SAMPLE_RATE = 48_000;
let context = null;

export function audioContext() {
  if (context === null) context = new AudioContext({ sampleRate: SAMPLE_RATE, latencyHint: "interactive" });
  return context;
}

// Unlock sound on a tap (a real phone requires one before audio starts).
export async function enableAudio() {
  const ctx = audioContext();
  if (ctx.state !== "running") await ctx.resume();
  return ctx;
}

// The context (processing) time at which server time `serverMs` falls, through this phone's
// clock offset: the time the recorder's frames and a source's start are counted in.
export function contextTimeAt(serverMs, connection) {
  const ctx = audioContext();
  const localMs = serverMs - connection.offset - performance.timeOrigin;
  return ctx.currentTime + (localMs - performance.now()) / 1000;
}

export class Microphone {
  constructor() {
    this.stream = null;
    this.window = null;
  }

  get open() {
    return this.stream !== null && this.stream.active;
  }

  async start() {
    if (this.open) return;
    this.stop(); // a track the system ended: no second recorder over the same frames
    const ctx = await enableAudio();
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
    });
    await ctx.audioWorklet.addModule("/app/recorder-worklet.js");
    const source = ctx.createMediaStreamSource(this.stream);
    const node = new AudioWorkletNode(ctx, "sonalyze-recorder", { numberOfInputs: 1, numberOfOutputs: 1 });
    const mute = new GainNode(ctx, { gain: 0 }); // keeps the node pulled, plays nothing
    source.connect(node).connect(mute).connect(ctx.destination);
    node.port.onmessage = ({ data }) => this.take(data.frame, data.samples);
    this.nodes = [source, node, mute];
    this.label = this.stream.getAudioTracks()[0]?.label || "microphone";
  }

  stop() {
    this.stream?.getTracks().forEach((track) => track.stop());
    for (const node of this.nodes || []) node.disconnect();
    if (this.nodes) this.nodes[1].port.onmessage = null;
    this.nodes = null;
    this.stream = null;
  }

  // Record from server time `startMs` for `seconds`: resolves with Float32 samples at the
  // context's rate, cut to that window by context time.
  record(startMs, seconds, connection) {
    const ctx = audioContext();
    const first = Math.round(contextTimeAt(startMs, connection) * ctx.sampleRate);
    const length = Math.round(seconds * ctx.sampleRate);
    return new Promise((resolve) => {
      this.window = { first, length, samples: new Float32Array(length), got: 0, resolve, rate: ctx.sampleRate };
    });
  }

  // How far the window has been recorded, 0 to 1.
  get recorded() {
    return this.window ? this.window.got / this.window.length : 0;
  }

  take(frame, samples) {
    const w = this.window;
    if (!w) return;
    const from = Math.max(frame, w.first);
    const to = Math.min(frame + samples.length, w.first + w.length);
    if (to > from) {
      if (w.got === 0) w.late = (from - w.first) / w.rate;
      w.samples.set(samples.subarray(from - frame, to - frame), from - w.first);
      w.got = to - w.first;
    }
    if (frame + samples.length >= w.first + w.length) {
      this.window = null;
      w.resolve({ samples: w.samples, rate: w.rate, lateS: w.late || 0, got: w.got > 0 });
    }
  }
}

export class Speaker {
  // Fetch and decode the sweep (the device token authorises the download).
  async prepare(path, token) {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
    if (!response.ok) throw new Error(`the sweep could not be fetched (${response.status})`);
    this.buffer = await audioContext().decodeAudioData(await response.arrayBuffer());
  }

  // Play so that the sound leaves the speaker at server time `atMs` (the output's latency
  // taken off); resolves with how late, by the server's clock, its end left the speaker.
  play(atMs, connection) {
    const ctx = audioContext();
    const latency = ctx.outputLatency || ctx.baseLatency || 0;
    const when = Math.max(ctx.currentTime, contextTimeAt(atMs, connection) - latency);
    const source = new AudioBufferSourceNode(ctx, { buffer: this.buffer });
    source.connect(ctx.destination);
    this.source = source;
    const plannedEnd = atMs + this.buffer.duration * 1000;
    return new Promise((resolve) => {
      source.onended = () => {
        this.source = null;
        resolve({ lateMs: connection.serverNow() + latency * 1000 - plannedEnd });
      };
      source.start(when);
    });
  }

  stop() {
    this.source?.stop();
  }
}
