import json
import os
import socket
import threading
import time

import numpy as np
import pytest

from tests.outage_server import OutageServer
from workers.jobs import metrics


def test_posts_payload_with_bearer_token(sink):
    poster = metrics.MetricsPoster(sink.url, token="s3cret", executor=1, flush_every=0.1)
    poster.add("loss", np.float32(0.5), step=5, epoch=1)
    poster.add("accuracy", 0.75, step=5, epoch=1)
    poster.close()
    assert len(sink.requests) == 1
    path, headers, body = sink.requests[0]
    assert path == "/ingest/runs/1/metrics"
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Content-Type"] == "application/json"
    assert body["executor"] == "1"
    assert [(p["name"], p["value"], p["step"], p["epoch"]) for p in body["points"]] == [
        ("loss", 0.5, 5, 1),
        ("accuracy", 0.75, 5, 1),
    ]
    assert all(abs(p["ts"] - time.time()) < 60 for p in body["points"])
    assert poster.posted == 2 and poster.failures == 0


def test_flushes_in_the_background_without_close(sink):
    poster = metrics.MetricsPoster(sink.url, executor="0", flush_every=0.1)
    poster.add("loss", 1.0, 1, 1)
    deadline = time.time() + 5
    while not sink.requests and time.time() < deadline:
        time.sleep(0.05)
    assert sink.points() and sink.points()[0]["name"] == "loss"
    poster.close()


def test_unreachable_endpoint_only_warns_and_close_is_bounded(capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    poster = metrics.MetricsPoster(f"http://127.0.0.1:{port}/x", executor="0", timeout=1, close_seconds=0.3)
    poster.add("loss", 1.0, 1, 1)
    t0 = time.monotonic()
    poster.close()  # must not raise
    assert time.monotonic() - t0 < 0.3 + 1 + 1
    assert poster.failures >= 1 and poster.posted == 0 and poster.dropped == 1
    err = capsys.readouterr().err
    assert "WARNING: POST" in err and "no pending dir; dropped 1 point(s)" in err


def test_no_url_means_no_posting():
    poster = metrics.MetricsPoster(None)
    poster.add("loss", 1.0, 1, 1)
    poster.close()
    assert poster.posted == 0 and poster._thread is None


def test_keras_callback_reports_every_n_steps_and_epochs(sink):
    from workers.jobs.templates import _keras

    keras = _keras()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((40, 4)).astype(np.float32)
    y = np.arange(40) % 3
    poster = metrics.MetricsPoster(sink.url, token="t", executor="1", flush_every=0.2)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[metrics.make_callback(poster, 3)])
    # on_train_end closed the poster: everything is posted by now
    pts = sink.points("1")
    loss_steps = [p["step"] for p in pts if p["name"] == "loss"]
    assert loss_steps == [3, 6, 9, 12, 15, 18]  # 10 batches per epoch, step counts across epochs
    assert [p["epoch"] for p in pts if p["name"] == "loss"] == [1, 1, 1, 2, 2, 2]
    assert [p["step"] for p in pts if p["name"] == "accuracy"] == loss_steps
    epochs = [(p["name"], p["step"], p["epoch"]) for p in pts if p["name"].startswith("epoch_")]
    assert epochs == [
        ("epoch_loss", 10, 1),
        ("epoch_accuracy", 10, 1),
        ("epoch_loss", 20, 2),
        ("epoch_accuracy", 20, 2),
    ]
    assert all(h["Authorization"] == "Bearer t" for _, h, _ in sink.requests)


# --- outages: a real endpoint that stops listening and comes back ------------------------------

FAST = {"flush_every": 0.05, "timeout": 2.0, "backoff": (0.02, 0.2)}


