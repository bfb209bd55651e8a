"""Training metrics -> webapp ingest endpoint (payload and pending-file format in docs/architecture.md).

``MetricsPoster`` queues points and POSTs them in order from a background thread at least every
``flush_every`` seconds, so a slow or dead endpoint never stalls training. While the endpoint
fails, the batch is retried with capped exponential backoff (with jitter) and later points wait
behind it: ``max_points`` of them in memory, the rest in a spill file in the working directory (a
Spark executor's cwd is its work dir). ``close()`` keeps retrying for ``close_seconds``, then
writes whatever is still held to ``<pending_dir>/<executor>-<unique>.jsonl``, which the web app
stores before it marks the run finished. The ingest is idempotent on (run, name, step, executor),
so a batch whose answer was lost may be sent again safely. ``make_callback`` wraps the poster in
a tf_keras Callback (created lazily so importing this module does not import TensorFlow).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import random
import re
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

PENDING_DIR = "metrics-pending"  # in the run's artifact dir: points an executor could not post
MAX_POINTS = 50_000  # held in memory (~7 MB encoded) before later points go to the spill file
BATCH_POINTS = 2000  # per POST; the ingest takes at most 5000
CLOSE_SECONDS = 20  # default of the spec's metrics.close_seconds
BACKOFF = (0.5, 30.0)  # first retry delay, cap (seconds)
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}  # the endpoint is (re)starting or overloaded


def json_post(url: str, body: bytes, token: str = "") -> urllib.request.Request:
    """A JSON POST to the web app with the run's bearer token (the metrics and epoch endpoints)."""
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    return req


def pending_dir(artifact_dir: str) -> str:
    return os.path.join(artifact_dir, PENDING_DIR)


def _say(msg: str) -> None:
    print(f"sparkdeck metrics: {msg}", file=sys.stderr, flush=True)


