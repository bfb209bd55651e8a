// Compare runs page: loads /runs/compare/data.json and overlays the runs' curves, one chart per metric.
(function () {
  "use strict";
  const ids = JSON.parse(document.getElementById("compare-ids").textContent);
  const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"];
  const chartsEl = document.getElementById("charts");
  const statusEl = document.getElementById("chart-status");
  const charts = [];

  // The same colour per run in the table header and in every chart.
  document.querySelectorAll("#compare-table th[data-run] .swatch").forEach((el, i) => {
    el.style.background = colors[i % colors.length];
  });

  const table = document.getElementById("compare-table");
  document.getElementById("only-diff").addEventListener("change", (ev) => {
    table.classList.toggle("only-diff", ev.target.checked);
  });

  function title(name) {
    return name.replace(/_/g, " ");
  }

  function draw(data) {
    for (const c of charts.splice(0)) c.destroy();
    chartsEl.replaceChildren();
    if (!data.metrics.length) {
      statusEl.textContent = data.x === "epoch" ? "These runs reported no metrics with an epoch yet." : "These runs reported no metrics yet.";
      return;
    }
    statusEl.textContent = `Each curve: at most ${data.max_points} points (averaged over executors and buckets).`;
    for (const metric of data.metrics) {
      const fig = document.createElement("figure");
      const cap = document.createElement("figcaption");
      cap.textContent = title(metric.name);
      const canvas = document.createElement("canvas");
      canvas.height = 240;
      fig.append(cap, canvas);
      chartsEl.append(fig);
      const isAccuracy = metric.name.includes("accuracy");
      const sparse = data.x === "epoch" || metric.name.startsWith("epoch_");
      charts.push(new Chart(canvas, {
        type: "line",
        data: {
          datasets: metric.datasets.map((d, i) => ({
            label: d.label,
            data: d.points.map(([x, y]) => ({ x, y })),
            borderColor: colors[i % colors.length],
            backgroundColor: colors[i % colors.length],
            borderWidth: 1.5,
            pointRadius: sparse ? 2.5 : 0,
          })),
        },
        options: {
          animation: false, parsing: false, normalized: true,
          interaction: { mode: "nearest", intersect: false },
          scales: {
            x: { type: "linear", title: { display: true, text: data.x_label } },
            y: { type: "linear", title: { display: true, text: title(metric.name) }, ...(isAccuracy ? { suggestedMin: 0, suggestedMax: 1 } : {}) },
          },
          plugins: { legend: { position: "bottom" } },
        },
      }));
    }
  }

  async function load(x) {
    statusEl.textContent = "loading metrics…";
    const q = new URLSearchParams({ ids: ids.join(","), x });
    try {
      const resp = await fetch(`${chartsEl.dataset.url}?${q}`, { headers: { Accept: "application/json" } });
      const data = await resp.json();
      if (!resp.ok) { statusEl.textContent = data.error || `error ${resp.status}`; return; }
      draw(data);
    } catch (e) {
      statusEl.textContent = "Could not load the metrics; reload the page to try again.";
    }
  }

  const radios = document.querySelectorAll("#x-axis input[name=x]");
  radios.forEach((r) => r.addEventListener("change", () => {
    const url = new URL(window.location);
    url.searchParams.set("x", r.value);
    history.replaceState(null, "", url);
    load(r.value);
  }));
  load([...radios].find((r) => r.checked)?.value || "step");
})();
