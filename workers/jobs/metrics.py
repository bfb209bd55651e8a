"""Training metrics -> webapp ingest endpoint (payload in docs/architecture.md).

``MetricsPoster`` buffers points and POSTs them from a background thread at least every
``flush_every`` seconds, so a slow or dead endpoint never stalls training; posting failures
only print a warning to stderr. ``make_callback`` wraps it in a tf_keras Callback (created
lazily so importing this module does not import TensorFlow).
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.request


class MetricsPoster:
    # 0.5 s: with the run page polling every second, a point is on the page within ~1.5 s of its
    # step (bench/freshness.py); an empty buffer posts nothing.
    def __init__(self, url, token="", executor="0", flush_every=0.5, timeout=5.0):
        self.url = url
        self.token = token
        self.executor = str(executor)
        self.flush_every = flush_every
        self.timeout = timeout
        self.posted = 0  # points accepted by the endpoint (for logs and tests)
        self.failures = 0
        self._buf: list[dict] = []
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # keeps batches in order between thread and close()
        self._stop = threading.Event()
        self._thread = None
        # Direct connection: the ingest endpoint is the webapp itself, never via a proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def add(self, name: str, value, step: int, epoch: int) -> None:
        if not self.url:
            return
        try:
            value = float(value)
        except (TypeError, ValueError):
            return
        point = {"name": name, "value": value, "step": int(step), "epoch": int(epoch)}
        point["ts"] = time.time()
        with self._lock:
            self._buf.append(point)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="metrics-poster")
                self._thread.daemon = True
                self._thread.start()

    def flush(self) -> None:
        """Post everything buffered now, in the caller's thread."""
        with self._send_lock:
            with self._lock:
                points, self._buf = self._buf, []
            if points:
                self._post(points)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 1)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_every):
            self.flush()

    def _post(self, points: list[dict]) -> bool:
        body = json.dumps({"executor": self.executor, "points": points}).encode()
        req = urllib.request.Request(self.url, data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                resp.read()
            self.posted += len(points)
            return True
        except Exception as e:  # never let metrics break training
            self.failures += 1
            print(
                f"WARNING sparkdeck metrics: POST {self.url} failed ({e!r}); dropped {len(points)} point(s)",
                file=sys.stderr,
                flush=True,
            )
            return False


def make_callback(poster: MetricsPoster, every_steps: int = 5):
    """A tf_keras Callback feeding ``poster``: loss/accuracy every ``every_steps`` batches,
    epoch_loss/epoch_accuracy at epoch end; ``step`` counts batches on this executor."""
    from workers.jobs.templates import _keras

    keras = _keras()
    every = max(1, int(every_steps))

    class MetricsCallback(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.step = 0
            self.epoch = 1

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1  # 1-based in the payload

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if logs and self.step % every == 0:
                for name in ("loss", "accuracy"):
                    if name in logs:
                        poster.add(name, logs[name], self.step, self.epoch)

        def on_epoch_end(self, epoch, logs=None):
            for name in ("loss", "accuracy"):
                if logs and name in logs:
                    poster.add(f"epoch_{name}", logs[name], self.step, epoch + 1)

        def on_train_end(self, logs=None):
            poster.close()

    return MetricsCallback()
