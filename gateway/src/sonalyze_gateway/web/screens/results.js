// A measurement's results: per octave band, the mean and spread over the microphones as
// tables and charts (reverberation time, decay curves, frequency response), every missing
// value with its reason, every doubtful value with its cause, every flag explained, and the
// data to download.

import { bandLabel, chart, colour } from "../charts.js";
import { latestMeasurement } from "../lobby-state.js";
import { button, download, formatNumber, h, phoneName, replace } from "../ui.js";

const REVERB = [["EDT", "EDT (s)"], ["T20", "T20 (s)"], ["T30", "T30 (s)"]];
// The reverberation time to read: each microphone's best (T30, else T20), averaged.
const READ = [["reverberation_time", "T to read (s)"], ...REVERB];
const CLARITY = [["C50", "C50 (dB)", 1], ["C80", "C80 (dB)", 1], ["D50", "D50", 2], ["Ts", "Ts (ms)", 0, 1000]];
export const FLAGS = {
  psnr_low_for_t30:
    "In some bands the decay rose less than 45 dB above the background noise, so T30 could not be measured there; the T to read falls back to T20 and says so. Play the sweep louder, make the room quieter, or use a longer sweep.",
  decay_not_straight:
    "In some bands the decay is not a straight line (ISO 3382-2 Annex B): a noise during the sweep (speech, a door) or a coupled room. Those values are shown but left out of the averages. Measure again in quiet, or play the sweep several times.",
  band_limited:
    "The phones' speaker or microphone barely reproduces some bands (usually the lowest): what those bands' filters pass comes mostly from their neighbours, so their values are left out or marked.",
  late_start:
    "This phone started recording after the sweep had begun: the bands the sweep had already passed are left out (with repeated sweeps, the incomplete first one is). Give the phones more silence before the sweep.",
  disturbed:
    "One of the repeated sweeps was disturbed by a noise; it was left out and the others averaged.",
  non_linear:
    "The speaker distorted the sweep (its harmonics came within 26 dB of the response). Turn the speaker phone's volume down a little and measure again.",
};
const PARAMETERS = ["EDT", "T20", "T30", "C50", "C80", "D50", "Ts"];

export function mount(app, measurementId) {
  const node = h("section", { class: "screen results" });
  node.dataset.measurement = measurementId || "";
  update(app, node, measurementId);
  return node;
}

function chosen(app, measurementId) {
  if (measurementId) return app.state.measurements.get(measurementId);
  const latest = latestMeasurement(app.state);
  return latest;
}

function cell(average, key, band, digits, scale = 1) {
  const a = average[key];
  const mean = a?.mean[band] ?? null;
  if (mean === null) return h("td", { class: "nan" }, "—");
  const std = a.std[band];
  const out = a.left_out?.[band] || 0;
  return h("td", { "data-parameter": key },
    formatNumber(mean * scale, digits),
    std !== null ? h("small", {}, ` ±${formatNumber(std * scale, digits)}`) : null,
    out ? h("small", { class: "left-out", title: "doubtful values left out of the average" }, ` (${out} left out)`) : null);
}

function table(caption, rows, result) {
  const present = rows.filter(([key]) => result.average[key]);
  return h("div", { class: "scroll" }, h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Band (Hz)"), present.map(([, label]) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, result.bands.map((hz, band) => h("tr", {},
      h("th", { scope: "row" }, bandLabel(hz)),
      present.map(([key, , digits = 2, scale = 1]) => cell(result.average, key, band, digits, scale)))))));
}

// Which parameter each band's T to read is, over the microphones: "T30", or "T20/T30" if they differ.
function sources(result) {
  return result.bands.map((_, band) => {
    const names = new Set(Object.values(result.microphones).map((mic) => mic.reverberation_time?.source[band]).filter(Boolean));
    return [...names].sort().join("/");
  });
}

// Every doubtful value with its cause, once each.
function doubts(result) {
  const lines = new Set();
  for (const mic of Object.values(result.microphones)) {
    for (const key of PARAMETERS) (mic.suspect?.[key] || []).forEach((reason) => reason && lines.add(reason));
  }
  return [...lines];
}

// Every reason a value is missing, in words, once each.
function reasons(result) {
  const lines = new Map();
  for (const [device, mic] of Object.entries(result.microphones)) {
    for (const key of PARAMETERS) {
      (mic.reasons[key] || []).forEach((reason) => {
        if (reason) lines.set(`${key}: ${reason}`, (lines.get(`${key}: ${reason}`) || []).concat(device));
      });
    }
  }
  return [...lines.keys()];
}

