"""main_fun without Spark: one process, one TF node (no TF_CONFIG), both input modes.
Runs in a subprocess so MultiWorkerMirroredStrategy starts with a fresh TensorFlow."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.jobs.digits import spec_dict
from tests.jobs.events import tensorboard_scalars

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os, sys
os.environ.pop("TF_CONFIG", None)
from workers.jobs import data, train

class Ctx:
    executor_id, job_name, task_index = 0, "chief", 0
    def get_data_feed(self, train_mode=True):
        return self.feed

class Feed:
    def __init__(self, items):
        self.items, self.terminated, self.sizes = list(items), False, []
    def should_stop(self):
        return self.terminated
    def next_batch(self, n):
        self.sizes.append(n)
        out, self.items = self.items[:n], self.items[n:]
        return out
    def terminate(self):
        self.terminated = True

spec = json.load(open(sys.argv[1]))
ctx = Ctx()
if spec["input_mode"] == "spark":
    x, y, _ = data.read_arrays(spec["dataset"]["train"], spec["dataset"]["shape"])
    items = [(a.reshape(-1), int(b)) for a, b in zip(x, y)] * (spec["hyperparameters"]["epochs"] + 1)
    ctx.feed = Feed(items)
train.main_fun({"spec": spec}, ctx)
feed = getattr(ctx, "feed", None)
print("CHILD=" + json.dumps({"terminated": feed.terminated if feed else None,
                             "sizes": sorted(set(feed.sizes)) if feed else None}))
"""


def run_child(tmp_path, spec: dict) -> subprocess.CompletedProcess:
    """main_fun on ``spec`` in a fresh Python (CHILD above)."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONPATH": str(REPO)}
    env.pop("SPARKDECK_BIND_HOST", None)
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("mode", ["tensorflow", "spark"])
def test_main_fun_trains_exports_and_reports(tmp_path, digits, sink, mode):
    spec = spec_dict(
        digits,
        tmp_path / "art",
        input_mode=mode,
        hyperparameters={"epochs": 2, "batch_size": 32},
        metrics={"url": sink.url, "token": "tok", "every_steps": 10},
        bind_host=None,
    )
    proc = run_child(tmp_path, spec)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.path.isfile(tmp_path / "art" / "model" / "model.keras")
    stats = json.loads((tmp_path / "art" / "train_stats.json").read_text())
    assert stats["steps_per_epoch"] == 45 and stats["workers"] == 1 and stats["per_replica_batch"] == 32
    assert stats["history"]["accuracy"][-1] > 0.5
    assert "TF_CONFIG: None" in proc.stderr and "devices: [PhysicalDevice" in proc.stderr
    child = json.loads(proc.stdout.split("CHILD=")[1])
    if mode == "spark":
        assert child == {"terminated": True, "sizes": [32]}  # batches, and the feed was released
    names = [p["name"] for p in sink.points("0")]
    assert names.count("loss") == 9 and names.count("epoch_loss") == 2  # 90 steps, every 10
    assert [p["value"] for p in sink.points("0") if p["name"] == "steps_per_epoch"] == [45]  # for the ETA
    scalars = tensorboard_scalars(tmp_path / "art")
    assert [step for step, _ in scalars["epoch_loss"]] == [0, 1]  # one per epoch, Keras's step numbering
    assert [round(v, 4) for _, v in scalars["epoch_accuracy"]] == [round(a, 4) for a in stats["history"]["accuracy"]]


def test_main_fun_leaves_its_points_in_the_pending_dir_when_the_ingest_is_down(tmp_path, digits):
    import socket

    with socket.socket() as s:  # the web server is down for the whole run
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/ingest/runs/1/metrics"
    spec = spec_dict(
        digits,
        tmp_path / "art",
        input_mode="tensorflow",
        hyperparameters={"epochs": 2, "batch_size": 32},
        metrics={"url": url, "token": "tok", "every_steps": 10, "close_seconds": 1},
        bind_host=None,
    )
    proc = run_child(tmp_path, spec)
    assert proc.returncode == 0, proc.stderr[-3000:]  # training is not failed by metrics
    assert os.path.isfile(tmp_path / "art" / "model" / "model.keras")
    (pending,) = (tmp_path / "art" / "metrics-pending").iterdir()
    points = [json.loads(line) for line in pending.read_text().splitlines()]
    names = [p["name"] for p in points]
    # 2 epochs x 45 steps, every 10: loss and accuracy at 10..90, and each epoch's end, and steps_per_epoch
    assert len(points) == 2 * (90 // 10) + 2 * 2 + 1
    assert names.count("loss") == names.count("accuracy") == 9 and names.count("epoch_loss") == 2
    assert {p["executor"] for p in points} == {"0"}
    assert len({(p["name"], p["step"]) for p in points}) == len(points)  # step unique per name and executor
    assert "for the web app to store" in proc.stderr


def test_main_fun_validates_on_held_out_training_rows(tmp_path, digits, sink):
    spec = spec_dict(
        digits,
        tmp_path / "art",
        input_mode="tensorflow",
        hyperparameters={"epochs": 2, "batch_size": 32, "validation_split": 0.1},
        metrics={"url": sink.url, "token": "tok", "every_steps": 10},
        bind_host=None,
    )
    proc = run_child(tmp_path, spec)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads((tmp_path / "art" / "train_stats.json").read_text())
    # 1,437 training rows: 144 held out, so one pass over the other 1,293 at 32 is 41 steps, not 45.
    assert stats["steps_per_epoch"] == 41
    assert "validation: 144 of 144 held-out rows on this worker, 5 steps" in proc.stderr
    assert len(stats["history"]["val_loss"]) == len(stats["history"]["val_accuracy"]) == 2
    assert stats["history"]["val_accuracy"][-1] > 0.5
    points = sink.points("0")
    val = [(p["epoch"], p["value"]) for p in points if p["name"] == "val_loss"]
    assert [e for e, _ in val] == [1, 2]
    assert [round(v, 5) for _, v in val] == [round(v, 5) for v in stats["history"]["val_loss"]]
