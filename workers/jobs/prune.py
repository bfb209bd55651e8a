"""Early stopping of a sweep's trial, on the executors.

At each epoch's end every TF node posts the epoch's objective (``val_accuracy`` / ``val_loss``; the
validation metrics are all-reduced, so every node holds the same number) to the web's epoch endpoint
and gets the pruner's decision back. The web stores the first decision for an epoch and gives it to
every node that asks, so all nodes stop after the same epoch and no all-reduce is left waiting for a
node that went on (docs/architecture.md, "Early stopping").

Through a web outage a node keeps asking for ``wait_seconds``, then trains on: a trial that is not
stopped costs epochs, a node that stops alone would hang the others. ``make_callback`` wraps this in
a tf_keras Callback, created lazily like the metrics callback.
"""

from __future__ import annotations

import json
import math
import sys
import time
import urllib.error
import urllib.request

from workers.jobs.metrics import RETRY_STATUSES, json_post

CONTINUE, STOP = "continue", "stop"
BACKOFF = (0.5, 10.0)  # first retry delay, cap (seconds)


def _say(msg: str) -> None:
    print(f"sparkdeck prune: {msg}", file=sys.stderr, flush=True)


class EpochAsker:
    """POSTs {"epoch", "value", "executor"} and returns the decision; never raises."""

    def __init__(self, url: str, token: str = "", executor="0", wait_seconds: float = 300, timeout: float = 10.0):
        self.url = url
        self.token = token
        self.executor = str(executor)
        self.wait_seconds = max(0.0, float(wait_seconds))
        self.timeout = timeout
        self.asked = 0  # POST attempts
        # Direct connection: the endpoint is the webapp itself, never via a proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def ask(self, epoch: int, value, sleep=time.sleep, clock=time.monotonic) -> str:
        try:
            value = float(value)
        except (TypeError, ValueError):
            _say(f"epoch {epoch}: objective {value!r} is not a number; training on")
            return CONTINUE
        # JSON has no NaN or inf: a diverged value is sent as null with "diverged" set.
        finite = math.isfinite(value)
        report = {"epoch": int(epoch), "value": value if finite else None, "diverged": not finite}
        body = json.dumps({**report, "executor": self.executor}).encode()
        deadline = clock() + self.wait_seconds
        delay = BACKOFF[0]
        last = ""
        while True:
            self.asked += 1
            outcome, detail = self._post(body)
            if outcome == "ok":
                return detail
            if outcome == "refused":
                _say(f"epoch {epoch}: {self.url} refused the report ({detail}); training on")
                return CONTINUE
            last = detail
            if clock() + delay > deadline:
                _say(f"epoch {epoch}: no answer from {self.url} in {self.wait_seconds:.0f} s ({last}); training on")
                return CONTINUE
            sleep(delay)
            delay = min(delay * 2, BACKOFF[1])

    def _post(self, body: bytes) -> tuple[str, str]:
        try:
            with self._opener.open(json_post(self.url, body, self.token), timeout=self.timeout) as resp:
                answer = json.loads(resp.read(10_000) or b"{}")
        except urllib.error.HTTPError as e:
            detail = f"HTTP {e.code}: {e.read(300).decode('utf-8', 'replace')}"
            return ("retry" if e.code in RETRY_STATUSES else "refused"), detail
        except (OSError, ValueError) as e:  # refused, reset, timed out, or not JSON: the web is (re)starting
            return "retry", str(e) or type(e).__name__
        decision = answer.get("decision") if isinstance(answer, dict) else None
        if decision not in (CONTINUE, STOP):
            return "refused", f"answer without a decision: {answer!r}"[:300]
        return "ok", decision


def make_callback(asker: EpochAsker, objective: str):
    """A tf_keras Callback asking at each epoch's end; on "stop" it ends fit() after this epoch and
    records the epoch in ``stopped_at`` (1-based)."""
    from workers.jobs.templates import _keras

    keras = _keras()

    class PruneCallback(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.stopped_at = None
            self._warned = False

        def on_epoch_end(self, epoch, logs=None):
            if not logs or objective not in logs:
                if not self._warned:
                    _say(f"fit reports no {objective} (no validation split?): this trial is never stopped early")
                    self._warned = True
                return
            if asker.ask(epoch + 1, logs[objective]) == STOP:
                _say(f"epoch {epoch + 1}: {objective}={logs[objective]:.4f}; the sweep's pruner stopped this trial")
                self.stopped_at = epoch + 1
                self.model.stop_training = True

    return PruneCallback()