export function csv(result) {
  const rows = [["source", "parameter", "band_hz", "value", "std", "count", "reason", "doubt"]];
  const averaged = [...PARAMETERS, "reverberation_time"].filter((key) => result.average[key]);
  result.bands.forEach((hz, band) => {
    for (const key of averaged) {
      const a = result.average[key];
      rows.push(["average", key, hz, a.mean[band], a.std[band], a.count[band], "", a.left_out?.[band] ? `${a.left_out[band]} left out` : ""]);
    }
  });
  for (const [device, mic] of Object.entries(result.microphones)) {
    result.bands.forEach((hz, band) => {
      for (const key of PARAMETERS) rows.push([device, key, hz, mic.parameters[key][band], "", "", mic.reasons[key]?.[band] || "", mic.suspect?.[key]?.[band] || ""]);
      if (mic.reverberation_time) rows.push([device, `reverberation_time (${mic.reverberation_time.source[band] || "none"})`, hz, mic.reverberation_time.value[band], "", "", "", ""]);
    });
    rows.push([device, "DRR", "", mic.drr, "", "", "", ""], [device, "PSNR", "", mic.psnr, "", "", "", ""]);
    if (mic.clock_drift_ppm !== null && mic.clock_drift_ppm !== undefined) rows.push([device, "clock_drift_ppm", "", mic.clock_drift_ppm, "", "", "", ""]);
  }
  const quote = (v) => (v === null || v === undefined ? "" : /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
  return rows.map((row) => row.map(quote).join(",")).join("\n") + "\n";
}

function microphone(app, measurementId, bands, device, mic) {
  const fetchWav = async () => {
    const response = await fetch(`/v1/measurements/${measurementId}/responses/${device}.wav`, {
      headers: { Authorization: `Bearer ${app.connection.token}` },
    });
    if (!response.ok) return app.say(`The impulse response could not be fetched (${response.status}).`);
    download(`impulse-response-${device.slice(0, 8)}.wav`, await response.blob());
  };
  return h("li", { class: "card mic", "data-device": device },
    h("h3", {}, phoneName(device, app.state.me)),
    h("p", {}, `DRR ${formatNumber(mic.drr, 1)} dB · peak-to-noise ${formatNumber(mic.psnr, 0)} dB`),
    chainLine(mic) ? h("p", { class: "small chain" }, chainLine(mic)) : null,
    Object.entries(mic.repetitions?.dropped || {}).map(([index, reason]) => h("p", { class: "small" }, `Sweep ${Number(index) + 1} left out: ${reason}`)),
    (mic.repetitions?.warnings || []).map((warning) => h("p", { class: "small" }, warning)),
    h("details", {},
      h("summary", {}, "Reverberation per band"),
      h("table", { class: "mic-table", "aria-label": `Reverberation per band, ${phoneName(device, app.state.me)}` },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Band (Hz)"), REVERB.map(([, label]) => h("th", { scope: "col" }, label)))),
        h("tbody", {}, bands.map((hz, band) => h("tr", {},
          h("th", { scope: "row" }, bandLabel(hz)),
          REVERB.map(([key]) => {
            const doubt = mic.suspect?.[key]?.[band];
            return h("td", { "data-parameter": key, "data-band": hz, class: doubt ? "doubtful" : "", title: doubt || "" }, formatNumber(mic.parameters[key][band]), doubt ? "?" : "");
          }))))),
    ),
    mic.flags.map((flag) => h("p", { class: "flag" }, h("strong", {}, flag.replace(/_/g, " ")), `: ${FLAGS[flag] || flag}`)),
    button("Impulse response (WAV)", fetchWav, { "aria-label": `Download the impulse response of ${phoneName(device, app.state.me)} (WAV)` }));
}

// The phone's clock, when it heard the sweep, and its speaker's distortion, in one line.
function chainLine(mic) {
  const parts = [];
  if (mic.clock_drift_ppm !== null && mic.clock_drift_ppm !== undefined) parts.push(`clock ${mic.clock_drift_ppm >= 0 ? "+" : ""}${formatNumber(mic.clock_drift_ppm, 0)} ppm (corrected)`);
  if (mic.start_s !== null && mic.start_s !== undefined) parts.push(`sweep heard ${formatNumber(mic.start_s, 2)} s into the recording`);
  if (mic.harmonic_level_db !== null && mic.harmonic_level_db !== undefined) parts.push(`harmonics ${formatNumber(mic.harmonic_level_db, 0)} dB`);
  else if (mic.harmonic_floor_db !== null && mic.harmonic_floor_db !== undefined) parts.push(`harmonics below ${formatNumber(mic.harmonic_floor_db, 0)} dB`);
  return parts.join(" · ");
}

async function drawCharts(app, node, measurementId, result) {
  const bands = result.bands;
  const index = bands.map((_, i) => i);
  const rt = node.querySelector(".chart-rt");
  await chart(rt, {
    title: "Reverberation time per band",
    x: index,
    bands,
    xLabel: "Octave band (Hz)",
    yLabel: "seconds",
    points: true,
    fromZero: true,
    series: READ.filter(([key]) => result.average[key]).map(([key, label]) => ({ label, values: result.average[key].mean })),
  });
  let full;
  try {
    full = (await app.connection.command("analysis.request", { measurement_id: measurementId })).result;
  } catch (error) {
    node.querySelector(".chart-decay").textContent = `The curves could not be fetched: ${error.message}`;
    return;
  }
  if (!full || !node.isConnected) return;
  node.full = full;
  const devices = Object.keys(full.microphones);
  const first = full.microphones[devices[0]];
  if (first?.decay_curves) {
    const curves = first.decay_curves;
    const length = Math.max(0, ...curves.levels_db.map((l) => l.length));
    await chart(node.querySelector(".chart-decay"), {
      title: `Decay curves per band (${phoneName(devices[0], app.state.me)})`,
      x: Array.from({ length }, (_, i) => i * curves.step_s),
      xLabel: "time (s)",
      yLabel: "level (dB)",
      // Each band ends where its decay meets the noise: the rest of its line is a gap.
      series: bands.map((hz, i) => ({
        label: `${bandLabel(hz)} Hz`,
        values: Array.from({ length }, (_, k) => curves.levels_db[i][k] ?? null),
      })),
    });
  }
  if (first?.frequency_response) {
    // Up to the sweep's top: above it the response is only the noise.
    const top = app.state.measurements.get(measurementId)?.started?.sweep?.f2 ?? Infinity;
    const keep = first.frequency_response.frequencies.map((f) => f <= top);
    const cut = (values) => values.filter((_, i) => keep[i]);
    await chart(node.querySelector(".chart-fr"), {
      title: "Frequency response (1/3 octave)",
      x: cut(first.frequency_response.frequencies),
      log: true,
      xLabel: "frequency (Hz)",
      yLabel: "level (dB)",
      series: devices.map((device, i) => ({ label: phoneName(device, app.state.me), values: cut(full.microphones[device].frequency_response.level_db), colour: colour(i) })),
    });
  }
}

export function update(app, node, measurementId) {
  const measurement = chosen(app, measurementId);
  if (node.dataset.shown && node.dataset.shown === measurement?.id && measurement?.result) return;
  if (!measurement) {
    replace(node, h("div", { class: "card" }, h("p", {}, "No results yet: they appear here once a measurement has been analysed.")));
    return;
  }
  if (!measurement.result) {
    const text = measurement.error ? `The analysis failed: ${measurement.error}` : measurement.state === "aborted" ? "This measurement was stopped." : "The analysis has not finished yet.";
    replace(node, h("div", { class: "card" }, h("p", {}, text)));
    return;
  }
  node.dataset.shown = measurement.id;
  const result = measurement.result;
  const why = reasons(result);
  const doubtful = doubts(result);
  const read = sources(result);
  const unusable = Object.entries(result.unusable || {});
  const stamp = new Date(measurement.at).toLocaleString();
  replace(node,
    h("h1", {}, "Results"),
    h("p", { class: "small" }, `Measured ${stamp} with ${Object.keys(result.microphones).length} microphone(s). Mean ± spread over the microphones.`),
    table("Reverberation", READ, result),
    result.average.reverberation_time ? h("p", { class: "small" }, `T to read: ${result.bands.map((hz, band) => `${bandLabel(hz)} Hz ${read[band] || "none"}`).join(" · ")}`) : null,
    table("Clarity, definition, centre time", CLARITY, result),
    doubtful.length ? h("details", { class: "card" }, h("summary", {}, `Why some values are doubtful (${doubtful.length} cause${doubtful.length === 1 ? "" : "s"}; left out of the averages)`), h("ul", {}, doubtful.map((line) => h("li", {}, line)))) : null,
    why.length ? h("details", { class: "card" }, h("summary", {}, `Why ${why.length} value(s) are missing`), h("ul", {}, why.map((line) => h("li", {}, line)))) : null,
    unusable.length ? h("div", { class: "card" }, h("h2", {}, "Recordings not used"), h("ul", {}, unusable.map(([device, reason]) => h("li", {}, `${phoneName(device, app.state.me)}: ${reason}`)))) : null,
    h("div", { class: "chart chart-rt" }),
    h("div", { class: "chart chart-decay" }),
    h("div", { class: "chart chart-fr" }),
    h("h2", {}, "Microphones"),
    h("ul", { class: "mics" }, Object.entries(result.microphones).map(([device, mic]) => microphone(app, measurement.id, result.bands, device, mic))),
    h("div", { class: "card downloads" },
      h("h2", {}, "Download"),
      button("Results (JSON)", () => download(`sonalyze-${measurement.id.slice(0, 8)}.json`, new Blob([JSON.stringify(node.full || result, null, 2)], { type: "application/json" }))),
      button("Table (CSV)", () => download(`sonalyze-${measurement.id.slice(0, 8)}.csv`, new Blob([csv(result)], { type: "text/csv" })))));
  requestAnimationFrame(() => drawCharts(app, node, measurement.id, result).catch((error) => app.say(error.message)));
}
