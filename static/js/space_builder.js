// The sweep form's space builder: one row per hyperparameter of the chosen template (its schema from
// the catalogue), each kept at the base value, tried over a list of values, or over a range (low/high,
// log scale, an int step or a grid's points). The rows write the space JSON into #id_space, which
// create_sweep checks; editing the JSON by hand fills the rows back in.
(function () {
  "use strict";
  const box = document.getElementById("space-builder");
  const text = document.getElementById("id_space");
  const select = document.getElementById("id_template");
  const schemaNode = document.getElementById("template-schemas");
  if (!box || !text || !select || !schemaNode) return;
  const schemas = Object.fromEntries(JSON.parse(schemaNode.textContent).map((t) => [t.key, t]));
  const rows = document.getElementById("space-rows");
  let writing = false;

  function parseSpace() {
    try {
      const v = JSON.parse(text.value || "{}");
      return v && typeof v === "object" && !Array.isArray(v) ? v : null;
    } catch (e) {
      return null;
    }
  }

  function input(name, value, attrs = {}) {
    const el = document.createElement("input");
    el.name = name;
    el.value = value === undefined || value === null ? "" : String(value);
    Object.assign(el, attrs);
    return el;
  }

  function labelled(text, el) {
    const label = document.createElement("label");
    label.className = "inline";
    label.append(text, " ", el);
    return label;
  }

  function parseValue(param, raw) {
    const s = raw.trim();
    if (param.kind === "int" || param.kind === "float") return s === "" ? null : Number(s);
    if (param.kind === "bool") return s === "true" ? true : s === "false" ? false : s;
    return s;
  }

  function row(param, entry) {
    const tr = document.createElement("tr");
    tr.dataset.param = param.name;
    const name = document.createElement("td");
    const code = document.createElement("code");
    code.textContent = param.name;
    name.append(code);
    name.title = param.help || "";
    const modeCell = document.createElement("td");
    const mode = document.createElement("select");
    mode.name = `space_mode_${param.name}`;
    const numeric = param.kind === "int" || param.kind === "float";
    for (const [value, label] of [["base", "base value"], ["choice", "list of values"], ...(numeric ? [["range", "range"]] : [])]) {
      const opt = document.createElement("option");
      opt.value = value;
      opt.textContent = label;
      mode.append(opt);
    }
    const kind = entry ? (entry.type === "fixed" ? "choice" : entry.type) : "base";
    mode.value = kind;
    modeCell.append(mode);
    const values = document.createElement("td");
    const defaults = param.choices ? param.choices.join(", ") : String(param.default);
    const list = input(`space_values_${param.name}`, entry && entry.type === "choice" ? entry.values.join(", ")
      : entry && entry.type === "fixed" ? String(entry.value) : defaults, { placeholder: "a, b, c", size: 24 });
    const range = document.createElement("span");
    const low = input(`space_low_${param.name}`, entry && entry.type === "range" ? entry.low : param.min, { size: 8, inputMode: "decimal" });
    const high = input(`space_high_${param.name}`, entry && entry.type === "range" ? entry.high : param.max, { size: 8, inputMode: "decimal" });
    const log = input(`space_log_${param.name}`, "", { type: "checkbox" });
    log.checked = entry && entry.type === "range" ? !!entry.log : param.name === "learning_rate";
    const step = input(`space_step_${param.name}`, entry && entry.type === "range" ? (entry.step ?? entry.points ?? "") : "",
      { size: 5, inputMode: "numeric", placeholder: param.kind === "int" ? "step" : "points" });
    range.append(labelled("low", low), " ", labelled("high", high), " ", labelled("log", log), " ",
      labelled(param.kind === "int" ? "step" : "grid points", step));
    values.append(list, range);
    function show() {
      list.hidden = mode.value !== "choice";
      range.hidden = mode.value !== "range";
    }
    mode.addEventListener("change", show);
    show();
    tr.append(name, modeCell, values);
    tr.read = function () {
      if (mode.value === "choice") {
        const vs = list.value.split(",").filter((v) => v.trim() !== "").map((v) => parseValue(param, v));
        return vs.length === 1 ? { type: "fixed", value: vs[0] } : { type: "choice", values: vs };
      }
      if (mode.value === "range") {
        const e = { type: "range", low: parseValue(param, low.value), high: parseValue(param, high.value), log: log.checked };
        if (step.value.trim() !== "") e[param.kind === "int" ? "step" : "points"] = Number(step.value);
        return e;
      }
      return null;
    };
    return tr;
  }

  function build() {
    const schema = schemas[select.value];
    rows.replaceChildren();
    box.hidden = !schema;
    if (!schema) return;
    const space = parseSpace() || {};
    for (const param of schema.params) {
      if (param.refs) continue; // a base model is chosen, not searched
      rows.append(row(param, space[param.name]));
    }
  }

  function write() {
    const space = {};
    for (const tr of rows.children) {
      const entry = tr.read();
      if (entry) space[tr.dataset.param] = entry;
    }
    writing = true;
    text.value = JSON.stringify(space, null, 1);
    writing = false;
  }

  rows.addEventListener("input", write);
  rows.addEventListener("change", write);
  text.addEventListener("input", () => {
    if (!writing && parseSpace()) build();
  });
  select.addEventListener("change", () => {
    build();
    write(); // another template: only its hyperparameters stay in the space
  });
  build();
})();
