// Listening rules: add, change and delete them through the REST API, re-fetch the
// server-rendered list after each write, and try queries on a sample post.

import { api } from "./api.js";
import { clearErrors, flash, refresh, showErrors } from "./forms.js";
import { toast } from "./toast.js";

const root = document.getElementById("listening");
const { slug, listUrl } = root.dataset;
const ruleForm = document.getElementById("rule-form");
const testForm = document.getElementById("test-form");
const result = document.getElementById("test-result");
let testVariants = {};

// --- Variants: "acme air: akme air, acmeair" per line ---------------------------------

function parseVariants(text) {
  const variants = {};
  for (const [index, line] of text.split("\n").entries()) {
    if (!line.trim()) continue;
    const colon = line.indexOf(":");
    if (colon < 1) {
      const error = new Error(`Line ${index + 1}: write the term, a colon, then its spellings.`);
      error.fields = { variants: [error.message] };
      throw error;
    }
    const spellings = line
      .slice(colon + 1)
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    variants[line.slice(0, colon).trim()] = spellings;
  }
  return variants;
}

function formatVariants(variants) {
  return Object.entries(variants || {})
    .map(([term, spellings]) => `${term}: ${spellings.join(", ")}`)
    .join("\n");
}

// --- The rule editor ------------------------------------------------------------------

function editing(rule) {
  const title = document.getElementById("editor-title");
  const submit = document.getElementById("rule-submit");
  const cancel = ruleForm.querySelector('[data-action="cancel"]');
  clearErrors(ruleForm);
  ruleForm.elements.id.value = rule ? rule.id : "";
  ruleForm.elements.brand_id.value = rule ? rule.brand.id : ruleForm.elements.brand_id.options[0]?.value;
  ruleForm.elements.name.value = rule ? rule.name : "";
  ruleForm.elements.query.value = rule ? rule.query : "";
  ruleForm.elements.variants.value = rule ? formatVariants(rule.variants) : "";
  ruleForm.elements.enabled.checked = rule ? rule.enabled : true;
  ruleForm.elements.competitor.checked = Boolean(rule?.competitor);
  for (const box of ruleForm.querySelectorAll('input[name="platforms"]')) {
    box.checked = Boolean(rule?.platforms.includes(box.value));
  }
  for (const radio of ruleForm.querySelectorAll('input[name="action"]')) {
    radio.checked = rule ? radio.value === rule.action : radio.defaultChecked;
  }
  title.textContent = rule ? `Edit “${rule.name}”` : "Add a rule";
  submit.textContent = rule ? "Save rule" : "Add rule";
  cancel.hidden = !rule;
}

function rulePayload() {
  const data = new FormData(ruleForm);
  return {
    brand_id: Number(data.get("brand_id")),
    name: data.get("name"),
    query: data.get("query"),
    platforms: data.getAll("platforms"),
    action: data.get("action"),
    enabled: ruleForm.elements.enabled.checked,
    competitor: ruleForm.elements.competitor.checked,
    variants: parseVariants(data.get("variants")),
  };
}

async function saveRule(event) {
  event.preventDefault();
  const status = ruleForm.querySelector(".form-status");
  const submit = document.getElementById("rule-submit");
  clearErrors(ruleForm);
  submit.disabled = true;
  const id = ruleForm.elements.id.value;
  try {
    const payload = rulePayload();
    const rule = id
      ? await api(slug, "PATCH", `listening-rules/${id}/`, payload)
      : await api(slug, "POST", "listening-rules/", payload);
    await refresh("rule-list", listUrl);
    editing(null);
    flash(status, id ? "Rule saved" : "Rule added");
    document.getElementById(`rule-${rule.id}`)?.classList.add("just-saved");
  } catch (error) {
    showErrors(ruleForm, error)?.focus?.();
  } finally {
    submit.disabled = false;
  }
}

