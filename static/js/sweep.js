// Sweep page. The page's data (services.summary) comes embedded once, then from live.json every 2 s
// while the sweep runs: the status, the progress line, the trial table and three charts (objective
// per trial with the best so far, objective per epoch per trial, parameter importance).
(function () {
  "use strict";
  let data = JSON.parse(document.getElementById("sweep-data").textContent);
  const liveUrl = `/sweeps/${data.id}/live.json`;
  const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
  const color = (n) => colors[n % colors.length];
  const fmt = (v) => (v === null || v === undefined ? "—" : Number(v).toFixed(4));
  const linear = (title) => ({ type: "linear", title: { display: true, text: title } });

  const trialsChart = new Chart(document.getElementById("trials-chart"), {
    type: "scatter",
    data: { datasets: [] },
    options: {
      maintainAspectRatio: false, animation: false,
      scales: { x: { ...linear("trial"), ticks: { precision: 0 } }, y: linear(data.objective) },
      plugins: { legend: { position: "bottom" } },
    },
  });
  const epochsChart = new Chart(document.getElementById("epochs-chart"), {
    type: "line",
    data: { datasets: [] },
    options: {
      maintainAspectRatio: false, animation: false, parsing: false,
      scales: { x: { ...linear("epoch"), ticks: { precision: 0 } }, y: linear(data.objective) },
      plugins: { legend: { position: "bottom", display: false } },
    },
  });
  let importanceChart = null;
  const parallelChart = new Chart(document.getElementById("parallel-chart"), {
    type: "line",
    data: { labels: [], datasets: [] },
    options: {
      maintainAspectRatio: false, animation: false,
      scales: { y: { min: 0, max: 1, ticks: { display: false }, title: { display: true, text: "low → high" } } },
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { label: (c) => `${c.dataset.label}: ${c.dataset.raw[c.dataIndex]}` } },
      },
    },
  });

  // The best value after each trial, in trial order (finished trials only; pruned ones never count).
  function bestSoFar(trials) {
    const out = [];
    let best = null;
    for (const t of trials) {
      if (t.status === "COMPLETE" && t.value !== null) {
        if (best === null || (data.maximize ? t.value > best : t.value < best)) best = t.value;
      }
      if (best !== null) out.push({ x: t.number, y: best });
    }
    return out;
  }

  function drawTrials() {
    const points = (status) => data.trials.filter((t) => t.status === status && t.value !== null).map((t) => ({ x: t.number, y: t.value }));
    trialsChart.data.datasets = [
      { label: "finished", data: points("COMPLETE"), backgroundColor: "#2563eb", pointRadius: 4 },
      { label: "pruned (last epoch)", data: points("PRUNED"), backgroundColor: "#ea580c", pointStyle: "triangle", pointRadius: 5 },
      { label: "best so far", data: bestSoFar(data.trials), type: "line", stepped: true, borderColor: "#16a34a", pointRadius: 0, borderWidth: 2 },
    ];
    trialsChart.update("none");
  }

  function drawEpochs() {
    epochsChart.data.datasets = data.trials.filter((t) => t.epochs.length).map((t) => ({
      label: `trial ${t.number}${t.status === "PRUNED" ? " (pruned)" : ""}`,
      data: t.epochs.map(([x, y]) => ({ x, y })),
      borderColor: color(t.number),
      backgroundColor: color(t.number),
      borderDash: t.status === "PRUNED" ? [5, 4] : [],
      borderWidth: t.best ? 3 : 1.5,
      pointRadius: 2,
      spanGaps: false,
    }));
    // A legend of many trials would crowd out the plot.
    epochsChart.options.plugins.legend.display = epochsChart.data.datasets.length <= 12;
    epochsChart.update("none");
  }

  function drawImportance() {
    const entries = Object.entries(data.importance || {}).sort((a, b) => b[1] - a[1]);
    document.getElementById("importance-box").hidden = entries.length === 0;
    if (!entries.length) return;
    const chartData = { labels: entries.map((e) => e[0]), datasets: [{ label: "importance", data: entries.map((e) => e[1]), backgroundColor: "#9333ea" }] };
    if (importanceChart) {
      importanceChart.data = chartData;
      importanceChart.update("none");
      return;
    }
    importanceChart = new Chart(document.getElementById("importance-chart"), {
      type: "bar",
      data: chartData,
      options: {
        indexAxis: "y", maintainAspectRatio: false, animation: false,
        scales: { x: { min: 0, max: 1, title: { display: true, text: "share of the objective's variance (fANOVA)" } } },
        plugins: { legend: { display: false } },
      },
    });
  }

  function cell(row, content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.append(content); else td.textContent = content;
    row.append(td);
    return td;
  }

  function badge(status) {
    const span = document.createElement("span");
    span.className = `status s-${status.toLowerCase()}`;
    span.textContent = status;
    return span;
  }

  // Sorting: a click on a header sorts by that column (again: the other way); kept across polls.
  // Trials without a value sort last either way.
  let sortKey = "number";
  let sortDir = 1;
  function sortValue(t, key) {
    if (key.startsWith("param:")) return t.params[key.slice(6)];
    return t[key];
  }
  function sorted(trials) {
    return [...trials].sort((a, b) => {
      const x = sortValue(a, sortKey), y = sortValue(b, sortKey);
      const xn = x === null || x === undefined, yn = y === null || y === undefined;
      if (xn || yn) return xn === yn ? a.number - b.number : xn ? 1 : -1;
      if (x < y) return -sortDir;
      if (x > y) return sortDir;
      return a.number - b.number;
    });
  }
  const heads = document.querySelectorAll("#trials th[data-sort]");
  heads.forEach((th) => {
    th.querySelector("button").addEventListener("click", () => {
      const key = th.dataset.sort;
      sortDir = key === sortKey ? -sortDir : 1;
      sortKey = key;
      heads.forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
      drawTable();
    });
  });

  // The same rows as templates/sweeps/detail.html renders.
  function drawTable() {
    const rows = sorted(data.trials).map((t) => {
      const tr = document.createElement("tr");
      tr.dataset.trial = t.number;
      if (t.best) tr.className = "best";
      const num = cell(tr, String(t.number));
      if (t.best) { const b = document.createElement("b"); b.className = "best-mark"; b.textContent = "★ best"; num.append(" ", b); }
      const st = cell(tr, badge(t.status));
      if (t.pruned_at_epoch) { const s = document.createElement("small"); s.className = "pruned"; s.textContent = `pruned at epoch ${t.pruned_at_epoch}`; st.append(" ", s); }
      for (const v of t.param_cells) cell(tr, v).className = "num";
      cell(tr, fmt(t.value));
      cell(tr, t.epochs_run === null ? "—" : String(t.epochs_run));
      cell(tr, t.duration_s === null ? "—" : `${Math.round(t.duration_s)} s`);
      if (t.run_id) { const a = document.createElement("a"); a.href = t.run_url; a.textContent = `run ${t.run_id}`; cell(tr, a); } else cell(tr, "—");
      return tr;
    });
    if (rows.length) document.getElementById("trial-rows").replaceChildren(...rows);
  }

  function drawCounts() {
    const parts = Object.entries(data.counts).map(([state, n]) => {
      const span = document.createElement("span");
      span.className = `count c-${state.toLowerCase()}`;
      span.textContent = `${n} ${state.toLowerCase()}`;
      return span;
    });
    const box = document.getElementById("counts");
    box.replaceChildren();
    parts.forEach((p, i) => { if (i) box.append(" · "); box.append(p); });
  }

  function drawStatus() {
    document.getElementById("status").replaceChildren(badge(data.status));
    document.getElementById("progress-text").textContent = `${data.finished} of ${data.budget} trials finished`;
    const running = document.getElementById("progress-running");
    if (running) running.textContent = data.running ? `, ${data.running} running` : "";
    document.getElementById("progress-bar").style.width = `${Math.round((100 * data.finished) / Math.max(1, data.budget))}%`;
    document.getElementById("waiting").hidden = !data.waiting_reason;
    document.getElementById("waiting-text").textContent = data.waiting_reason;
    if (data.status_reason) {
      document.getElementById("reason").hidden = false;
      document.getElementById("reason-text").textContent = data.status_reason;
    }
    const cancel = document.getElementById("cancel-form");
    if (cancel && data.terminal) cancel.hidden = true;
    const rerun = document.getElementById("rerun-best-form");
    if (rerun) rerun.hidden = !data.best;
    const top = data.top_run_ids;
    document.getElementById("compare-top").hidden = top.length < 2;
    const link = document.getElementById("compare-top-link");
    link.href = `${link.pathname}?ids=${top.join(",")}`;
    link.textContent = `Compare the top ${top.length} trials`;
    const best = document.getElementById("best-text");
    if (data.best) {
      const b = data.best;
      best.textContent = `Trial ${b.number}: ${data.objective} ${fmt(b.value)}`;
      if (b.run_id) {
        const a = document.createElement("a"); a.href = `/runs/${b.run_id}/`; a.textContent = `run ${b.run_id}`;
        best.append(" — ", a);
      }
      if (b.test_accuracy !== null) best.append(`; held-out test accuracy ${fmt(b.test_accuracy)}`);
    }
  }

  // A value's place on its axis, 0 to 1: a range by its bounds (log scale if the space says so), a
  // choice by its index, the objective by the ended trials' spread.
  function position(entry, v) {
    if (entry.type === "choice") return entry.values.length > 1 ? entry.values.indexOf(v) / (entry.values.length - 1) : 0.5;
    const f = entry.log ? Math.log : (x) => x;
    return (f(v) - f(entry.low)) / (f(entry.high) - f(entry.low) || 1);
  }

  function drawParallel() {
    const names = Object.keys(data.space || {});
    const ended = data.trials.filter((t) => t.value !== null && t.status !== "RUNNING");
    const values = ended.map((t) => t.value);
    const objective = { type: "range", low: Math.min(...values), high: Math.max(...values), log: false };
    parallelChart.data.labels = [...names, data.objective];
    parallelChart.data.datasets = ended.map((t) => ({
      label: `trial ${t.number}`,
      data: [...names.map((n) => position(data.space[n], t.params[n])), values.length > 1 ? position(objective, t.value) : 0.5],
      raw: [...names.map((n) => t.params[n]), fmt(t.value)],
      borderColor: t.best ? "#16a34a" : t.status === "PRUNED" ? "#ea580c" : "rgba(37, 99, 235, 0.5)",
      borderDash: t.status === "PRUNED" ? [5, 4] : [],
      borderWidth: t.best ? 3 : 1.5,
      pointRadius: 3,
      order: t.best ? 0 : 1, // the best drawn on top
    }));
    parallelChart.update("none");
  }

  function draw() {
    drawParallel();
    drawTrials();
    drawEpochs();
    drawImportance();
  }

  async function poll() {
    try {
      const resp = await fetch(liveUrl, { headers: { Accept: "application/json" } });
      if (resp.ok) {
        data = await resp.json();
        drawStatus();
        drawCounts();
        drawTable();
        draw();
      }
    } catch (e) {
      // A dropped request: the next poll tries again.
    }
    if (!data.terminal) setTimeout(poll, 2000);
  }

  draw();
  if (!data.terminal) setTimeout(poll, 2000);
})();
