// The panels of the reports page: each takes one endpoint's JSON and draws its
// chart, its table (the screen-reader and exact-figures fallback) and its empty
// state.

import { draw, groupedBars, lines, stackedBars } from "./report_charts.js";
import {
  BAND_LABELS,
  WEEKDAYS,
  day,
  count,
  duration,
  el,
  minutes,
  percent,
  ratio,
  table,
} from "./report_format.js";

const FAIRNESS_LIMIT = 1.2; // helpdesk.reports.FAIRNESS_LIMIT
const SPLIT_LABELS = {
  platform: {
    sandbox: "Sandbox", x: "X", facebook: "Facebook", instagram: "Instagram", reddit: "Reddit",
    mastodon: "Mastodon", bluesky: "Bluesky", reviews: "Review sites", api: "API channel",
  },
  origin: {
    mention: "Mention", listening: "Listening (untagged)", comment: "Comment",
    direct_message: "Direct message", review: "Review", api: "API",
  },
  sentiment: { negative: "Negative", neutral: "Neutral", positive: "Positive" },
};
const POLICY_LABELS = { earshot: "Earshot's order", fifo: "Oldest first (FIFO)", loudest: "Loudest first" };

const panel = (id) => document.getElementById(id);

function setEmpty(section, empty) {
  section.querySelector("[data-empty]").hidden = !empty;
  const box = section.querySelector(".chart-box");
  if (box) box.hidden = empty;
  const details = section.querySelector("details.as-table");
  if (details) details.hidden = empty;
}

function fill(section, node) {
  section.querySelector("[data-table]").replaceChildren(...(node ? [node] : []));
}

// Volume over time, split by platform, origin or sentiment.
export function volume(days, by) {
  const section = panel("panel-volume");
  const points = days || [];
  const total = points.reduce((sum, p) => sum + (p.inbound || 0), 0);
  setEmpty(section, total === 0);
  const canvas = section.querySelector("canvas");
  if (total === 0) {
    draw(canvas, null);
    fill(section, null);
    return;
  }
  const field = `inbound_by_${by}`;
  const keys = [...new Set(points.flatMap((p) => Object.keys(p[field] || {})))].sort();
  const names = SPLIT_LABELS[by] || {};
  const labels = points.map((p) => day(p.date, { year: false }));
  const split = keys.map((key) => ({
    key,
    label: names[key] || key,
    values: points.map((p) => (p[field] || {})[key] || 0),
  }));
  draw(canvas, stackedBars(labels, split, "messages"));
  canvas.setAttribute("aria-label", `Inbound messages per day by ${by}`);
  fill(section, table(
    `Inbound messages per day by ${by}`,
    [
      ["Day", (row) => row.label],
      ...split.map((s) => [s.label, (row) => count(row.values[s.key]), { numeric: true }]),
      ["Total", (row) => count(row.total), { numeric: true }],
    ],
    points.map((p, i) => ({
      label: labels[i],
      values: Object.fromEntries(split.map((s) => [s.key, s.values[i]])),
      total: p.inbound || 0,
    })),
  ));
}

// First-response p50 and p90 per day against the target line (minutes).
export function firstResponse(days) {
  const section = panel("panel-first-response");
  const points = days || [];
  const answered = points.filter((p) => typeof p.first_response_p50 === "number");
  setEmpty(section, answered.length === 0);
  const canvas = section.querySelector("canvas");
  if (answered.length === 0) {
    draw(canvas, null);
    fill(section, null);
    return;
  }
  const labels = points.map((p) => day(p.date, { year: false }));
  const target = points[0]?.target_seconds ?? null;
  draw(canvas, lines(
    labels,
    [
      { key: "p50", label: "Median", values: points.map((p) => minutes(p.first_response_p50)) },
      { key: "p90", label: "90th percentile", values: points.map((p) => minutes(p.first_response_p90)) },
    ],
    "minutes",
    typeof target === "number" ? { label: `Target (${duration(target)})`, value: minutes(target) } : null,
  ));
  fill(section, table(
    "First-response time per period",
    [
      ["Day", (row) => row.label],
      ["Median", (row) => duration(row.p50), { numeric: true }],
      ["90th percentile", (row) => duration(row.p90), { numeric: true }],
      ["Target", () => duration(target), { numeric: true }],
    ],
    points.map((p, i) => ({ label: labels[i], p50: p.first_response_p50, p90: p.first_response_p90 })),
  ));
}

