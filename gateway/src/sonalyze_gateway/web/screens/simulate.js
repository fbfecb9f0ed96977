// Simulate a shoebox room (pyroomacoustics on the server) and set its reverberation times
// beside Sabine's and Eyring's and the lobby's latest measurement, per octave band.

import { bandLabel, chart } from "../charts.js";
import { latestMeasurement } from "../lobby-state.js";
import { field, formatNumber, h, replace } from "../ui.js";

const ABSORPTION_BANDS = [125, 250, 500, 1000, 2000, 4000];
let materials = null;

function number(name, value, props = {}) {
  return h("input", { type: "number", name, value, step: "any", inputmode: "decimal", required: true, ...props });
}

function point(label, values, prefix) {
  return h("fieldset", { class: "point" },
    h("legend", {}, label),
    ["x", "y", "z"].map((axis, i) => field(`${axis} (m)`, number(`${prefix}-${axis}`, values[i], { "aria-label": `${label} ${axis} in metres` }))));
}

function materialSelect(name, label, withSame) {
  const select = h("select", { name },
    withSame ? h("option", { value: "" }, "Same as the walls") : null,
    h("option", { value: "per-band" }, "Absorption per band…"),
    (materials || []).map((m) => h("option", { value: m, selected: !withSame && m === "hard_surface" }, m.replace(/_/g, " "))));
  return field(label, select);
}

function absorptionInputs() {
  return h("fieldset", { class: "bands", hidden: true },
    h("legend", {}, "Wall absorption per band (0 to 1)"),
    ABSORPTION_BANDS.map((hz) => field(`${bandLabel(hz)} Hz`, number(`abs-${hz}`, 0.2, { min: 0, max: 1 }))));
}

function read(form) {
  const v = (name) => Number(form.elements[name].value);
  const xyz = (prefix) => ["x", "y", "z"].map((axis) => v(`${prefix}-${axis}`));
  const walls = form.elements.walls.value;
  const materialsOut = {
    default: walls === "per-band" ? { absorption: ABSORPTION_BANDS.map((hz) => v(`abs-${hz}`)) } : walls,
  };
  if (form.elements.floor.value && form.elements.floor.value !== "per-band") materialsOut.floor = form.elements.floor.value;
  const receivers = [...form.querySelectorAll("fieldset.receiver")].map((_, i) => xyz(`receiver${i}`));
  return {
    room: { shape: "shoebox", dimensions: [v("dim-x"), v("dim-y"), v("dim-z")] },
    materials: materialsOut,
    sources: [xyz("source")],
    receivers,
    sample_rate: Number(form.elements.sample_rate.value),
  };
}

export function mount(app) {
  const node = h("section", { class: "screen simulate" });
  const status = h("div", { class: "sim-status", role: "status" });
  const plot = h("div", { class: "chart chart-sim" });
  const form = h("form", { class: "card", "aria-labelledby": "sim-title" },
    h("h1", { id: "sim-title" }, "Simulate a room"),
    h("p", { class: "small" }, "A shoebox room: its walls, floor and ceiling, one source and the listening positions."),
    h("fieldset", { class: "point" }, h("legend", {}, "Room size"),
      ["x", "y", "z"].map((axis, i) => field(["Length (m)", "Width (m)", "Height (m)"][i], number(`dim-${axis}`, [6, 5, 3][i], { min: 0.5, max: 100 })))),
    h("div", { class: "materials" }, materialSelect("walls", "Walls and ceiling", false), materialSelect("floor", "Floor", true)),
    absorptionInputs(),
    point("Source", [1.5, 1.5, 1.5], "source"),
    h("fieldset", { class: "receiver point" }, h("legend", {}, "Receiver 1"),
      ["x", "y", "z"].map((axis, i) => field(`${axis} (m)`, number(`receiver0-${axis}`, [4.2, 3.1, 1.2][i], { "aria-label": `Receiver 1 ${axis} in metres` })))),
    h("fieldset", { class: "receiver point" }, h("legend", {}, "Receiver 2"),
      ["x", "y", "z"].map((axis, i) => field(`${axis} (m)`, number(`receiver1-${axis}`, [3.0, 1.2, 1.6][i], { "aria-label": `Receiver 2 ${axis} in metres` })))),
    field("Sample rate", h("select", { name: "sample_rate" }, h("option", { value: 16000 }, "16 kHz (fast)"), h("option", { value: 48000 }, "48 kHz"))),
    h("button", { type: "submit", class: "primary big" }, "Simulate"),
    status);
  form.addEventListener("change", (event) => {
    if (event.target.name === "walls") form.querySelector("fieldset.bands").hidden = event.target.value !== "per-band";
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    status.textContent = "Sending…";
    try {
      const job = await app.connection.command("simulation.request", {
        client_request_id: `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`,
        request: read(form),
      });
      app.simulationShown = job.job_id;
      update(app, node);
    } catch (error) {
      status.textContent = error.message;
    } finally {
      submit.disabled = false;
    }
  });
  node.append(form, plot);
  if (materials === null) {
    fetch("/v1/materials").then((r) => (r.ok ? r.json() : [])).then((names) => {
      materials = names;
      for (const [name, label, same] of [["walls", "Walls and ceiling", false], ["floor", "Floor", true]]) {
        const old = form.elements[name].closest(".field");
        old.replaceWith(materialSelect(name, label, same));
      }
    }).catch(() => {});
  }
  update(app, node);
  return node;
}

function drawComparison(app, node, summary) {
  const measured = latestMeasurement(app.state)?.result;
  const bands = summary.bands;
  const measuredT30 = bands.map((hz) => {
    const i = measured ? measured.bands.indexOf(hz) : -1;
    return i >= 0 ? measured.average.T30.mean[i] : null;
  });
  const series = [
    { label: "Simulated T30", values: summary.average.T30.mean },
    { label: "Sabine", values: summary.sabine, dash: [6, 4] },
    { label: "Eyring", values: summary.eyring, dash: [2, 3] },
  ];
  if (measuredT30.some((v) => v !== null)) series.unshift({ label: "Measured T30", values: measuredT30, colour: "#c92a2a" });
  return chart(node.querySelector(".chart-sim"), {
    title: "Reverberation time: simulated, predicted, measured",
    x: bands.map((_, i) => i),
    bands,
    xLabel: "Octave band (Hz)",
    yLabel: "seconds",
    points: true,
    fromZero: true,
    series,
  });
}

export function update(app, node) {
  const status = node.querySelector(".sim-status");
  const job = app.simulationShown && app.state.simulations.get(app.simulationShown);
  if (!job) return;
  if (job.state === "succeeded" && job.summary) {
    if (node.dataset.drawn === job.id) return;
    node.dataset.drawn = job.id;
    const s = job.summary;
    const rays = s.method?.ray_tracing ? ", then ray tracing" : "";
    replace(status, h("p", {}, `Done: a ${formatNumber(s.volume, 1)} m³ room, image sources to order ${s.method?.image_source_order ?? "?"}${rays}.`));
    drawComparison(app, node, s).catch((error) => app.say(error.message));
  } else if (job.state === "failed" || job.state === "cancelled") {
    replace(status, h("p", { class: "notice" }, `The simulation ${job.state}: ${job.error || ""}`));
  } else {
    replace(status, h("p", {}, `${job.stage}…`), h("progress", { max: 1, value: job.progress, "aria-label": "Simulation progress" }));
  }
}
