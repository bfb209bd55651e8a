// Dataset upload with a progress bar (XHR upload events). The server stores the file and answers
// {"url": dataset page} at once; the conversion runs in a worker and that page shows its progress.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  const maxBytes = Number(form.dataset.maxBytes || 0);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const bar = document.getElementById("upload-bar");
    const status = document.getElementById("upload-status");
    status.className = "hint";
    // Refuse before sending anything: the server would refuse it too, after the transfer.
    let total = 0;
    for (const input of form.querySelectorAll("input[type=file]")) {
      for (const f of input.files) total += f.size;
    }
    if (maxBytes && total > maxBytes) {
      status.textContent = `The files are ${(total / 2 ** 20).toFixed(0)} MB; the upload limit is ${(maxBytes / 2 ** 20).toFixed(0)} MB.`;
      status.className = "flash error";
      return;
    }
    const xhr = new XMLHttpRequest();
    document.getElementById("upload-progress").hidden = false;
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) {
        const pct = Math.round((100 * e.loaded) / e.total);
        bar.style.width = `${pct}%`;
        status.textContent = pct < 100 ? `uploading… ${pct}%` : "storing…";
      }
    });
    xhr.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 200 && body.url) {
        status.textContent = "stored; opening its page (a worker checks or converts it there)…";
        window.location = body.url;
        return;
      }
      bar.style.width = "0%";
      status.textContent = body.error || `upload failed (HTTP ${xhr.status})`;
      status.className = "flash error";
    });
    xhr.addEventListener("error", () => {
      status.textContent = "network error: nothing was stored";
      status.className = "flash error";
    });
    xhr.open("POST", form.action || window.location.href);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.send(new FormData(form));
  });
})();