if (ruleForm) {
  ruleForm.addEventListener("submit", saveRule);
  // A competitor's rule never feeds the inbox: ticking it picks "Feed only".
  ruleForm.elements.competitor.addEventListener("change", (event) => {
    if (event.target.checked) ruleForm.querySelector('input[name="action"][value="feed"]').checked = true;
  });
  ruleForm.addEventListener("click", (event) => {
    const action = event.target.closest("[data-action]")?.dataset.action;
    if (action === "cancel") editing(null);
    if (action === "test-form") {
      let variants = {};
      try {
        variants = parseVariants(ruleForm.elements.variants.value);
      } catch {
        // Malformed variants are reported when the rule is saved.
      }
      loadTester(ruleForm.elements.query.value, variants);
    }
  });
}

// --- The list's buttons -----------------------------------------------------------------

root.addEventListener("click", async (event) => {
  const button = event.target.closest("#rule-list [data-action]");
  if (!button) return;
  const id = button.closest("[data-rule-id]").dataset.ruleId;
  const action = button.dataset.action;
  try {
    if (action === "delete") {
      if (!window.confirm("Delete this rule? Conversations it created stay.")) return;
      button.disabled = true;
      await api(slug, "DELETE", `listening-rules/${id}/`);
      if (ruleForm?.elements.id.value === id) editing(null);
      await refresh("rule-list", listUrl);
      toast("Rule deleted.");
      return;
    }
    const rule = await api(slug, "GET", `listening-rules/${id}/`);
    if (action === "edit") {
      editing(rule);
      document.getElementById("rule-editor").scrollIntoView({ behavior: "smooth", block: "start" });
      ruleForm.elements.name.focus({ preventScroll: true });
    } else if (action === "try") {
      loadTester(rule.query, rule.variants);
    }
  } catch (error) {
    button.disabled = false;
    toast(error.describe ? error.describe() : error.message, { kind: "error" });
  }
});

// --- The tester -------------------------------------------------------------------------

function loadTester(query, variants) {
  testForm.elements.query.value = query;
  testVariants = variants || {};
  clearErrors(testForm);
  result.hidden = true;
  document.getElementById("tester").scrollIntoView({ behavior: "smooth", block: "start" });
  if (testForm.elements.text.value.trim()) testForm.requestSubmit();
  else testForm.elements.text.focus({ preventScroll: true });
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showResult(answer) {
  const box = element("div", `result ${answer.matches ? "is-match" : "is-miss"}`);
  const head = element("p", "result-head");
  head.append(element("span", "result-icon", answer.matches ? "✓" : "✕"));
  head.append(element("strong", "", answer.matches ? "Matches" : "No match"));
  box.append(head);
  const found = element("p", "result-terms");
  if (answer.terms.length) {
    found.append(element("span", "muted", "Terms found in the post: "));
    for (const term of answer.terms) found.append(element("span", "chip chip-listening", term));
  } else {
    found.append(element("span", "muted", "None of the query's terms are in the post."));
  }
  box.append(found);
  if (Object.keys(testVariants).length) {
    box.append(element("p", "muted small", "Spelling variants of the rule included."));
  }
  result.replaceChildren(box);
  result.hidden = false;
}

// A syntax error names its 0-based position: point at it under the query's line.
function pointAt(query, message) {
  const match = /\(at character (\d+)\)$/.exec(message);
  if (!match) return null;
  const position = Math.min(Number(match[1]), query.length);
  const start = query.lastIndexOf("\n", position - 1) + 1;
  const end = query.indexOf("\n", position);
  const line = query.slice(start, end < 0 ? undefined : end);
  const view = element("pre", "caret-view");
  view.append(element("span", "", line || " "), "\n");
  view.append(element("span", "caret", `${" ".repeat(position - start)}^`));
  return view;
}

testForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(testForm);
  result.hidden = true;
  const data = new FormData(testForm);
  const payload = { query: data.get("query"), text: data.get("text") };
  for (const name of ["platform", "author", "lang"]) {
    if (data.get(name).trim()) payload[name] = data.get(name).trim();
  }
  if (Object.keys(testVariants).length) payload.variants = testVariants;
  try {
    showResult(await api(slug, "POST", "listening-rules/test/", payload));
  } catch (error) {
    showErrors(testForm, error);
    const slot = document.getElementById("t-err-query");
    const pointer = pointAt(payload.query, [].concat(error.fields?.query || [])[0] || "");
    if (pointer) slot.append(pointer);
  }
});
