// The run page's Resources section (templates/monitoring/_resources.html): per-executor cores busy,
// memory and GC share from resources.json (webapp/monitoring/services.series), one line per executor,
// refetched every sampling interval while the run is active. x = seconds since the first sample.
(function () {
  "use strict";
  const section = document.getElementById("resources");
  if (!section || typeof Chart === "undefined") return;
  const runId = JSON.parse(document.getElementById("run-id").textContent);
  const url = `/runs/${runId}/resources.json`;
  const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];
  const empty = document.getElementById("resources-empty");
  const table = document.getElementById("resources-table");
  const tbLink = document.getElementById("tensorboard-link");

  function makeChart(id, yTitle, yMax) {
    return new Chart(document.getElementById(id), {
      type: "line",
      data: { datasets: [] },
      options: {
        animation: false, parsing: false, normalized: true, spanGaps: false,
        scales: {
          x: { type: "linear", title: { display: true, text: "seconds since the first sample" } },
          y: { type: "linear", min: 0, max: yMax, title: { display: true, text: yTitle } },
        },
        plugins: { legend: { position: "bottom" } },
      },
    });
  }
  const cpu = makeChart("res-cpu", "cores");
  const mem = makeChart("res-mem", "MB");
  const gc = makeChart("res-gc", "% of wall time");

  function points(t, ys, scale = 1) {
    const out = [];
    for (let i = 0; i < t.length; i++) out.push({ x: t[i], y: ys[i] === null ? null : ys[i] * scale });
    return out;
  }

  function line(label, data, color, dashed) {
    return { label, data, borderColor: color, backgroundColor: color, borderWidth: 1.5, pointRadius: 0, borderDash: dashed ? [5, 3] : [] };
  }

  function label(e) { return e.is_driver ? "driver" : `executor ${e.id}`; }

  function render(data) {
    const execs = data.executors;
    const cpuSets = [], memSets = [], gcSets = [];
    let maxCores = 0;
    execs.forEach((e, i) => {
      const c = colors[i % colors.length];
      if (!e.is_driver) {
        cpuSets.push(line(label(e), points(e.t, e.cores_busy), c));
        maxCores = Math.max(maxCores, e.total_cores || 0);
      }
      memSets.push(line(`${label(e)} heap`, points(e.t, e.heap_peak_mb), c));
      if (e.python_rss_mb.some(v => v !== null && v > 0)) memSets.push(line(`${label(e)} Python`, points(e.t, e.python_rss_mb), c, true));
      gcSets.push(line(label(e), points(e.t, e.gc_share, 100), c));
    });
    cpu.data.datasets = cpuSets;
    cpu.options.scales.y.suggestedMax = maxCores || 1;
    mem.data.datasets = memSets;
    gc.data.datasets = gcSets;
    for (const ch of [cpu, mem, gc]) ch.update("none");

    empty.hidden = execs.length > 0;
    if (!execs.length) {
      empty.textContent = data.terminal
        ? "No resource samples were taken for this run (its Spark UI was not reachable while it ran)."
        : "No samples yet: they start once the run is RUNNING and its Spark UI answers.";
    }
    table.hidden = !execs.length;
    const body = table.tBodies[0];
    body.replaceChildren(...execs.map(e => row(e.latest, label(e))));
    if (tbLink) tbLink.hidden = !data.has_tensorboard;
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "—" : String(text);
    return td;
  }

  function row(l, name) {
    const tr = document.createElement("tr");
    const share = l.task_gc_share === null ? null : `${(l.task_gc_share * 100).toFixed(1)} %`;
    tr.append(
      cell(l.is_active ? name : `${name} (gone)`), cell(l.host_port || null),
      cell(`${l.active_tasks} / ${l.total_tasks} / ${l.failed_tasks}`),
      cell(`${l.storage_mb ?? "—"} / ${l.storage_max_mb ?? "—"}`), cell(l.heap_peak_mb), cell(l.python_rss_mb),
      cell(l.jvm_gc_s), cell(share),
    );
    return tr;
  }

  async function refresh() {
    let data = null;
    try {
      const resp = await fetch(url, { headers: { Accept: "application/json" } });
      if (resp.ok) data = await resp.json();
    } catch (e) { /* network blip: next tick */ }
    if (data) render(data);
    const interval = Math.max(2, (data && data.interval_s) || 5) * 1000;
    if (!data || !data.terminal) setTimeout(refresh, interval);
  }
  refresh();
})();
