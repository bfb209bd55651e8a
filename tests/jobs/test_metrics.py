import socket
import time

import numpy as np

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


def test_unreachable_endpoint_only_warns(capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    poster = metrics.MetricsPoster(f"http://127.0.0.1:{port}/x", executor="0", timeout=1)
    poster.add("loss", 1.0, 1, 1)
    poster.close()  # must not raise
    assert poster.failures == 1 and poster.posted == 0
    assert "WARNING sparkdeck metrics: POST" in capsys.readouterr().err


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
