// Progress and ETA of a run from its metric points (step, wall_time), the same computation as
// webapp/monitoring/services.estimate (tests/web/test_monitoring.py checks they agree). Loaded before
// static/js/run.js, which feeds it the live points; usable from node (module.exports) for the test.
(function (root) {
  "use strict";
  const WINDOW_S = 30;
  const STEP_NAMES = new Set(["loss", "accuracy", "epoch_loss", "epoch_accuracy"]);
  const EPOCH_END = new Set(["epoch_loss", "epoch_accuracy"]);

  // samples: [[step, wall_time], ...] of ONE executor; wall_time 0 = unknown (counts for the step only).
  // rate = (newest step - oldest step) / (their wall times apart) over the last windowS seconds
  // (at least the two newest samples); eta_s = (epochs * stepsPerEpoch - newest step) / rate.
  function estimate(samples, epochs, stepsPerEpoch, windowS = WINDOW_S) {
    const est = {
      step: null, epoch: null, epochs: epochs ? Math.trunc(epochs) : null,
      steps_per_epoch: stepsPerEpoch > 0 ? Math.trunc(stepsPerEpoch) : null,
      step_in_epoch: null, total_steps: null, rate: null, eta_s: null, fraction: null,
    };
    const pts = samples.filter(p => p[0] !== null && p[0] !== undefined).map(p => [Math.trunc(p[0]), +p[1]]);
    if (!pts.length) return est;
    est.step = Math.max(...pts.map(p => p[0]));
    const timed = pts.filter(p => p[1] > 0).map(p => [p[1], p[0]]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    if (timed.length >= 2) {
      const [tLast, sLast] = timed[timed.length - 1];
      const win = timed.filter(p => p[0] >= tLast - windowS);
      const [tFirst, sFirst] = win.length >= 2 ? win[0] : timed[timed.length - 2];
      if (tLast > tFirst && sLast > sFirst) est.rate = (sLast - sFirst) / (tLast - tFirst);
    }
    if (est.steps_per_epoch && est.epochs) {
      const spe = est.steps_per_epoch;
      est.total_steps = spe * est.epochs;
      const done = Math.min(est.step, est.total_steps);
      est.epoch = done >= est.total_steps ? est.epochs : Math.floor(done / spe) + 1;
      est.step_in_epoch = done - (est.epoch - 1) * spe;
      est.fraction = done / est.total_steps;
      if (done >= est.total_steps) est.eta_s = 0;
      else if (est.rate) est.eta_s = (est.total_steps - done) / est.rate;
    }
    return est;
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  // "epoch 3 of 10 · step 120/300 · ETA 1 min 20 s"
  function describe(est) {
    const parts = [`epoch ${est.epoch} of ${est.epochs}`, `step ${est.step_in_epoch}/${est.steps_per_epoch}`];
    if (est.eta_s !== null) parts.push(`ETA ${formatDuration(est.eta_s)}`);
    else parts.push("ETA: measuring the step rate…");
    return parts.join(" · ");
  }

  // Follows one executor's points (the chief "0" when it reports) from the server's starting state
  // (services.eta: executor, window, steps_per_epoch) on.
  class Tracker {
    constructor(init) {
      init = init || {};
      this.executor = init.executor ?? null;
      this.window = (init.window || []).map(p => [p[0], p[1]]);
      this.maxStep = init.step ?? null;
      this.stepsPerEpoch = init.steps_per_epoch ?? null;
      this.posted = false; // a steps_per_epoch point arrived: it wins over an estimate from epoch ends
    }

    add(p) {
      if (p.name === "steps_per_epoch" && p.value > 0) { this.stepsPerEpoch = Math.round(p.value); this.posted = true; return; }
      if (!STEP_NAMES.has(p.name)) return;
      if (this.executor === null || (p.executor === "0" && this.executor !== "0")) {
        if (this.executor !== p.executor) { this.window = []; this.maxStep = null; }
        this.executor = p.executor;
      }
      if (p.executor !== this.executor) return;
      if (!this.posted && !this.stepsPerEpoch && EPOCH_END.has(p.name) && p.epoch > 0 && p.step > 0) {
        this.stepsPerEpoch = Math.round(p.step / p.epoch);
      }
      this.maxStep = Math.max(this.maxStep ?? 0, p.step);
      if (p.wall_time > 0) {
        this.window.push([p.step, p.wall_time]);
        const newest = Math.max(...this.window.map(q => q[1]));
        const keep = this.window.filter(q => q[1] >= newest - WINDOW_S);
        this.window = keep.length >= 2 ? keep : this.window.slice(-2);
      }
    }

    estimate(epochs) {
      const samples = this.window.slice();
      if (this.maxStep !== null) samples.push([this.maxStep, 0]);
      return estimate(samples, epochs, this.stepsPerEpoch);
    }
  }

  const api = { estimate, formatDuration, describe, Tracker, WINDOW_S };
  root.SparkdeckProgress = api;
  if (typeof module === "object" && module.exports) module.exports = api;
})(typeof window !== "undefined" ? window : globalThis);
