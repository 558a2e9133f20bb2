// Page-wide behaviour. Confirms destructive actions without inline handlers (CSP).
for (const button of document.querySelectorAll("button.danger")) {
  button.addEventListener("click", (event) => {
    if (!window.confirm("Are you sure?")) {
      event.preventDefault();
    }
  });
}
