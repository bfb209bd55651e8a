// The watchdog's banner: updated from each live.json answer, which static/js/run.js announces as a
// "sparkdeck:live" event (so the page polls once). data.diagnosis is {} while nothing is wrong.
(function () {
  "use strict";
  const box = document.getElementById("diagnosis");
  if (!box) return;
  const text = (id, value) => { document.getElementById(id).textContent = value || ""; };

  document.addEventListener("sparkdeck:live", (ev) => {
    const d = (ev.detail && ev.detail.diagnosis) || {};
    if (!d.code) { box.hidden = true; return; }
    box.hidden = false;
    box.classList.toggle("fatal", !!d.fatal);
    text("diag-title", d.title);
    text("diag-cause", d.cause);
    text("diag-evidence", (d.evidence || []).join("\n"));
    text("diag-advice", d.advice);
    text("diag-message", d.message);
  });
})();