// R10: first-response time by follower band, and slowest ÷ fastest.
export function fairness(data) {
  const section = panel("panel-fairness");
  const bands = Object.keys(BAND_LABELS).map((band) => ({ band, ...(data.bands || {})[band] }));
  const measured = bands.filter((b) => typeof b.first_response_p50 === "number");
  const box = document.getElementById("fairness-ratio");
  setEmpty(section, measured.length === 0);
  const canvas = section.querySelector("canvas");
  box.replaceChildren();
  box.className = "fairness-ratio";
  if (measured.length === 0) {
    draw(canvas, null);
    fill(section, null);
    return;
  }
  const value = data.ratio;
  const unfair = Boolean(data.flagged);
  box.classList.add(unfair ? "unfair" : "fair");
  box.append(
    el("span", { className: "ratio-label", text: "Slowest band ÷ fastest band (90th percentile)" }),
    el("strong", { className: "ratio-value", text: ratio(value) }),
    el("span", {
      className: "ratio-note",
      text: typeof value !== "number"
        ? "Needs first responses in at least two bands."
        : unfair
          ? `Above ${FAIRNESS_LIMIT}: some customers wait noticeably longer because of their reach.`
          : `Within ${FAIRNESS_LIMIT}: customers are answered alike, whatever their reach.`,
    }),
  );
  const label = (b) => BAND_LABELS[b.band];
  draw(canvas, groupedBars(
    bands.map((b) => `${label(b)} followers`),
    [
      { key: "p50", label: "Median", values: bands.map((b) => minutes(b.first_response_p50)) },
      { key: "p90", label: "90th percentile", values: bands.map((b) => minutes(b.first_response_p90)) },
    ],
    "minutes",
  ));
  fill(section, table(
    "First-response time by follower band",
    [
      ["Followers", label],
      ["Answered", (b) => count(b.answered), { numeric: true }],
      ["Median", (b) => duration(b.first_response_p50), { numeric: true }],
      ["90th percentile", (b) => duration(b.first_response_p90), { numeric: true }],
    ],
    bands,
  ));
}

// Hour-of-week grid of inbound volume; staffed hours outlined.
export function heatmap(data) {
  const section = panel("panel-heatmap");
  const inbound = data.inbound || [];
  const staffed = data.staffed || [];
  const max = Math.max(0, ...inbound.flat());
  document.getElementById("heatmap-zone").textContent = data.timezone ? ` (${data.timezone})` : "";
  document.getElementById("heatmap-hint").hidden = max === 0 || staffed.flat().some(Boolean);
  setEmpty(section, max === 0);
  if (max === 0) {
    fill(section, null);
    return;
  }
  const hours = [...Array(24).keys()];
  const head = el("tr", {}, [
    el("td", { className: "corner" }),
    ...hours.map((h) => el("th", { text: String(h).padStart(2, "0"), attrs: { scope: "col", abbr: `${h}:00` } })),
  ]);
  const rows = WEEKDAYS.map((name, weekday) => el("tr", {}, [
    el("th", { text: name.slice(0, 3), attrs: { scope: "row", abbr: name } }),
    ...hours.map((hour) => {
      const cell = { staffed: Boolean(staffed[weekday]?.[hour]) };
      const n = inbound[weekday]?.[hour] || 0;
      const level = n === 0 ? 0 : Math.max(1, Math.ceil((n / max) * 5));
      const td = el("td", {
        className: `heat-${level}${cell.staffed ? " staffed" : ""}`,
        text: n,
        attrs: { title: `${name} ${String(hour).padStart(2, "0")}:00: ${n} messages${cell.staffed ? ", staffed" : ", not staffed"}` },
      });
      if (cell.staffed) td.append(el("span", { className: "sr-only", text: ", staffed" }));
      return td;
    }),
  ]));
  fill(section, el("table", { className: "heatmap" }, [
    el("caption", { className: "sr-only", text: "Inbound messages by weekday and hour; staffed hours are marked" }),
    el("thead", {}, [head]),
    el("tbody", {}, rows),
  ]));
}

