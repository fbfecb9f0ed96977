// This phone's part in a measurement: the speaker plays the sweep at the scheduled time, a
// microphone records its window, keeps the recording and uploads it (again after a reload).

import { kept, pcm16, upload } from "./upload.js";

const KEEP_MS = 24 * 3600 * 1000;

export class Measuring {
  constructor(app) {
    this.app = app;
    this.part = null; // {measurementId, role, phase, ...} of this phone in the current one
    this.uploading = new Set();
  }

  onEvent(message) {
    if (message.type === "measurement.started") this.start(message.payload);
    if (message.type === "workflow.changed" && message.payload.state === "aborted" && this.part) {
      this.part.phase = "aborted";
      this.app.mic.window = null;
      this.app.speaker.stop();
    }
    if (message.type === "analysis.result" && this.part?.measurementId === message.payload.measurement_id) {
      this.app.show("results", message.payload.measurement_id);
    }
  }

  // A measurement began: play or record it if this phone has a part in it.
  async start(started) {
    const app = this.app;
    const me = app.state.me;
    const speaker = started.speakers.includes(me);
    const microphone = started.microphones.includes(me);
    const playAt = started.play_at_ms;
    if (app.connection.serverNow() > started.start_at_ms + started.recording_seconds * 1000) {
      return; // heard after a reconnect, too late to take part: nothing to play or record
    }
    this.part = {
      measurementId: started.measurement_id,
      role: speaker ? "speaker" : microphone ? "microphone" : "observer",
      phase: "waiting",
      startAt: started.start_at_ms,
      playAt,
      endAt: started.start_at_ms + started.recording_seconds * 1000,
      upload: 0,
    };
    app.show("measure");
    try {
      if (speaker) await this.play(started, playAt);
      else if (microphone) await this.record(started);
    } catch (error) {
      this.part.phase = "failed";
      this.part.error = error.message;
      app.changed();
    }
  }

  async play(started, playAt) {
    const { app, part } = this;
    part.phase = "loading";
    await app.speaker.prepare(started.sweep_path, app.connection.token);
    part.phase = "waiting";
    app.changed();
    const played = app.speaker.play(playAt, app.connection);
    setTimeout(() => {
      if (part.phase === "waiting") {
        part.phase = "playing";
        app.changed();
      }
    }, Math.max(0, playAt - app.connection.serverNow()));
    const { lateMs } = await played;
    part.phase = "played";
    part.lateMs = lateMs;
    app.changed();
  }

  async record(started) {
    const { app, part } = this;
    if (!app.mic.open) throw new Error("the microphone is off: tap “Allow microphone” before the next measurement");
    const window = app.mic.record(started.start_at_ms, started.recording_seconds, app.connection);
    part.phase = "recording";
    app.changed();
    const { samples, rate, lateS, got } = await window;
    if (part.phase === "aborted") return;
    if (!got) throw new Error("the microphone delivered nothing during the recording");
    part.lateS = lateS;
    const recording = {
      measurement_id: started.measurement_id,
      lobby_id: started.lobby_id,
      data: pcm16(samples),
      format: { container: "raw", sample_rate: rate, sample_format: "s16le", channels: 1 },
      kept_at: Date.now(),
    };
    try {
      await kept.save(recording); // a reload from here on resumes the upload
    } catch {
      part.note = "This browser could not keep the recording: do not reload until it is sent.";
    }
    await this.send(recording);
  }

  async send(recording) {
    const { app } = this;
    if (this.uploading.has(recording.measurement_id)) return;
    this.uploading.add(recording.measurement_id);
    const part = this.part?.measurementId === recording.measurement_id ? this.part : (this.part = {
      measurementId: recording.measurement_id, role: "microphone", phase: "uploading", upload: 0,
    });
    part.phase = "uploading";
    app.changed();
    try {
      const outcome = await upload(app.connection, recording, (fraction) => {
        part.upload = fraction;
        app.changed();
      });
      part.phase = outcome.state === "complete" ? "uploaded" : "rejected";
      part.error = outcome.error;
      await kept.remove(recording.measurement_id);
    } catch (error) {
      part.phase = "failed";
      part.error = error.message;
      if (/ended|closed|aborted|analys/i.test(error.message)) await kept.remove(recording.measurement_id);
    } finally {
      this.uploading.delete(recording.measurement_id);
      app.changed();
    }
  }

  // After a reload or a reconnect: send whatever recordings are still kept for this lobby.
  async resumeUploads() {
    let recordings = [];
    try {
      recordings = await kept.all();
    } catch {
      return; // no IndexedDB (a private window): nothing was kept
    }
    const lobbyId = this.app.connection.lobbyId; // known from the join's ack, before its snapshot
    for (const recording of recordings) {
      if (Date.now() - recording.kept_at > KEEP_MS) {
        kept.remove(recording.measurement_id).catch(() => {}); // long past its upload deadline
        continue;
      }
      if (recording.lobby_id === lobbyId && !this.uploading.has(recording.measurement_id)) {
        this.send(recording);
      }
    }
  }
}
