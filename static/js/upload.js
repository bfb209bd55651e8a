// Dataset upload with a progress bar (XHR upload events); the server validates and converts.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const xhr = new XMLHttpRequest();
    const bar = document.getElementById("upload-bar");
    const status = document.getElementById("upload-status");
    document.getElementById("upload-progress").hidden = false;
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) {
        const pct = Math.round((100 * e.loaded) / e.total);
        bar.style.width = `${pct}%`;
        status.textContent = pct < 100 ? `uploading… ${pct}%` : "validating and converting…";
      }
    });
    xhr.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 200 && body.url) { window.location = body.url; return; }
      bar.style.width = "0%";
      status.textContent = body.error || `upload failed (HTTP ${xhr.status})`;
      status.className = "flash error";
    });
    xhr.addEventListener("error", () => { status.textContent = "network error: nothing was stored"; });
    xhr.open("POST", form.action || window.location.href);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.send(new FormData(form));
  });
})();