export function agents(data) {
  const section = panel("panel-agents");
  const rows = data || [];
  setEmpty(section, rows.length === 0);
  fill(section, rows.length === 0 ? null : table(
    "Answers per agent",
    [
      ["Agent", (a) => a.display_name || `Former member ${a.agent_id}`],
      ["Answered", (a) => count(a.answered), { numeric: true }],
      ["Median first response", (a) => duration(a.first_response_p50), { numeric: true }],
      ["Public replies", (a) => count(a.public_replies), { numeric: true }],
      ["Moves to private", (a) => count(a.private_moves), { numeric: true }],
      ["No-reply marks", (a) => count(a.no_reply), { numeric: true }],
    ],
    rows,
    { className: "table report-table agents-table" },
  ));
}

export function offHours(summary) {
  const coverage = (summary.period || {}).off_hours_coverage;
  const measured = typeof coverage === "number";
  document.getElementById("offhours-figure").textContent = measured ? percent(coverage) : "—";
  document.getElementById("offhours-detail").textContent = measured
    ? "of the conversations that began outside business hours."
    : "No conversation began outside business hours in this period.";
}

// The last simulated day of the chosen brand (or the newest of any brand).
export function simulation(runs, brand) {
  const section = panel("panel-simulation");
  const run = brand ? runs.find((r) => String(r.brand) === brand) : runs[0];
  const known = Object.keys(POLICY_LABELS);
  const rank = (p) => (known.includes(p) ? known.indexOf(p) : known.length);
  const policies = run ? Object.keys(run.policies).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b)) : [];
  setEmpty(section, policies.length === 0);
  const canvas = section.querySelector("canvas");
  const caption = document.getElementById("sim-caption");
  if (policies.length === 0) {
    caption.textContent = "";
    draw(canvas, null);
    fill(section, null);
    return;
  }
  const params = run.parameters || {};
  const bits = [
    params.volume && `${params.volume} conversations`,
    params.agents && `${params.agents} agents`,
    params.seed !== undefined && `seed ${params.seed}`,
  ].filter(Boolean);
  const at = new Date(run.created_at).toISOString().slice(11, 16);
  caption.textContent = `${run.brand_name}, run on ${day(run.created_at)} at ${at} UTC${bits.length ? ` (${bits.join(", ")})` : ""}: first-response time by queue policy.`;
  const label = (p) => POLICY_LABELS[p] || p;
  const figures = (p) => run.policies[p];
  draw(canvas, groupedBars(
    policies.map(label),
    [
      { key: "p50", label: "Median", values: policies.map((p) => minutes(figures(p).first_response_p50)) },
      { key: "p90", label: "90th percentile", values: policies.map((p) => minutes(figures(p).first_response_p90)) },
    ],
    "minutes",
  ));
  fill(section, table(
    "The simulated day by queue policy",
    [
      ["Policy", label],
      ["Response rate", (p) => percent(figures(p).response_rate), { numeric: true }],
      ["First response, median", (p) => duration(figures(p).first_response_p50), { numeric: true }],
      ["First response, p90", (p) => duration(figures(p).first_response_p90), { numeric: true }],
      ["Next response, p90", (p) => duration(figures(p).next_response_p90), { numeric: true }],
      ["Breaches", (p) => count(figures(p).breaches), { numeric: true }],
      ["Fairness ratio", (p) => ratio(figures(p).fairness_ratio), { numeric: true }],
    ],
    policies,
  ));
}
