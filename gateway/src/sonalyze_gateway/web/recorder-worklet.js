// Runs on the audio thread: hands the microphone's samples to the page in blocks of 4096
// frames, each with the context frame its first sample belongs to, exactly as captured.

const BLOCK = 4096;

class Recorder extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(BLOCK);
    this.filled = 0;
    this.first = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    const frames = channel ? channel.length : 128;
    if (this.filled === 0) this.first = currentFrame;
    if (channel) this.block.set(channel, this.filled);
    else this.block.fill(0, this.filled, this.filled + frames);
    this.filled += frames;
    if (this.filled >= BLOCK) {
      this.port.postMessage({ frame: this.first, samples: this.block }, [this.block.buffer]);
      this.block = new Float32Array(BLOCK);
      this.filled = 0;
    }
    return true;
  }
}

registerProcessor("sonalyze-recorder", Recorder);
