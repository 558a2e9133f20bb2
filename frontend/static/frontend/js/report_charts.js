// The reports page's charts: Chart.js (vendored, frontend/vendor/chartjs) on canvas,
// each drawn again from scratch when the report's data changes. Every chart has a
// table beside it (report_panels.js) for screen readers and for exact figures.

const PALETTE = ["#3651d4", "#0e9384", "#f79009", "#d444f1", "#667085", "#e31b54", "#15b79e", "#875bf7", "#2e90fa"];
export const SERIES_COLOURS = {
  negative: "#d92d20",
  neutral: "#98a2b3",
  positive: "#067647",
  p50: "#3651d4",
  p90: "#f79009",
  target: "#d92d20",
};

const charts = new Map();

function colour(key, index) {
  return SERIES_COLOURS[key] || PALETTE[index % PALETTE.length];
}

function library() {
  return window.Chart || null;
}

const baseOptions = (yTitle) => ({
  responsive: true,
  maintainAspectRatio: false,
  animation: false,
  interaction: { mode: "index", intersect: false },
  plugins: {
    legend: { position: "bottom", labels: { boxWidth: 12, boxHeight: 12, usePointStyle: true } },
  },
  scales: {
    x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
    y: { beginAtZero: true, title: { display: Boolean(yTitle), text: yTitle }, ticks: { precision: 0 } },
  },
});

// Draw (or redraw) the chart on `canvas`; with no data, clear it.
export function draw(canvas, config) {
  const Chart = library();
  charts.get(canvas)?.destroy();
  charts.delete(canvas);
  if (!Chart || !config) return null;
  const chart = new Chart(canvas, config);
  charts.set(canvas, chart);
  return chart;
}

// Bars: one group per label, one bar per series in each (`stacked`: one bar per
// label, the series on top of each other).
function bars(labels, series, yTitle, { stacked = false } = {}) {
  const options = baseOptions(yTitle);
  options.scales.x.stacked = stacked;
  options.scales.y.stacked = stacked;
  if (!stacked) options.scales.y.ticks = {};
  return {
    type: "bar",
    data: {
      labels,
      datasets: series.map(({ key, label, values }, i) => ({
        label,
        data: values,
        backgroundColor: colour(key, i),
        borderWidth: 0,
        maxBarThickness: stacked ? 36 : 48,
      })),
    },
    options,
  };
}

export const stackedBars = (labels, series, yTitle) => bars(labels, series, yTitle, { stacked: true });
export const groupedBars = (labels, series, yTitle) => bars(labels, series, yTitle);

// Lines over time, with an optional dashed horizontal target.
export function lines(labels, series, yTitle, target) {
  const datasets = series.map(({ key, label, values }, i) => ({
    label,
    data: values,
    borderColor: colour(key, i),
    backgroundColor: colour(key, i),
    borderWidth: 2,
    // The p90 marker is larger and square, so it shows where it meets the p50.
    pointRadius: labels.length > 40 ? 0 : key === "p90" ? 5 : 3,
    pointStyle: key === "p90" ? "rect" : "circle",
    spanGaps: true,
    tension: 0.25,
  }));
  if (target !== null && target !== undefined) {
    datasets.push({
      label: target.label,
      data: labels.map(() => target.value),
      borderColor: SERIES_COLOURS.target,
      backgroundColor: SERIES_COLOURS.target,
      borderDash: [6, 4],
      borderWidth: 1.5,
      pointRadius: 0,
      pointStyle: "line",
    });
  }
  return { type: "line", data: { labels, datasets }, options: baseOptions(yTitle) };
}
