"""Bench: a CNN training step with glibc's default malloc settings vs the executors'
(workers/jobs/malloc_env.py), with and without MultiWorkerMirroredStrategy. One process, no
Spark; the CNN template on 28x28 digits (5,750 rows, batch 64), each trial in a fresh interpreter,
stock and tuned interleaved. Prints ms per step and the stock/tuned ratio per layout.

    .venv/bin/python bench/malloc_step.py [--epochs 2] [--trials 1]
"""

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import os, sys, time
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.pop("TF_CONFIG", None)
layout, epochs = sys.argv[1], int(sys.argv[2])
import numpy as np
from sklearn.datasets import load_digits
d = load_digits()
x = np.pad(np.kron(d.images.astype("float32"), np.ones((3, 3), "float32")), ((0, 0), (2, 2), (2, 2)))
x, y = np.concatenate([x] * 4)[:5750, ..., None], np.concatenate([d.target.astype("int64")] * 4)[:5750]
import tensorflow as tf, tf_keras
from workers.jobs import data, templates, tfdata_teardown
from workers.jobs.spec import Hyperparameters
hp = Hyperparameters(epochs=epochs, batch_size=64, learning_rate=0.002)
steps = len(x) // 64
if layout == "mwms":  # what an executor runs (workers/jobs/train.py), as a single TF node
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    tfdata_teardown.disable_device_autotune()
    ds = strategy.distribute_datasets_from_function(lambda _c: data.shard_dataset(x, y, 64, 1))
    with strategy.scope():
        model = templates.build("cnn", [28, 28, 1], 10, hp)
    model.distribute_reduction_method = "first"
else:  # workers/jobs/plain_baseline.py
    ds = data.shard_dataset(x, y, 64, 1)
    model = templates.build("cnn", [28, 28, 1], 10, hp)
t = time.perf_counter()
model.fit(ds, epochs=epochs, steps_per_epoch=steps, verbose=0)
print("MS_PER_STEP=%.2f" % (1000 * (time.perf_counter() - t) / (epochs * steps)))
"""


def trial(layout: str, epochs: int, tuned: bool) -> float:
    from workers.jobs.malloc_env import MALLOC_ENV

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    if tuned:
        env.update(MALLOC_ENV)
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, layout, str(epochs)], cwd=REPO, env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(f"trial failed:\n{out.stderr[-3000:]}")
    return float(out.stdout.split("MS_PER_STEP=")[1].split()[0])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--trials", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    for layout in ("plain", "mwms"):
        stock, tuned = [], []
        for _ in range(args.trials):
            stock.append(trial(layout, args.epochs, False))
            tuned.append(trial(layout, args.epochs, True))
        s, t = statistics.median(stock), statistics.median(tuned)
        print(f"{layout:5s}  glibc defaults {s:6.1f} ms/step   tuned {t:6.1f} ms/step   ratio {s / t:.2f}")
        print(f"       trials: defaults {stock}  tuned {tuned}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
