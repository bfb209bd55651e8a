// Run page. The chart loads the run's metric series once, downsampled on the server (series.json:
// at most ~1,000 points a series whatever the run's size), then follows new points from live.json
// (by id) while the run is alive. Dragging across the chart (or the from/to fields) zooms: the
// server sends the finer range. live.json also carries the status and log chunks (by byte offset).
(function () {
  "use strict";
  const runId = JSON.parse(document.getElementById("run-id").textContent);
  const base = `/runs/${runId}/`;
  let since = 0;
  let terminal = false;
  let logKey = document.getElementById("log-source").value;
  const offsets = {};
  const logEl = document.getElementById("log");
  const series = {}; // "name · executor e" -> Chart.js dataset
  const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];
  const AXIS_TITLES = { step: "step", epoch: "epoch", wall: "seconds since the first point" };
  const HIDDEN = new Set(["steps_per_epoch"]);
  const axisSelect = document.getElementById("chart-x");
  let xAxis = axisSelect ? axisSelect.value : "step";
  let origin = null; // x = "wall": the epoch seconds x counts from
  let zoom = null; // [start, end] while zoomed in
  let seriesLoaded = false;

  const chart = new Chart(document.getElementById("chart"), {
    type: "line",
    data: { datasets: [] },
    options: {
      maintainAspectRatio: false, // fills .chart-wrap, which CSS makes taller on a phone (room for the legend)
      animation: false, parsing: false, normalized: true, indexAxis: "x",
      scales: {
        x: { type: "linear", title: { display: true, text: AXIS_TITLES[xAxis] } },
        y: { type: "linear", position: "left", title: { display: true, text: "loss" } },
        y2: { type: "linear", position: "right", min: 0, max: 1, title: { display: true, text: "accuracy" }, grid: { drawOnChartArea: false } },
      },
      plugins: { legend: { position: "bottom" }, decimation: { enabled: true, algorithm: "min-max" } },
    },
  });

  // Validation metrics (val_loss, val_accuracy) come once per epoch from the chief: one series each,
  // drawn solid with triangles beside the training curves (per-step solid, epoch-end dashed).
  function dataset(name, executor) {
    const validation = name.startsWith("val_");
    const key = validation ? `${name} (validation)` : `${name} · executor ${executor}`;
    if (!series[key]) {
      const i = Object.keys(series).length;
      const perEpoch = validation || name.startsWith("epoch");
      series[key] = {
        label: key, data: [], borderColor: colors[i % colors.length], pointRadius: perEpoch ? 3 : 0,
        pointStyle: validation ? "triangle" : "circle", borderWidth: validation ? 2 : 1.5,
        yAxisID: name.includes("accuracy") ? "y2" : "y", borderDash: name.startsWith("epoch") ? [4, 3] : [],
      };
      chart.data.datasets.push(series[key]);
    }
    return series[key];
  }

  function xOf(p) {
    if (xAxis === "epoch") return p.epoch;
    if (xAxis === "wall") return p.wall_time > 0 && origin !== null ? p.wall_time - origin : null;
    return p.step;
  }

  // New raw points from live.json: appended unless zoomed in (the zoomed range is reloaded on reset).
  function addPoints(points) {
    let maxEpoch = null;
    let added = false;
    for (const p of points) {
      since = Math.max(since, p.id);
      if (stepProgress) stepProgress.add(p);
      if (p.epoch !== null && p.name.startsWith("epoch")) maxEpoch = Math.max(maxEpoch ?? 0, p.epoch);
      if (HIDDEN.has(p.name) || zoom) continue;
      const x = xOf(p);
      if (x === null || x === undefined) continue;
      dataset(p.name, p.executor).data.push({ x, y: p.value });
      added = true;
    }
    if (added) chart.update("none");
    return maxEpoch;
  }

  async function loadSeries() {
    const q = new URLSearchParams({ x: xAxis });
    if (zoom) { q.set("start", String(zoom[0])); q.set("end", String(zoom[1])); }
    const resp = await fetch(`${base}series.json?${q}`, { headers: { Accept: "application/json" } });
    if (!resp.ok) throw new Error(`series.json: ${resp.status}`);
    const data = await resp.json();
    origin = data.origin;
    for (const ds of Object.values(series)) ds.data = [];
    for (const s of data.series) {
      if (HIDDEN.has(s.name)) continue;
      dataset(s.name, s.executor).data = s.points.map(([x, y]) => ({ x, y }));
    }
    since = Math.max(since, data.last_id);
    const xs = chart.options.scales.x;
    xs.title.text = AXIS_TITLES[xAxis];
    xs.min = zoom ? zoom[0] : undefined;
    xs.max = zoom ? zoom[1] : undefined;
    const sampled = data.series.filter(s => s.downsampled).length;
    document.getElementById("chart-note").textContent = sampled
      ? `${sampled} series downsampled to ≤ ${data.max_points} points (lowest and highest value per bucket); drag to zoom in.`
      : "";
    chart.update("none");
    seriesLoaded = true;
  }

  // Epochs finished when the page was rendered (the server reads the newest epoch-end point); the
  // live points move it on.
  let epochsDone = JSON.parse(document.getElementById("epochs-done").textContent) || 0;
  // Steps and ETA (static/js/progress.js), from the server's estimate at render time (progress-init) on.
  const progressInit = document.getElementById("progress-init");
  const stepProgress = window.SparkdeckProgress
    ? new SparkdeckProgress.Tracker(progressInit ? JSON.parse(progressInit.textContent) : null) : null;
  function progress(data, maxEpoch) {
    if (data.length && data.length.unit !== "epochs") { // an MLlib head: no epochs; its count comes at the end
      document.getElementById("progress-bar").style.width = data.status === "SUCCEEDED" ? "100%" : "0%";
      document.getElementById("progress-text").textContent =
        data.status === "SUCCEEDED" ? `done: ${data.length.text}` : `${data.length.text} (Spark MLlib)`;
      return;
    }
    if (maxEpoch !== null) epochsDone = Math.max(epochsDone, maxEpoch);
    const total = data.epochs || 1;
    const est = stepProgress && !data.terminal ? stepProgress.estimate(data.epochs) : null;
    const steps = est && est.total_steps ? est : null; // unknown steps per epoch: epochs done only
    const frac = data.status === "SUCCEEDED" ? 1 : Math.min(1, steps ? steps.fraction : epochsDone / total);
    document.getElementById("progress-bar").style.width = `${Math.round(frac * 100)}%`;
    const txt = document.getElementById("progress-text");
    if (data.status === "SUCCEEDED") txt.textContent = `done: ${total} epochs`;
    else if (steps) txt.textContent = SparkdeckProgress.describe(steps);
    else if (since > 0) txt.textContent = `epoch ${epochsDone} of ${total} complete`;
  }

  function setStatus(data) {
    const el = document.getElementById("status");
    el.innerHTML = `<span class="status s-${data.status.toLowerCase()}">${data.status}</span>`;
    const queue = document.getElementById("queue");
    if (queue) {
      queue.hidden = !data.queue_position;
      document.getElementById("queue-position").textContent = data.queue_position || "";
      document.getElementById("queue-reason").textContent = data.queue_reason || "";
    }
    if (data.reason) {
      document.getElementById("reason").hidden = false;
      document.getElementById("reason-text").textContent = data.reason;
      document.getElementById("reason-detail").textContent = data.detail || "";
    }
    const cancel = document.getElementById("cancel-form");
    if (cancel && data.terminal) cancel.hidden = true;
    if (data.app_id) document.getElementById("app").textContent = data.app_id;
    // Same markup as templates/runs/_spark_ui.html; the server decides which UI (or none) to link.
    const ui = document.getElementById("ui");
    if (data.ui_url) {
      const a = document.createElement("a");
      a.href = data.ui_url; a.textContent = data.ui_url; a.target = "_blank"; a.rel = "noopener";
      a.className = "spark-ui"; a.dataset.kind = data.ui_kind;
      const hint = document.createElement("small");
      hint.className = "hint"; hint.textContent = `(${data.ui_label})`;
      ui.replaceChildren(a, " ", hint);
    } else {
      ui.textContent = "—";
    }
    const master = document.getElementById("master-app");
    if (master && data.master_app_url && !master.querySelector("a")) {
      const a = document.createElement("a");
      a.href = data.master_app_url; a.textContent = data.app_id; a.target = "_blank"; a.rel = "noopener";
      const note = document.createElement("small");
      note.className = "hint"; note.textContent = "(outlives the driver's UI)";
      master.replaceChildren(a, " ", note);
    }
    for (const id of ["submitted", "finished"]) { // the server's text, as the template prints it
      const el = document.getElementById(id);
      if (el) el.textContent = data[`${id}_at`] || "—";
    }
    if (data.length) document.getElementById("length").textContent = data.length.text;
    if (data.test_accuracy !== null) {
      const rows = data.test_rows ? ` on ${data.test_rows} rows` : "";
      document.getElementById("accuracy").textContent = data.test_accuracy.toFixed(4) + rows;
    }
    if (data.test_loss !== null && data.test_loss !== undefined) {
      document.getElementById("test-loss").textContent = data.test_loss.toFixed(4);
    }
    for (const id of ["pred-link", "csv-link", "analysis-link"]) {
      const link = document.getElementById(id);
      if (link) link.hidden = !data.has_predictions;
    }
    document.getElementById("model-link").hidden = !data.has_model;
    const sel = document.getElementById("log-source");
    for (const e of data.executors) {
      for (const stream of ["stderr", "stdout"]) {
        const v = `${e}:${stream}`;
        if (![...sel.options].some(o => o.value === v)) sel.add(new Option(`executor ${e} ${stream}`, v));
      }
    }
    for (const o of sel.options) { // the copier's marks (webapp/runs/artifacts.incomplete_logs)
      const missing = (data.incomplete_logs || {})[o.value];
      if (missing) o.dataset.incomplete = missing; else delete o.dataset.incomplete;
      const label = o.textContent.replace(/ \(incomplete\)$/, "");
      o.textContent = missing ? `${label} (incomplete)` : label;
    }
    showIncomplete();
  }

  function showIncomplete() {
    const opt = document.getElementById("log-source").selectedOptions[0];
    const missing = opt ? opt.dataset.incomplete : "";
    document.getElementById("log-incomplete").hidden = !missing;
    document.getElementById("log-incomplete-reason").textContent = missing || "";
  }

  function logUrl(key) {
    const [source, stream] = key.split(":");
    return source === "driver" ? `${base}logs/driver/` : `${base}logs/${source}/${stream}/`;
  }

  async function poll() {
    const asked = logKey; // another log may be chosen while this request is out
    const q = new URLSearchParams({ since: String(since), log: logKey });
    if (offsets[logKey] !== undefined) q.set(`off:${logKey}`, String(offsets[logKey]));
    if (logPaused) q.delete("log"); // paused: nothing appended, offsets kept; Resume catches up from them
    try {
      const resp = await fetch(`${base}live.json?${q}`, { headers: { Accept: "application/json" } });
      if (resp.ok) {
        const data = await resp.json();
        setStatus(data);
        document.dispatchEvent(new CustomEvent("sparkdeck:live", { detail: data })); // static/js/diagnosis.js
        progress(data, addPoints(data.points));
        const chunk = asked === logKey ? data.logs[logKey] : undefined;
        if (chunk) {
          if (chunk.text) {
            logEl.textContent += chunk.text;
            logEl.dispatchEvent(new CustomEvent("sparkdeck:log-appended")); // static/js/logsearch.js
          }
          offsets[logKey] = chunk.offset;
          if (document.getElementById("follow").checked) logEl.scrollTop = logEl.scrollHeight;
        }
        // Not over while the log now chosen has not been asked for yet.
        terminal = asked === logKey && data.terminal && data.points.length === 0 && (!chunk || chunk.offset >= chunk.size);
      }
    } catch (e) { /* network blip: try again next tick */ }
    if (!terminal) setTimeout(poll, 1000);
  }

  // --- zoom: drag across the chart, or type a range ----------------------------------------------
  const canvas = document.getElementById("chart");
  const box = document.getElementById("zoom-box");
  const startInput = document.getElementById("zoom-start");
  const endInput = document.getElementById("zoom-end");
  let dragFrom = null;

  function xValue(ev) {
    const rect = canvas.getBoundingClientRect();
    const px = Math.min(Math.max(ev.clientX - rect.left, chart.chartArea.left), chart.chartArea.right);
    return { px, value: chart.scales.x.getValueForPixel(px) };
  }

  async function zoomTo(range) {
    zoom = range;
    if (startInput) startInput.value = range ? +range[0].toPrecision(8) : "";
    if (endInput) endInput.value = range ? +range[1].toPrecision(8) : "";
    document.getElementById("zoom-reset").hidden = !range;
    try { await loadSeries(); } catch (e) { document.getElementById("chart-note").textContent = String(e); }
  }

  canvas.addEventListener("mousedown", (ev) => {
    if (!chart.chartArea) return;
    dragFrom = xValue(ev);
    box.style.left = `${dragFrom.px}px`; box.style.width = "0px"; box.hidden = false;
  });
  canvas.addEventListener("mousemove", (ev) => {
    if (!dragFrom) return;
    const to = xValue(ev);
    box.style.left = `${Math.min(dragFrom.px, to.px)}px`;
    box.style.width = `${Math.abs(to.px - dragFrom.px)}px`;
  });
  window.addEventListener("mouseup", (ev) => {
    if (!dragFrom) return;
    const to = xValue(ev);
    const from = dragFrom;
    dragFrom = null; box.hidden = true;
    if (Math.abs(to.px - from.px) < 6) return; // a click, not a drag
    zoomTo([Math.min(from.value, to.value), Math.max(from.value, to.value)]);
  });
  document.getElementById("zoom-apply").addEventListener("click", () => {
    const a = parseFloat(startInput.value), b = parseFloat(endInput.value);
    if (Number.isFinite(a) && Number.isFinite(b) && b > a) zoomTo([a, b]);
  });
  document.getElementById("zoom-reset").addEventListener("click", () => zoomTo(null));
  if (axisSelect) axisSelect.addEventListener("change", () => { xAxis = axisSelect.value; zoomTo(null); });

  let logPaused = false;
  const pauseButton = document.getElementById("log-pause");
  function setPaused(on, restart = true) {
    logPaused = on;
    if (!pauseButton) return;
    pauseButton.textContent = on ? "Resume" : "Pause";
    pauseButton.setAttribute("aria-pressed", String(on));
    document.getElementById("log-paused-note").hidden = !on;
    if (restart && !on && terminal) { terminal = false; poll(); } // polling stopped while paused at the run's end
  }
  if (pauseButton) pauseButton.addEventListener("click", () => setPaused(!logPaused));

  document.getElementById("log-source").addEventListener("change", (ev) => {
    if (logPaused) setPaused(false, false); // the new log loads below
    logKey = ev.target.value; logEl.textContent = ""; delete offsets[logKey];
    showIncomplete();
    document.getElementById("log-download").href = logUrl(logKey) + "?download=1";
    if (terminal) { terminal = false; poll(); }
  });
  document.getElementById("log-download").href = logUrl(logKey) + "?download=1";
  showIncomplete();

  (async function start() {
    try { await loadSeries(); } catch (e) { since = 0; /* live.json sends the raw points */ }
    if (!seriesLoaded) since = 0;
    poll();
  })();
})();
