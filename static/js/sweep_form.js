// The sweep form's "trials at once" cap: what the team's quota and the chosen cluster hold for the
// resources entered (sweeps/limit.json, webapp/sweeps/services.parallel_limit), refreshed as they change.
// On the new-run page in run mode the sweep's fields are disabled: nothing is asked until the switch
// picks Sweep (mode_switch.js sends "modechange").
(function () {
  "use strict";
  const cap = document.getElementById("parallel-cap");
  const form = cap && cap.closest("form");
  if (!form) return;
  const names = ["cluster", "num_executors", "executor_cores", "executor_memory_mb", "gpus_per_executor"];
  let timer = null;
  let asked = 0;

  async function refresh() {
    if (cap.closest("fieldset:disabled")) return;
    const params = new URLSearchParams();
    for (const name of names) {
      const field = form.elements[name];
      if (field && field.value !== "") params.set(name, field.value);
    }
    if (!params.get("cluster")) {
      cap.textContent = "";
      return;
    }
    const mine = ++asked;
    try {
      const resp = await fetch(`${cap.dataset.url}?${params}`, { headers: { Accept: "application/json" } });
      const body = await resp.json();
      if (mine !== asked) return; // a later answer is on its way
      if (body.error) cap.textContent = "";
      else if (body.most) cap.textContent = `At most ${body.most} at once: ${body.why}.`;
      else cap.textContent = "No limit known for these resources.";
    } catch (err) {
      if (mine === asked) cap.textContent = "";
    }
  }

  form.addEventListener("input", (event) => {
    if (!names.includes(event.target.name)) return;
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
  form.addEventListener("change", (event) => {
    if (names.includes(event.target.name)) refresh();
  });
  form.addEventListener("modechange", refresh);
  refresh();
})();
