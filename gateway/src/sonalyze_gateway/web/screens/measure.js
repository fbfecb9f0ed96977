// The measurement under way, as this phone takes part: a countdown to the sweep, playing or
// recording, the upload's progress, then the analysis's.

import { latestMeasurement } from "../lobby-state.js";
import { h, phoneName, progress, replace } from "../ui.js";

const PHASES = {
  loading: "Fetching the sweep…",
  waiting: "Get ready: quiet in the room, please.",
  playing: "Playing the sweep…",
  played: "Sweep played.",
  recording: "Recording… keep still and quiet.",
  uploading: "Sending the recording…",
  uploaded: "Recording sent.",
  rejected: "The server could not use this recording.",
  failed: "Something went wrong.",
  aborted: "The host stopped the measurement.",
};

export function mount(app) {
  const node = h("section", { class: "screen measure" });
  update(app, node);
  const tick = setInterval(() => {
    if (!node.isConnected) return clearInterval(tick);
    update(app, node);
  }, 250);
  return node;
}

function countdown(app, part) {
  const now = app.connection.serverNow();
  if (part.role === "observer") return null;
  const target = part.role === "speaker" ? part.playAt : part.startAt;
  if (now < target && ["waiting", "loading", "recording"].includes(part.phase)) {
    return h("p", { class: "countdown", "aria-label": "Seconds until the sweep" }, Math.ceil((target - now) / 1000));
  }
  if (part.phase === "recording" && part.endAt) {
    const fraction = (now - part.startAt) / (part.endAt - part.startAt);
    return progress("Recording", fraction);
  }
  return null;
}

function recordings(app, measurement) {
  if (!measurement?.started) return null;
  return h("ul", { class: "members" }, measurement.started.microphones.map((device) => {
    const got = measurement.recordings.get(device);
    const text = got ? (got.state === "complete" ? "received" : `unusable: ${got.reason}`) : "waiting";
    return h("li", { class: "member" }, h("span", { class: "who" }, phoneName(device, app.state.me)), h("span", { class: got?.state === "complete" ? "status ok" : "status" }, text));
  }));
}

export function update(app, node) {
  const part = app.measuring.part;
  const measurement = latestMeasurement(app.state);
  if (!part && !measurement) {
    replace(node, h("div", { class: "card" }, h("p", {}, "No measurement yet. The host starts one from the lobby when everyone is ready.")));
    return;
  }
  const analysing = measurement && measurement.state === "analyzing";
  replace(node,
    app.notice ? h("p", { class: "notice", role: "alert" }, app.notice) : null,
    part ? h("div", { class: "card center" },
      h("p", { class: "label" }, `You are the ${part.role}`),
      h("p", { class: "phase", role: "status" }, PHASES[part.phase] || part.phase),
      countdown(app, part),
      part.phase === "uploading" ? h("div", {}, progress("Upload", part.upload), h("p", { class: "small" }, `${Math.round(part.upload * 100)} % sent`)) : null,
      part.phase === "played" ? h("p", { class: "small", id: "speaker-timing", "data-late-ms": part.lateMs.toFixed(1) }, `The sweep ended ${Math.abs(part.lateMs).toFixed(0)} ms ${part.lateMs >= 0 ? "after" : "before"} plan.`) : null,
      part.lateS > 0.05 ? h("p", { class: "notice" }, `This phone began recording ${part.lateS.toFixed(2)} s late.`) : null,
      part.note ? h("p", { class: "notice" }, part.note) : null,
      part.error ? h("p", { class: "notice" }, part.error) : null) : null,
    measurement ? h("div", { class: "card" },
      h("h2", {}, "Recordings"),
      recordings(app, measurement),
      analysing ? h("div", {}, h("p", {}, `Analysing ${measurement.done} of ${measurement.total}…`), progress("Analysis", measurement.total ? measurement.done / measurement.total : 0)) : null,
      measurement.state === "completed" ? h("button", { type: "button", class: "primary", onclick: () => app.show("results", measurement.id) }, "See the results") : null,
      measurement.error ? h("p", { class: "notice" }, measurement.error) : null) : null);
}
