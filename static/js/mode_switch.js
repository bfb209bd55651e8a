// The new-run page's "One run | Sweep" switch (templates/runs/new.html), in place: the same form, so
// what was typed stays. Sweep enables and shows the sweep's fieldsets (disabled, the browser neither
// checks nor sends them), the form posts to the tab's URL, and the address follows so a reload keeps
// the mode. Without JS the tabs are plain links to each mode's page.
(function () {
  "use strict";
  const tabs = Array.from(document.querySelectorAll("#mode-switch [role=tab]"));
  const fields = document.getElementById("sweep-fields");
  const form = fields && fields.form;
  if (tabs.length !== 2 || !form) return;

  function select(tab) {
    const mode = tab.dataset.mode;
    for (const t of tabs) {
      t.setAttribute("aria-selected", String(t === tab));
      t.tabIndex = t === tab ? 0 : -1;
    }
    const h1 = document.getElementById("new-title");
    const before = h1.textContent;
    for (const el of document.querySelectorAll("[data-text-run]")) {
      const text = mode === "sweep" ? el.dataset.textSweep : el.dataset.textRun;
      if (text !== undefined) el.textContent = text;
    }
    document.title = document.title.replace(before, h1.textContent);
    for (const el of document.querySelectorAll("[data-only]")) el.hidden = el.dataset.only !== mode;
    fields.disabled = mode !== "sweep";
    form.id = `${mode}-form`;
    form.action = tab.href;
    history.replaceState(history.state, "", tab.href);
    form.dispatchEvent(new CustomEvent("modechange", { detail: { mode } })); // sweep_form.js: the cap
  }

  for (const tab of tabs) {
    tab.tabIndex = tab.getAttribute("aria-selected") === "true" ? 0 : -1;
    tab.addEventListener("click", (event) => {
      event.preventDefault();
      if (tab.getAttribute("aria-selected") !== "true") select(tab);
    });
    // Arrow keys move between the two tabs (the tab pattern), Home/End to the first and last.
    tab.addEventListener("keydown", (event) => {
      const i = tabs.indexOf(tab);
      const to = { ArrowLeft: i - 1, ArrowRight: i + 1, Home: 0, End: tabs.length - 1 }[event.key];
      if (to === undefined) return;
      event.preventDefault();
      const next = tabs[(to + tabs.length) % tabs.length];
      select(next);
      next.focus();
    });
  }
})();
