// The lobby's earlier measurements and simulations, newest first.

import { formatNumber, h, replace } from "../ui.js";

const STATES = {
  scheduled: "scheduled",
  recording: "recording",
  analyzing: "analysing",
  completed: "analysed",
  failed: "failed",
  aborted: "stopped",
};

export function mount(app) {
  const node = h("section", { class: "screen history" });
  update(app, node);
  return node;
}

function when(ts) {
  return ts ? new Date(ts).toLocaleString() : "";
}

export function update(app, node) {
  const measurements = [...app.state.measurements.values()].filter((m) => m.started).sort((a, b) => b.at - a.at);
  const simulations = [...app.state.simulations.values()].sort((a, b) => (b.at || 0) - (a.at || 0));
  replace(node,
    h("h1", {}, "History"),
    h("div", { class: "card" },
      h("h2", {}, "Measurements"),
      measurements.length
        ? h("ul", { class: "list" }, measurements.map((m) => {
          const t30 = m.result?.average?.T30?.mean;
          const mid = t30 ? t30[Math.floor(t30.length / 2)] : null;
          return h("li", {},
            h("span", {}, `${when(m.at)} · ${m.started.microphones.length} mic · ${STATES[m.state] || m.state}`, mid !== null && mid !== undefined ? ` · T30 ${formatNumber(mid)} s at 1 kHz` : ""),
            m.result ? h("button", { type: "button", onclick: () => app.show("results", m.id), "aria-label": `Open the results of ${when(m.at)}` }, "Open") : null);
        }))
        : h("p", {}, "None yet.")),
    h("div", { class: "card" },
      h("h2", {}, "Simulations"),
      simulations.length
        ? h("ul", { class: "list" }, simulations.map((s) => h("li", {},
          h("span", {}, `${when(s.at)} · ${s.state}${s.summary ? ` · ${formatNumber(s.summary.volume, 1)} m³` : ""}`),
          s.summary ? h("button", { type: "button", onclick: () => { app.simulationShown = s.id; app.show("simulate"); }, "aria-label": `Open the simulation of ${when(s.at)}` }, "Open") : null)))
        : h("p", {}, "None yet.")));
}
