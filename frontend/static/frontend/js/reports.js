// The reports page: reads the filters, keeps them in the URL (a link reproduces the
// view), fetches the report endpoints of /api/v1/t/<slug>/reports/ and draws the
// headline row, the charts and their tables, without reloading the page.

import { api } from "./api.js";
import { change, day, duration, el, percent } from "./report_format.js";
import * as panels from "./report_panels.js";
// The goodwill gestures section fills itself from its own fragment.
import "./goodwill.js";

const FILTERS = ["start", "end", "brand", "account", "platform", "agent"];
const RATES = new Set(["response_rate", "breach_rate"]);

function start(root) {
  const slug = root.dataset.slug;
  const form = document.getElementById("report-filters");
  const alertBox = document.getElementById("report-alert");
  const simulations = JSON.parse(document.getElementById("simulations")?.textContent || "[]");
  let generation = 0;
  let volumeBy = "platform";
  let lastSeries = null;

  readUrl(form);
  limitAccounts(form);

  form.addEventListener("change", (event) => {
    if (event.target.name === "brand") limitAccounts(form);
    refresh();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  for (const radio of document.querySelectorAll('input[name="volume-by"]')) {
    radio.addEventListener("change", () => {
      volumeBy = radio.value;
      if (lastSeries) panels.volume(lastSeries, volumeBy);
    });
  }
  window.addEventListener("popstate", () => {
    readUrl(form);
    limitAccounts(form);
    refresh({ push: false });
  });

  refresh({ push: false });

  async function refresh({ push = true } = {}) {
    const query = filterQuery(form);
    writeUrl(query, push);
    exportLinks(root, query);
    panels.simulation(simulations, form.elements.brand.value);
    const mine = ++generation;
    root.setAttribute("aria-busy", "true");
    const get = (path) => api(slug, "GET", `reports/${path}?${query}`);
    try {
      const [summary, series, fairness, heatmap, agents] = await Promise.all([
        get("summary/"),
        get("timeseries/"),
        get("fairness/"),
        get("heatmap/"),
        get("agents/"),
      ]);
      if (mine !== generation) return;
      showErrors(form, alertBox, null);
      headline(summary, series);
      lastSeries = series;
      panels.volume(series, volumeBy);
      panels.firstResponse(series);
      panels.fairness(fairness);
      panels.heatmap(heatmap);
      panels.agents(agents);
      panels.offHours(summary);
    } catch (error) {
      if (mine !== generation) return;
      showErrors(form, alertBox, error);
    } finally {
      if (mine === generation) root.removeAttribute("aria-busy");
    }
  }
}

// The filters as a query string; `compare` is always explicit.
function filterQuery(form) {
  const params = new URLSearchParams();
  for (const name of FILTERS) {
    const value = form.elements[name].value.trim();
    if (value) params.set(name, value);
  }
  params.set("compare", form.elements.compare.checked ? "1" : "0");
  return params.toString();
}

// The URL's filters into the form; a filter the URL leaves out is "all" (the
// dates fall back to the period the page opened with).
function readUrl(form) {
  const params = new URLSearchParams(window.location.search);
  for (const name of FILTERS) {
    const field = form.elements[name];
    const fallback = field.tagName === "SELECT" ? "" : field.defaultValue;
    field.value = params.get(name) ?? fallback;
  }
  form.elements.compare.checked = params.get("compare") !== "0";
}

function writeUrl(query, push) {
  const url = `${window.location.pathname}?${query}`;
  if (url === `${window.location.pathname}${window.location.search}`) return;
  if (push) window.history.pushState(null, "", url);
  else window.history.replaceState(null, "", url);
}

// Only the chosen brand's accounts are offered (all when no brand is chosen).
function limitAccounts(form) {
  const brand = form.elements.brand.value;
  const select = form.elements.account;
  for (const option of select.options) {
    if (!option.value) continue;
    option.hidden = Boolean(brand) && option.dataset.brand !== brand;
  }
  if (select.selectedOptions[0]?.hidden) select.value = "";
}

function exportLinks(root, query) {
  const exportQuery = new URLSearchParams(query);
  exportQuery.delete("compare");
  const base = root.dataset.api;
  document.getElementById("export-aggregates").href = `${base}aggregates.csv?${exportQuery}`;
  document.getElementById("export-conversations").href = `${base}conversations.csv?${exportQuery}`;
}

// A 400's field messages beside the filters; anything else as one alert.
function showErrors(form, alertBox, error) {
  for (const field of form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
  for (const old of form.querySelectorAll(".field-error")) old.remove();
  if (!error) {
    alertBox.hidden = true;
    alertBox.textContent = "";
    return;
  }
  const fields = error.fields || {};
  const messages = [];
  for (const [name, texts] of Object.entries(fields)) {
    const text = [].concat(texts).join(" ");
    const input = form.elements[name];
    if (input instanceof Element) {
      input.setAttribute("aria-invalid", "true");
      input.closest(".filter").append(el("span", { className: "field-error", text, attrs: { "data-field": name } }));
    }
    const label = input instanceof Element ? input.labels?.[0]?.textContent.trim() : "";
    messages.push(label ? `${label}: ${text}` : text);
  }
  alertBox.textContent = messages.length
    ? `The report could not be drawn. ${messages.join(" ")}`
    : error.message || "The report could not be loaded. Try again in a moment.";
  alertBox.hidden = false;
}

function headline(summary, days) {
  const current = summary.period || {};
  const previous = summary.previous || null;
  let text = `${day(current.start)} to ${day(current.end)}`;
  if (previous) text += `, compared with ${day(previous.start)} to ${day(previous.end)}`;
  document.getElementById("report-period").textContent = text;
  const target = days[0]?.target_seconds ?? null;

  for (const item of document.querySelectorAll("#kpis .kpi")) {
    const metric = item.dataset.metric;
    const better = item.dataset.better;
    const kind = RATES.has(metric) ? "rate" : "time";
    const value = current[metric];
    item.querySelector(".kpi-value").textContent = kind === "rate" ? percent(value) : duration(value);
    const box = item.querySelector(".kpi-change");
    box.replaceChildren();
    item.dataset.verdict = "none";
    if (previous) {
      const delta = change(kind, value, previous[metric], better);
      item.dataset.verdict = delta.verdict;
      if (delta.arrow) box.append(el("span", { className: "arrow", text: delta.arrow, attrs: { "aria-hidden": "true" } }));
      box.append(
        el("span", { text: delta.text, attrs: { "aria-hidden": "true" } }),
        el("span", { className: "sr-only", text: delta.spoken }),
      );
    }
    item.querySelector(".kpi-detail").textContent = detail(metric, current, better, target);
  }
  document.getElementById("kpi-foot").textContent = current.conversations
    ? `${current.conversations} conversations, ${current.needing_reply} needed an answer (${current.no_reply} marked "no reply needed"), ${current.answered} answered: ${percent(current.public_response_rate)} of public ones and ${percent(current.private_response_rate)} of private ones; ${percent(current.answered_within_1h)} within 1 hour, ${percent(current.answered_within_24h)} within 24 hours. Times are in calendar hours; percentiles are accurate to within 1%.`
    : "No conversations in this period.";
}

// Which way is good, and the figure's context (target, business hours).
function detail(metric, current, better, target) {
  const parts = [better === "up" ? "Higher is better." : "Lower is better."];
  const business = current[metric.replace("first_response", "first_response_business")];
  if (metric.startsWith("first_response") && typeof business === "number") {
    parts.push(`In business hours: ${duration(business)}.`);
  }
  if (metric === "first_response_p90" && target !== null) parts.push(`Target ${duration(target)}.`);
  if (metric === "breach_rate" && current.breaches) {
    parts.push(`${current.breaches} ${current.breaches === 1 ? "breach" : "breaches"}.`);
  }
  return parts.join(" ");
}

const root = document.getElementById("reports");
if (root) start(root);
