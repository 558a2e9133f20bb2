// Formatting and small DOM helpers of the reports page. Text goes in through
// textContent only: nothing a customer or an agent typed is parsed as HTML.

export const BAND_LABELS = { small: "Under 100", medium: "100 to 10k", large: "Over 10k" };
export const WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

const isNumber = (value) => typeof value === "number" && Number.isFinite(value);

// 42 → "42 s", 720 → "12 min", 5400 → "1 h 30 min", 90000 → "1 d 1 h".
export function duration(seconds) {
  if (!isNumber(seconds)) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) {
    const h = Math.floor(s / 3600);
    const m = Math.round((s % 3600) / 60);
    return m ? `${h} h ${m} min` : `${h} h`;
  }
  const d = Math.floor(s / 86400);
  const h = Math.round((s % 86400) / 3600);
  return h ? `${d} d ${h} h` : `${d} d`;
}

// A share (0..1) as a percentage: 0.925 → "92.5%", 1 → "100%".
export function percent(share) {
  if (!isNumber(share)) return "—";
  return `${trim((share * 100).toFixed(1))}%`;
}

export function ratio(value) {
  return isNumber(value) ? `${value.toFixed(2)}×` : "—";
}

export function count(value) {
  return isNumber(value) ? value.toLocaleString("en") : "—";
}

export function minutes(seconds) {
  return isNumber(seconds) ? Math.round((seconds / 60) * 10) / 10 : null;
}

const trim = (text) => text.replace(/\.0$/, "");

// "2026-12-05" or an ISO datetime → "5 Dec 2026"; with an hour, "5 Dec 14:00".
export function day(iso, { year = true } = {}) {
  if (!iso) return "";
  const date = new Date(iso.length === 10 ? `${iso}T00:00:00Z` : iso);
  return date.toLocaleDateString("en-GB", {
    day: "numeric",
    month: "short",
    ...(year ? { year: "numeric" } : {}),
    timeZone: "UTC",
  });
}

// The change from `previous` to `current` of a metric whose good direction is
// `better` ("up" or "down"): {arrow, text, verdict, spoken}.
export function change(kind, current, previous, better) {
  if (!isNumber(current)) {
    return { arrow: "", text: "", verdict: "none", spoken: "" };
  }
  if (!isNumber(previous)) {
    return { arrow: "", text: "no earlier figure", verdict: "none", spoken: "No figure for the previous period." };
  }
  const delta = current - previous;
  const size = kind === "rate" ? `${trim(Math.abs(delta * 100).toFixed(1))} pts` : duration(Math.abs(delta));
  if (Math.abs(delta) < (kind === "rate" ? 0.0005 : 0.5)) {
    return { arrow: "→", text: "no change", verdict: "flat", spoken: "No change from the previous period." };
  }
  const up = delta > 0;
  const good = up === (better === "up");
  const was = kind === "rate" ? percent(previous) : duration(previous);
  return {
    arrow: up ? "▲" : "▼",
    text: size,
    verdict: good ? "good" : "bad",
    spoken: `${up ? "Up" : "Down"} ${size} from ${was}: ${good ? "better" : "worse"}.`,
  };
}

export function el(tag, { className, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) if (child) node.append(child);
  return node;
}

// A plain data table: `columns` are [header, (row) => text, {numeric}] triples.
export function table(caption, columns, rows, { className = "table report-table" } = {}) {
  const head = el("tr", {}, columns.map(([label, , opts]) =>
    el("th", { text: label, className: opts?.numeric ? "num" : "", attrs: { scope: "col" } })));
  const body = rows.map((row) => el("tr", {}, columns.map(([, value, opts], i) =>
    el(i === 0 ? "th" : "td", {
      text: value(row),
      className: opts?.numeric ? "num" : "",
      attrs: i === 0 ? { scope: "row" } : {},
    }))));
  return el("table", { className }, [
    el("caption", { text: caption, className: "sr-only" }),
    el("thead", {}, [head]),
    el("tbody", {}, body),
  ]);
}
