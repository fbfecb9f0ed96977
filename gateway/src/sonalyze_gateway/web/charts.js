// Charts with uPlot (loaded on the first chart, so the lobby screens stay light).

let loading = null;

function load() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const css = document.createElement("link");
      css.rel = "stylesheet";
      css.href = "/app/vendor/uplot/uPlot.min.css";
      document.head.append(css);
      const script = document.createElement("script");
      script.src = "/app/vendor/uplot/uPlot.iife.min.js";
      script.onload = () => resolve(window.uPlot);
      script.onerror = () => reject(new Error("the chart library did not load"));
      document.head.append(script);
    });
  }
  return loading;
}

// On a frequency axis, only these ticks get a label (uPlot puts one at every 1-9 x 10^n).
const LOG_LABELS = new Set([20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000]);
const COLOURS = ["#0b7285", "#e8590c", "#5f3dc4", "#2b8a3e", "#c2255c", "#1864ab", "#8d6e00", "#495057"];

export function colour(i) {
  return COLOURS[i % COLOURS.length];
}

function width(container) {
  return Math.max(260, Math.min(640, container.clientWidth || document.getElementById("view").clientWidth - 32));
}

// A chart into `container`: `x` values, `series` [{label, values, dash?}], axis labels.
export async function chart(container, { title, x, series, xLabel, yLabel, log = false, bands = null, points = false, fromZero = false }) {
  const uPlot = await load();
  container.replaceChildren();
  container.setAttribute("role", "img");
  container.setAttribute("aria-label", `${title}: chart`);
  const opts = {
    title,
    width: width(container),
    height: 240,
    scales: {
      x: log ? { time: false, distr: 3, log: 10 } : { time: false },
      y: fromZero ? { range: (_, min, max) => [0, Math.max(0.1, max * 1.15)] } : {},
    },
    axes: [
      {
        label: xLabel,
        values: bands
          ? (_, ticks) => ticks.map((t) => (bands[t] === undefined ? "" : bandLabel(bands[t])))
          : log ? (_, ticks) => ticks.map((t) => (LOG_LABELS.has(Math.round(t)) ? bandLabel(Math.round(t)) : "")) : undefined,
        splits: bands ? () => bands.map((_, i) => i) : undefined,
      },
      { label: yLabel },
    ],
    legend: { live: false },
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.colour || colour(i),
        width: 2,
        dash: s.dash,
        points: { show: points || s.points },
        spanGaps: false,
      })),
    ],
  };
  return new uPlot(opts, [x, ...series.map((s) => s.values)], container);
}

export function bandLabel(hz) {
  return hz >= 1000 ? `${hz / 1000}k` : `${hz}`;
}
