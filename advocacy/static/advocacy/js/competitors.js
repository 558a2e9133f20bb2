// The competitor feed's chart: mentions per day or hour by sentiment, from
// /api/v1/t/<slug>/competitors/volume/, drawn with the reports' Chart.js helpers.
import { api } from "../../frontend/js/api.js";
import { draw, stackedBars } from "../../frontend/js/report_charts.js";

const panel = document.getElementById("competitor-volume");
const bucketSelect = document.getElementById("c-bucket");

function label(iso, bucket) {
  const at = new Date(iso);
  return bucket === "hour"
    ? at.toLocaleString(undefined, { day: "numeric", month: "short", hour: "2-digit" })
    : at.toLocaleDateString(undefined, { day: "numeric", month: "short" });
}

function totalsRow(series) {
  const row = document.createElement("tr");
  const sum = (key) => series.points.reduce((n, point) => n + point[key], 0);
  for (const text of [`${series.rule.name} · ${series.brand.name}`, sum("total"), sum("negative"), sum("neutral"), sum("positive")]) {
    const cell = document.createElement("td");
    cell.textContent = String(text);
    row.append(cell);
  }
  return row;
}

async function load() {
  const bucket = bucketSelect?.value || "day";
  const params = new URLSearchParams({ bucket });
  const today = new Date();
  if (bucket === "hour") {
    const start = new Date(today.getTime() - 86400000);
    params.set("start", start.toISOString().slice(0, 10));
  }
  if (panel.dataset.rule) params.set("rule", panel.dataset.rule);
  const error = panel.querySelector("[data-error]");
  error.hidden = true;
  let series;
  try {
    series = await api(panel.dataset.slug, "GET", `competitors/volume/?${params}`);
  } catch (failure) {
    error.textContent = failure.describe ? failure.describe() : String(failure);
    error.hidden = false;
    return;
  }
  panel.querySelector("[data-bucket-label]").textContent = bucket;
  const points = series[0]?.points || [];
  const labels = points.map((point) => label(point.at, bucket));
  const sums = (key) => points.map((_, i) => series.reduce((n, each) => n + each.points[i][key], 0));
  draw(
    document.getElementById("chart-competitors"),
    stackedBars(
      labels,
      [
        { key: "negative", label: "Negative", values: sums("negative") },
        { key: "neutral", label: "Neutral", values: sums("neutral") },
        { key: "positive", label: "Positive", values: sums("positive") },
      ],
      "Mentions",
    ),
  );
  const body = panel.querySelector("[data-totals] tbody");
  body.replaceChildren(...series.map(totalsRow));
}

if (panel) {
  const params = new URLSearchParams(window.location.search);
  if (bucketSelect && params.get("bucket") === "hour") bucketSelect.value = "hour";
  // Chart.js loads deferred; modules run after deferred scripts, so it is there.
  load();
}
