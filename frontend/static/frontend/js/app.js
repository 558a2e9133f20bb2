// Page-wide behaviour. Confirms destructive actions without inline handlers (CSP).
// The spike banner (spikes/templates/spikes/_banner.html) on every workspace page.
import "../../spikes/js/spike_banner.js";
for (const button of document.querySelectorAll("button.danger")) {
  button.addEventListener("click", (event) => {
    if (!window.confirm("Are you sure?")) {
      event.preventDefault();
    }
  });
}