class MetricsPoster:
    # flush_every 0.5 s: with the run page polling every second, a point is on the page within
    # ~1.5 s of its step (bench/freshness.py); an empty queue posts nothing.
    def __init__(
        self,
        url,
        token="",
        executor="0",
        flush_every=0.5,
        timeout=5.0,
        *,
        pending_dir=None,
        close_seconds=CLOSE_SECONDS,
        max_points=MAX_POINTS,
        spill_dir=None,
        batch_points=BATCH_POINTS,
        backoff=BACKOFF,
    ):
        self.url = url
        self.token = token
        self.executor = str(executor)
        self.flush_every = flush_every
        self.timeout = timeout
        self.pending_dir = pending_dir
        self.close_seconds = max(0.0, float(close_seconds))
        self.max_points = max(1, int(max_points))
        self.spill_dir = spill_dir  # None: the cwd at the first spill
        self.batch_points = max(1, int(batch_points))
        self.backoff = backoff
        self.posted = 0  # points accepted by the endpoint
        self.failures = 0  # failed POST attempts (each is retried)
        self.dropped = 0  # points lost: refused by the endpoint, or no room to keep them
        self.spill_path = None
        self.pending_path = None
        self._mem: collections.deque[bytes] = collections.deque()  # encoded points, oldest first
        self._spill_w = None  # the spill file: points queued behind those in memory
        self._spill_r = None
        self._spilled = 0  # lines in the spill file not yet read back
        self._spill_broken = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._closed = False
        self._abandoned = False  # close() took what was left: the thread must not touch it
        self._deadline = 0.0
        self._streak = False  # the last POST failed
        self._thread = None
        self._head = json.dumps({"executor": self.executor}, separators=(",", ":")).encode()[:-1]
        # Direct connection: the ingest endpoint is the webapp itself, never via a proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def add(self, name: str, value, step: int, epoch: int) -> None:
        if not self.url or self._closed:
            return
        try:
            value = float(value)
        except (TypeError, ValueError):
            return
        point = {"name": name, "value": value, "step": int(step), "epoch": int(epoch), "ts": time.time()}
        line = json.dumps(point, separators=(",", ":")).encode()
        with self._lock:
            if not self._spilled and len(self._mem) < self.max_points:
                self._mem.append(line)
            else:
                self._spill(line)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="metrics-poster", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Post what is queued, retrying for up to ``close_seconds``; then leave the rest in the
        pending dir. Returns within about close_seconds + timeout; never raises."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is None:
            return  # nothing was ever queued
        self._deadline = time.monotonic() + self.close_seconds
        self._closing = True
        self._wake.set()
        thread.join(self.close_seconds + self.timeout + 1)
        with self._lock:
            self._abandoned = True
            left = list(self._mem) + self._read_spill(None)
            self._mem.clear()
            self._drop_spill()
        if left:
            self._write_pending(left)

    # --- sender thread -------------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0  # consecutive failed attempts
        while True:
            if attempt:
                base, cap = self.backoff
                delay = min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            else:
                delay = 0.0 if self._closing else self.flush_every
            if self._closing:
                delay = min(delay, self._deadline - time.monotonic())
            if delay > 0:
                self._wake.wait(delay)
                self._wake.clear()
            if self._send_queued():
                if attempt:
                    _say(f"POST {self.url} works again after {attempt} failed attempt(s)")
                attempt = 0
                if self._closing:
                    return
            else:
                attempt += 1
                if self._closing and time.monotonic() >= self._deadline:
                    return

    def _send_queued(self) -> bool:
        """Post batches until the queue is empty (True) or a POST failed and must be retried."""
        while True:
            if self._closing and time.monotonic() >= self._deadline:
                return False
            batch = self._peek()
            if not batch:
                return True
            outcome = self._post(batch)
            if outcome == "retry":
                return False
            with self._lock:
                if self._abandoned:
                    return True
                for _ in batch:
                    self._mem.popleft()

    def _peek(self) -> list[bytes]:
        with self._lock:
            if self._abandoned:
                return []
            if self._spilled and len(self._mem) < self.batch_points:
                room = min(self.max_points - len(self._mem), self.batch_points)
                if room > 0:
                    self._mem.extend(self._read_spill(room))
            return list(itertools.islice(self._mem, self.batch_points))

    def _post(self, lines: list[bytes]) -> str:
        """ "ok", "retry" (endpoint down or restarting) or "refused" (dropped: resending cannot help)."""
        body = self._head + b',"points":[' + b",".join(lines) + b"]}"
        req = json_post(self.url, body, self.token)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as e:
            if e.code not in RETRY_STATUSES:
                detail = e.read(300).decode("utf-8", "replace")
                self.dropped += len(lines)
                _say(f"WARNING: POST {self.url} refused (HTTP {e.code}: {detail}); dropped {len(lines)} point(s)")
                return "refused"
            return self._failed(e)
        except Exception as e:  # noqa: BLE001 - any transport error: keep the points, retry
            return self._failed(e)
        self.posted += len(lines)
        self._streak = False
        return "ok"

    def _failed(self, err) -> str:
        self.failures += 1
        if not self._streak:  # one warning per outage, not one per retry
            held = len(self._mem) + self._spilled
            _say(f"WARNING: POST {self.url} failed ({err!r}); holding {held} point(s), retrying with backoff")
        self._streak = True
        return "retry"

    # --- spill file and pending file (called with the lock held, or after the thread ended) ----

    def _spill(self, line: bytes) -> None:
        if self._spill_w is None:
            if self._spill_broken:
                self.dropped += 1
                return
            directory = self.spill_dir or os.getcwd()
            path = os.path.join(directory, f"sparkdeck-metrics-spill-{self._unique()}.jsonl")
            try:
                self._spill_w = open(path, "ab")  # noqa: SIM115 - held open while spilling
                self._spill_r = open(path, "rb")  # noqa: SIM115
            except OSError as e:
                self._spill_broken = True
                self.dropped += 1
                _say(f"WARNING: cannot open the spill file {path} ({e}); dropping points past {self.max_points}")
                return
            if self.spill_path is None:  # once per poster: every later spill is the same story
                _say(
                    f"endpoint unreachable and {self.max_points} point(s) held in memory; "
                    f"queueing later points in {path}"
                )
            self.spill_path = path
        try:
            self._spill_w.write(line + b"\n")
            self._spilled += 1
        except OSError as e:
            self.dropped += 1
            if not self._spill_broken:
                _say(f"WARNING: writing the spill file failed ({e}); dropping points")
            self._spill_broken = True

    def _read_spill(self, limit) -> list[bytes]:
        """Up to ``limit`` (None: all) spilled points, oldest first; the file goes once read."""
        if not self._spilled:
            return []
        lines = []
        try:
            self._spill_w.flush()
            while self._spilled and (limit is None or len(lines) < limit):
                line = self._spill_r.readline()
                if not line.endswith(b"\n"):
                    break  # cannot happen after the flush above; never hand on half a point
                lines.append(line[:-1])
                self._spilled -= 1
        except OSError as e:
            _say(f"WARNING: reading the spill file failed ({e}); dropped {self._spilled} point(s)")
            self.dropped += self._spilled
            self._spilled = 0
        if not self._spilled:
            self._drop_spill()
        return lines

    def _drop_spill(self) -> None:
        # Best effort: the spill file lives in the executor's work dir, which Spark removes anyway.
        for f in (self._spill_w, self._spill_r):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        if self._spill_w is not None:
            with contextlib.suppress(OSError):
                os.remove(self._spill_w.name)
        self._spill_w = self._spill_r = None
        self._spilled = 0

    def _write_pending(self, lines: list[bytes]) -> None:
        if not self.pending_dir:
            self.dropped += len(lines)
            _say(f"WARNING: endpoint unreachable at close and no pending dir; dropped {len(lines)} point(s)")
            return
        name = f"{self._unique()}.jsonl"
        path = os.path.join(self.pending_dir, name)
        tmp = os.path.join(self.pending_dir, f".{name}.tmp")  # the reader skips dot files
        head = self._head + b","
        try:
            os.makedirs(self.pending_dir, exist_ok=True)
            with open(tmp, "wb") as f:
                for line in lines:  # {"name": ...} -> {"executor": "0","name": ...}
                    f.write(head + line[1:] + b"\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # whole or absent: the web app may read it at any moment
        except OSError as e:
            self.dropped += len(lines)
            _say(f"WARNING: cannot write {path} ({e}); dropped {len(lines)} point(s)")
            return
        self.pending_path = path
        _say(f"endpoint unreachable at close; left {len(lines)} point(s) in {path} for the web app to store")

    def _unique(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.executor)[:32] or "x"
        return f"{safe}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def make_callback(poster: MetricsPoster, every_steps: int = 5, validation: bool = True):
    """A tf_keras Callback feeding ``poster``: loss/accuracy every ``every_steps`` batches,
    epoch_loss/epoch_accuracy at epoch end, and val_loss/val_accuracy then when fit validates
    (``validation``: this executor posts them); ``step`` counts batches on this executor."""
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
            for name in ("val_loss", "val_accuracy"):
                if validation and logs and name in logs:
                    poster.add(name, logs[name], self.step, epoch + 1)

        def on_train_end(self, logs=None):
            poster.close()

    return MetricsCallback()
