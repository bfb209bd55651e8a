// Search within the run page's log (templates/monitoring/_logtools.html): highlights the matches in the
// text loaded so far, with a count and next/previous (Enter / Shift+Enter); "Search whole file" asks
// the server (log-search.json) for the matching lines of the whole stored log, with line numbers.
// run.js appends new output and fires "sparkdeck:log-appended"; the highlight follows it.
(function () {
  "use strict";
  const logEl = document.getElementById("log");
  const input = document.getElementById("log-search");
  if (!logEl || !input) return;
  const runId = JSON.parse(document.getElementById("run-id").textContent);
  const caseBox = document.getElementById("log-search-case");
  const countEl = document.getElementById("log-search-count");
  const results = document.getElementById("log-search-results");
  const source = document.getElementById("log-source");
  const follow = document.getElementById("follow");
  const MAX_MARKS = 5000; // beyond this the page would crawl; the count says "5000+"
  let marks = [];
  let current = -1;
  let timer = null;

  function pattern() {
    const q = input.value;
    if (!q) return null;
    const escaped = q.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    return new RegExp(escaped, caseBox && caseBox.checked ? "g" : "gi");
  }

  // Rebuild the log's children: plain text with <mark>s around the matches.
  function highlight(keepCurrent) {
    const text = logEl.textContent;
    const re = pattern();
    marks = [];
    if (!re) {
      if (logEl.children.length) logEl.textContent = text;
      current = -1;
      countEl.textContent = "";
      return;
    }
    const frag = document.createDocumentFragment();
    let last = 0;
    let m;
    let capped = false;
    while ((m = re.exec(text)) !== null) {
      if (marks.length >= MAX_MARKS) { capped = true; break; }
      if (m.index > last) frag.append(text.slice(last, m.index));
      const mark = document.createElement("mark");
      mark.textContent = m[0];
      frag.append(mark);
      marks.push(mark);
      last = m.index + m[0].length;
    }
    frag.append(text.slice(last));
    logEl.replaceChildren(frag);
    if (!keepCurrent || current >= marks.length) current = marks.length ? 0 : -1;
    show(false, capped);
  }

  function show(scroll, capped) {
    marks.forEach((mk, i) => mk.classList.toggle("current", i === current));
    const total = marks.length ? `${marks.length}${capped ? "+" : ""}` : "0";
    countEl.textContent = input.value ? (marks.length ? `${current + 1} / ${total}` : "no match in the loaded text") : "";
    if (scroll && current >= 0) marks[current].scrollIntoView({ block: "center" });
  }

  function step(delta) {
    if (!marks.length) return;
    if (follow) follow.checked = false; // jumping to a match: stop following the end of the log
    current = (current + delta + marks.length) % marks.length;
    show(true, false);
  }

  function later(fn, ms) {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  }

  input.addEventListener("input", () => later(() => highlight(false), 150)); // Enter jumps to a match
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") { ev.preventDefault(); step(ev.shiftKey ? -1 : 1); }
    if (ev.key === "Escape") { input.value = ""; highlight(false); results.hidden = true; }
  });
  if (caseBox) caseBox.addEventListener("change", () => highlight(false));
  document.getElementById("log-search-next").addEventListener("click", () => step(1));
  document.getElementById("log-search-prev").addEventListener("click", () => step(-1));
  logEl.addEventListener("sparkdeck:log-appended", () => { if (input.value) later(() => highlight(true), 300); });
  source.addEventListener("change", () => { marks = []; current = -1; countEl.textContent = ""; results.hidden = true; });

  // --- the whole stored file, on the server ---------------------------------------------------------
  function withMarks(text, re) {
    const frag = document.createDocumentFragment();
    let last = 0;
    let m;
    re.lastIndex = 0;
    while ((m = re.exec(text)) !== null && m[0].length) {
      frag.append(text.slice(last, m.index));
      const mark = document.createElement("mark");
      mark.textContent = m[0];
      frag.append(mark);
      last = m.index + m[0].length;
    }
    frag.append(text.slice(last));
    return frag;
  }

  async function searchFile() {
    const q = input.value;
    results.hidden = false;
    if (!q.trim()) { results.textContent = "Type what to search for first."; return; }
    results.textContent = "Searching the whole log…";
    const params = new URLSearchParams({ log: source.value, q, case: caseBox && caseBox.checked ? "1" : "0" });
    let data;
    try {
      const resp = await fetch(`/runs/${runId}/log-search.json?${params}`, { headers: { Accept: "application/json" } });
      data = await resp.json().catch(() => ({}));
      if (!resp.ok) { results.textContent = data.error || `Search failed (${resp.status}).`; return; }
    } catch (e) {
      results.textContent = `Search failed: ${e}`;
      return;
    }
    const head = document.createElement("p");
    head.className = "hint";
    const more = data.truncated ? ` (the first ${data.count}; there are more)` : "";
    const part = data.partial ? ` — stopped after ${data.lines_scanned} lines (time limit)` : "";
    head.textContent = `${data.count} matching line${data.count === 1 ? "" : "s"} in the whole file${more}${part}.`;
    const close = document.createElement("button");
    close.type = "button"; close.textContent = "Close"; close.className = "link";
    close.addEventListener("click", () => { results.hidden = true; });
    head.append(" ", close);
    const list = document.createElement("ol");
    const re = pattern();
    for (const hit of data.matches) {
      const li = document.createElement("li");
      const no = document.createElement("span");
      no.className = "lineno";
      no.textContent = `line ${hit.line}`;
      const code = document.createElement("code");
      code.append(re ? withMarks(hit.text, re) : hit.text);
      li.append(no, " ", code);
      list.append(li);
    }
    results.replaceChildren(head, list);
  }
  document.getElementById("log-search-file").addEventListener("click", searchFile);
})();
