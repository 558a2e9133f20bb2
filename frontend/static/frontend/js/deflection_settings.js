// Brand settings: the deflection phrases per language (R15), saved through the API.
// A language whose list is still the defaults is left out, so it keeps following
// them; a changed one (or one the brand had set) is sent as the brand's own.

import { api } from "./api.js";

const form = document.getElementById("deflection-form");
const lines = (text) => text.split("\n").map((line) => line.trim()).filter(Boolean);

form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = document.getElementById("deflection-status");
  const error = document.getElementById("err-phrases");
  error.textContent = "";
  status.textContent = "";
  const phrases = {};
  for (const area of form.querySelectorAll(".deflection-phrases")) {
    const value = lines(area.value);
    const same = value.join("\n") === lines(area.dataset.default || "").join("\n");
    if (!same || area.dataset.custom) phrases[area.dataset.language] = value;
  }
  try {
    await api(form.dataset.slug, "PUT", `brands/${form.dataset.brandId}/deflection/`, { phrases });
    status.textContent = "Saved";
  } catch (failure) {
    error.textContent = [].concat(failure.fields?.phrases || failure.message).join(" ");
  }
});
