// Dashboard: refresh the status cell of active runs without a reload.
(function () {
  "use strict";
  async function tick() {
    const rows = document.querySelectorAll("tr[data-active='1']");
    for (const row of rows) {
      try {
        const resp = await fetch(`/runs/${row.dataset.run}/live.json?since=999999999999`, { headers: { Accept: "application/json" } });
        if (!resp.ok) continue;
        const data = await resp.json();
        row.querySelector(".st").innerHTML = `<span class="status s-${data.status.toLowerCase()}">${data.status}</span>`;
        if (data.terminal) row.dataset.active = "0";
      } catch (e) { /* try again next tick */ }
    }
    if (document.querySelector("tr[data-active='1']")) setTimeout(tick, 3000);
  }
  tick();
})();
