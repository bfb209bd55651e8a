// Dataset page: the class-count bar chart, and the status polled every second while the dataset
// is uploaded or converting (the page reloads when that is over).
(function () {
  "use strict";
  const countsEl = document.getElementById("class-counts");
  if (countsEl && window.Chart) {
    const counts = JSON.parse(countsEl.textContent);
    new Chart(document.getElementById("class-chart"), {
      type: "bar",
      data: {
        labels: counts.map((c) => c.name),
        datasets: [{ label: "rows", data: counts.map((c) => c.count), backgroundColor: "#2563eb" }],
      },
      options: {
        animation: false,
        scales: { y: { beginAtZero: true, title: { display: true, text: "rows (train + test)" } } },
        plugins: { legend: { display: false } },
      },
    });
  }

  const statusEl = document.getElementById("ds-status");
  if (!statusEl || statusEl.dataset.active !== "1") return;
  const badge = statusEl.querySelector(".status");
  async function poll() {
    try {
      const resp = await fetch(statusEl.dataset.url, { headers: { Accept: "application/json" } });
      if (resp.ok) {
        const data = await resp.json();
        if (badge) {
          badge.textContent = data.status;
          badge.className = `status s-${data.status.toLowerCase()}`;
        }
        if (!data.active) { window.location.reload(); return; }
      }
    } catch (e) { /* network hiccup: try again */ }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
})();
