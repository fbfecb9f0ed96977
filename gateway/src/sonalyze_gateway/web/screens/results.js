// A measurement's results: per octave band, the mean and spread over the microphones as
// tables and charts (reverberation time, decay curves, frequency response), every missing
// value with its reason, every flag explained, and the data to download.

import { bandLabel, chart, colour } from "../charts.js";
import { latestMeasurement } from "../lobby-state.js";
import { button, download, formatNumber, h, phoneName, replace } from "../ui.js";

const REVERB = [["EDT", "EDT (s)"], ["T20", "T20 (s)"], ["T30", "T30 (s)"]];
const CLARITY = [["C50", "C50 (dB)", 1], ["C80", "C80 (dB)", 1], ["D50", "D50", 2], ["Ts", "Ts (ms)", 0, 1000]];
export const FLAGS = {
  psnr_low_for_t30:
    "In some bands the decay rose less than 45 dB above the background noise, so T30 could not be measured there. Play the sweep louder, make the room quieter, or use a longer sweep.",
  non_linear:
    "The speaker distorted the sweep (its harmonics came within 20 dB of the response). Turn the speaker phone's volume down a little and measure again.",
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
  const mean = a.mean[band];
  if (mean === null) return h("td", { class: "nan" }, "—");
  const std = a.std[band];
  return h("td", {}, formatNumber(mean * scale, digits), std !== null ? h("small", {}, ` ±${formatNumber(std * scale, digits)}`) : null);
}

function table(caption, rows, result) {
  return h("div", { class: "scroll" }, h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Band (Hz)"), rows.map(([, label]) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, result.bands.map((hz, band) => h("tr", {},
      h("th", { scope: "row" }, bandLabel(hz)),
      rows.map(([key, , digits = 2, scale = 1]) => cell(result.average, key, band, digits, scale)))))));
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
  const rows = [["source", "parameter", "band_hz", "value", "std", "count", "reason"]];
  result.bands.forEach((hz, band) => {
    for (const key of PARAMETERS) {
      const a = result.average[key];
      rows.push(["average", key, hz, a.mean[band], a.std[band], a.count[band], ""]);
    }
  });
  for (const [device, mic] of Object.entries(result.microphones)) {
    result.bands.forEach((hz, band) => {
      for (const key of PARAMETERS) rows.push([device, key, hz, mic.parameters[key][band], "", "", mic.reasons[key]?.[band] || ""]);
    });
    rows.push([device, "DRR", "", mic.drr, "", "", ""], [device, "PSNR", "", mic.psnr, "", "", ""]);
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
    h("details", {},
      h("summary", {}, "Reverberation per band"),
      h("table", { class: "mic-table", "aria-label": `Reverberation per band, ${phoneName(device, app.state.me)}` },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Band (Hz)"), REVERB.map(([, label]) => h("th", { scope: "col" }, label)))),
        h("tbody", {}, bands.map((hz, band) => h("tr", {},
          h("th", { scope: "row" }, bandLabel(hz)),
          REVERB.map(([key]) => h("td", { "data-parameter": key, "data-band": hz }, formatNumber(mic.parameters[key][band]))))))),
    ),
    mic.flags.map((flag) => h("p", { class: "flag" }, h("strong", {}, flag.replace(/_/g, " ")), `: ${FLAGS[flag] || flag}`)),
    button("Impulse response (WAV)", fetchWav, { "aria-label": `Download the impulse response of ${phoneName(device, app.state.me)} (WAV)` }));
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
    series: REVERB.map(([key, label]) => ({ label, values: result.average[key].mean })),
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
  const unusable = Object.entries(result.unusable || {});
  const stamp = new Date(measurement.at).toLocaleString();
  replace(node,
    h("h1", {}, "Results"),
    h("p", { class: "small" }, `Measured ${stamp} with ${Object.keys(result.microphones).length} microphone(s). Mean ± spread over the microphones.`),
    table("Reverberation", REVERB, result),
    table("Clarity, definition, centre time", CLARITY, result),
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