class Recorder:
    """What a healthy ingest stores, in arrival order; answers 503 while ``failing``."""

    def __init__(self):
        self.points = []
        self.failing = False

    def __call__(self, path, headers, body):
        if self.failing:
            return 503, b'{"error": "starting"}'
        payload = json.loads(body)
        self.points += [(payload["executor"], p["name"], p["step"]) for p in payload["points"]]
        return 200, b'{"stored": 1}'


@pytest.fixture
def endpoint():
    rec = Recorder()
    server = OutageServer(rec).start()
    server.rec = rec
    yield server
    server.stop()


def wait_for(cond, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def feed(poster, start, stop, name="loss"):
    for step in range(start, stop):
        poster.add(name, step / 10, step, 1)
    return [("0", name, step) for step in range(start, stop)]


def spill_files(folder):
    return sorted(p for p in os.listdir(folder) if p.startswith("sparkdeck-metrics-spill-"))


def test_every_point_arrives_once_and_in_order_across_an_outage(endpoint, capsys):
    poster = metrics.MetricsPoster(endpoint.url, executor="0", **FAST)
    sent = feed(poster, 0, 100)
    wait_for(lambda: len(endpoint.rec.points) == 100)
    endpoint.stop()  # the web server dies: connections are refused
    sent += feed(poster, 100, 400)
    wait_for(lambda: poster.failures >= 3)  # it keeps retrying, it does not drop
    endpoint.start()  # back on the same port
    sent += feed(poster, 400, 500)
    wait_for(lambda: len(endpoint.rec.points) == 500)
    poster.close()
    assert endpoint.rec.points == sent  # each exactly once, in the order added
    assert poster.posted == 500 and poster.dropped == 0 and poster.pending_path is None
    err = capsys.readouterr().err
    assert err.count("WARNING: POST") == 1  # one warning per outage, not one per retry
    assert "works again after" in err and "dropped" not in err


def test_a_restarting_server_answering_503_is_retried(endpoint):
    poster = metrics.MetricsPoster(endpoint.url, executor="0", **FAST)
    endpoint.rec.failing = True
    sent = feed(poster, 1, 51)
    wait_for(lambda: poster.failures >= 3)
    assert endpoint.rec.points == []
    endpoint.rec.failing = False
    wait_for(lambda: len(endpoint.rec.points) == 50)
    poster.close()
    assert endpoint.rec.points == sent and poster.dropped == 0


def test_a_refused_batch_is_dropped_not_retried_forever(endpoint, capsys):
    refuse = {"on": True}

    def respond(path, headers, body):
        if refuse["on"]:
            return 400, b'{"error": "point 0: unknown metric"}'
        return endpoint.rec(path, headers, body)

    endpoint.respond = respond
    poster = metrics.MetricsPoster(endpoint.url, executor="0", **FAST)
    feed(poster, 0, 3)
    wait_for(lambda: poster.dropped == 3)
    refuse["on"] = False
    later = feed(poster, 3, 6)
    poster.close()
    assert endpoint.rec.points == later and poster.failures == 0
    assert "refused (HTTP 400: " in capsys.readouterr().err


def test_points_past_the_bound_spill_to_a_file_said_once(endpoint, tmp_path, capsys):
    poster = metrics.MetricsPoster(endpoint.url, executor="0", max_points=50, spill_dir=str(tmp_path), **FAST)
    endpoint.stop()
    sent = feed(poster, 0, 170)
    wait_for(lambda: poster.failures >= 1)
    assert len(poster._mem) == 50  # the memory bound holds while the endpoint is down
    (spill,) = spill_files(tmp_path)
    assert poster.spill_path == str(tmp_path / spill)
    poster._spill_w.flush()
    lines = (tmp_path / spill).read_bytes().splitlines()
    assert [json.loads(x)["step"] for x in lines] == list(range(50, 170))  # the newest, in order
    endpoint.start()
    wait_for(lambda: len(endpoint.rec.points) == 170)
    assert endpoint.rec.points == sent
    assert spill_files(tmp_path) == []  # read back and removed

    endpoint.stop()  # a second outage: spills again, without saying so again
    sent += feed(poster, 170, 300)
    wait_for(lambda: len(spill_files(tmp_path)) == 1)
    endpoint.start()
    poster.close()
    assert endpoint.rec.points == sent and poster.dropped == 0
    assert spill_files(tmp_path) == []
    assert capsys.readouterr().err.count("queueing later points in") == 1


def read_pending(folder):
    files = sorted(os.listdir(folder))
    return files, [json.loads(line) for f in files for line in (folder / f).read_text().splitlines()]


def test_close_leaves_what_it_holds_in_the_pending_dir_when_the_endpoint_stays_down(endpoint, tmp_path):
    pending = tmp_path / "artifacts" / metrics.PENDING_DIR
    poster = metrics.MetricsPoster(
        endpoint.url,
        executor="1",
        max_points=20,
        spill_dir=str(tmp_path),
        pending_dir=str(pending),
        close_seconds=0.5,
        **FAST,
    )
    endpoint.stop()
    for step in range(60):
        poster.add("loss", step / 10, step, 1 + step // 30)
    t0 = time.monotonic()
    poster.close()
    assert time.monotonic() - t0 < 0.5 + FAST["timeout"] + 1
    files, points = read_pending(pending)
    assert len(files) == 1 and files[0].startswith("1-") and files[0].endswith(".jsonl")
    assert poster.pending_path == str(pending / files[0])
    assert [(p["executor"], p["name"], p["step"], p["epoch"]) for p in points] == [
        ("1", "loss", s, 1 + s // 30) for s in range(60)
    ]  # memory and spill file, in order, each carrying its executor
    assert all(p["value"] == p["step"] / 10 and p["ts"] > 0 for p in points)
    assert spill_files(tmp_path) == [] and poster.dropped == 0
    poster.add("loss", 1.0, 99, 2)  # closed: later points are ignored, nothing is started again
    assert read_pending(pending)[0] == files


def test_close_posts_everything_if_the_endpoint_returns_within_close_seconds(endpoint, tmp_path):
    poster = metrics.MetricsPoster(
        endpoint.url, executor="0", pending_dir=str(tmp_path / "p"), close_seconds=10, **FAST
    )
    endpoint.stop()
    sent = feed(poster, 0, 30)
    threading.Timer(0.5, endpoint.start).start()
    poster.close()
    assert endpoint.rec.points == sent
    assert not (tmp_path / "p").exists() and poster.pending_path is None


def test_close_is_bounded_by_an_endpoint_that_accepts_and_never_answers(tmp_path):
    with socket.socket() as hung:  # listens (the kernel accepts) but never reads or answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}/x"
        poster = metrics.MetricsPoster(url, executor="0", pending_dir=str(tmp_path), close_seconds=0.5, timeout=0.5)
        t0 = time.monotonic()
        poster.add("loss", 1.0, 1, 1)  # adding never waits for the endpoint
        assert time.monotonic() - t0 < 0.5
        poster.close()
        assert time.monotonic() - t0 < 0.5 + 0.5 + 1 + 0.5
    assert [p["step"] for p in read_pending(tmp_path)[1]] == [1]


def test_a_pending_file_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    """The web app may read the folder at any moment: a half-written file never has the name."""
    poster = metrics.MetricsPoster("http://127.0.0.1:9/x", executor="0", pending_dir=str(tmp_path), close_seconds=0)
    real_replace = os.replace
    seen = []

    def replace(src, dst):
        seen.append(sorted(os.listdir(tmp_path)))
        real_replace(src, dst)

    monkeypatch.setattr(metrics.os, "replace", replace)
    poster.add("loss", 1.0, 1, 1)
    poster.close()
    assert len(seen) == 1 and all(name.startswith(".") and name.endswith(".tmp") for name in seen[0])
    assert [f for f in os.listdir(tmp_path)] == [os.path.basename(poster.pending_path)]
