// Run page: polls live.json for status, metric points (by id) and log chunks (by byte offset).
(function () {
  "use strict";
  const runId = JSON.parse(document.getElementById("run-id").textContent);
  const base = `/runs/${runId}/`;
  let since = 0;
  let terminal = false;
  let logKey = document.getElementById("log-source").value;
  const offsets = {};
  const logEl = document.getElementById("log");
  const series = {}; // "name/executor" -> dataset
  const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];

  const chart = new Chart(document.getElementById("chart"), {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false, parsing: false, normalized: true,
      scales: {
        x: { type: "linear", title: { display: true, text: "step" } },
        y: { type: "linear", position: "left", title: { display: true, text: "loss" } },
        y2: { type: "linear", position: "right", min: 0, max: 1, title: { display: true, text: "accuracy" }, grid: { drawOnChartArea: false } },
      },
      plugins: { legend: { position: "bottom" } },
    },
  });

  function addPoints(points) {
    let maxEpoch = null;
    for (const p of points) {
      if (p.name === "steps_per_epoch") continue;
      const key = `${p.name} · executor ${p.executor}`;
      if (!series[key]) {
        const i = Object.keys(series).length;
        series[key] = {
          label: key, data: [], borderColor: colors[i % colors.length], pointRadius: p.name.startsWith("epoch") ? 3 : 0,
          borderWidth: 1.5, yAxisID: p.name.includes("accuracy") ? "y2" : "y", borderDash: p.name.startsWith("epoch") ? [4, 3] : [],
        };
        chart.data.datasets.push(series[key]);
      }
      series[key].data.push({ x: p.step, y: p.value });
      if (p.epoch !== null && p.name.startsWith("epoch")) maxEpoch = Math.max(maxEpoch ?? 0, p.epoch + 1);
      since = Math.max(since, p.id);
    }
    if (points.length) chart.update();
    return maxEpoch;
  }

  let epochsDone = 0;
  function progress(data, maxEpoch) {
    if (maxEpoch !== null) epochsDone = Math.max(epochsDone, maxEpoch);
    const total = data.epochs || 1;
    const frac = data.status === "SUCCEEDED" ? 1 : Math.min(1, epochsDone / total);
    document.getElementById("progress-bar").style.width = `${Math.round(frac * 100)}%`;
    const txt = document.getElementById("progress-text");
    if (data.status === "SUCCEEDED") txt.textContent = `done: ${total} epochs`;
    else if (since > 0) txt.textContent = `epoch ${epochsDone} of ${total} complete`;
  }

  function setStatus(data) {
    const el = document.getElementById("status");
    el.innerHTML = `<span class="status s-${data.status.toLowerCase()}">${data.status}</span>`;
    if (data.reason) {
      document.getElementById("reason").hidden = false;
      document.getElementById("reason-text").textContent = data.reason;
      document.getElementById("reason-detail").textContent = data.detail || "";
    }
    const cancel = document.getElementById("cancel-form");
    if (cancel && data.terminal) cancel.hidden = true;
    if (data.app_id) document.getElementById("app").textContent = data.app_id;
    if (data.ui_url) {
      const a = document.createElement("a");
      a.href = data.ui_url; a.textContent = data.ui_url; a.target = "_blank"; a.rel = "noopener";
      document.getElementById("ui").replaceChildren(a);
    }
    if (data.test_accuracy !== null) document.getElementById("accuracy").textContent = data.test_accuracy.toFixed(4);
    for (const id of ["pred-link", "csv-link"]) document.getElementById(id).hidden = !data.has_predictions;
    document.getElementById("model-link").hidden = !data.has_model;
    const sel = document.getElementById("log-source");
    for (const e of data.executors) {
      for (const stream of ["stderr", "stdout"]) {
        const v = `${e}:${stream}`;
        if (![...sel.options].some(o => o.value === v)) sel.add(new Option(`executor ${e} ${stream}`, v));
      }
    }
  }

  function logUrl(key) {
    const [source, stream] = key.split(":");
    return source === "driver" ? `${base}logs/driver/` : `${base}logs/${source}/${stream}/`;
  }

  async function poll() {
    const q = new URLSearchParams({ since: String(since), log: logKey });
    if (offsets[logKey] !== undefined) q.set(`off:${logKey}`, String(offsets[logKey]));
    try {
      const resp = await fetch(`${base}live.json?${q}`, { headers: { Accept: "application/json" } });
      if (resp.ok) {
        const data = await resp.json();
        setStatus(data);
        progress(data, addPoints(data.points));
        const chunk = data.logs[logKey];
        if (chunk) {
          if (chunk.text) logEl.textContent += chunk.text;
          offsets[logKey] = chunk.offset;
          if (document.getElementById("follow").checked) logEl.scrollTop = logEl.scrollHeight;
        }
        terminal = data.terminal && data.points.length === 0 && (!chunk || chunk.offset >= chunk.size);
      }
    } catch (e) { /* network blip: try again next tick */ }
    if (!terminal) setTimeout(poll, 1000);
  }

  document.getElementById("log-source").addEventListener("change", (ev) => {
    logKey = ev.target.value; logEl.textContent = ""; delete offsets[logKey];
    document.getElementById("log-download").href = logUrl(logKey) + "?download=1";
    if (terminal) { terminal = false; poll(); }
  });
  document.getElementById("log-download").href = logUrl(logKey) + "?download=1";
  poll();
})();
