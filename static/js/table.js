// Run table: keep shared URLs short. On submit the column checkboxes become one `cols=a,b,c`
// (none when they are the defaults) and empty filter fields are left out of the query string.
(function () {
  "use strict";
  const form = document.getElementById("filters");
  if (!form) return;
  const boxes = Array.from(form.querySelectorAll("input[name='cols']"));
  const initial = boxes.filter((b) => b.defaultChecked).map((b) => b.value).join(",");
  form.addEventListener("submit", function () {
    const chosen = boxes.filter((b) => b.checked).map((b) => b.value).join(",");
    boxes.forEach((b) => { b.disabled = true; });
    const url = new URL(window.location.href);
    if (chosen && (chosen !== initial || url.searchParams.has("cols"))) {
      const hidden = document.createElement("input");
      hidden.type = "hidden"; hidden.name = "cols"; hidden.value = chosen;
      form.appendChild(hidden);
    }
    form.querySelectorAll("input, select").forEach(function (el) {
      if (el.type !== "checkbox" && el.tagName !== "SELECT" && !el.value) el.disabled = true;
      if (el.name === "sort" && el.value === "-created") el.disabled = true;
    });
  });
})();
