"""Bench: how long MultiWorkerMirroredStrategy's model.fit takes to return after its last epoch,
with TF's stock tf.data settings vs Sparkdeck's (workers/jobs/tfdata_teardown.py: autotuning off
for the per-device streams and the worker's own pipeline). One process, one TF node, no Spark;
the CNN template on 28x28 digits (5,750 rows), each trial in a fresh interpreter.

    .venv/bin/python bench/fit_tail.py [--trials 3] [--epochs 8]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, time
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.pop("TF_CONFIG", None)
sparkdeck, epochs = sys.argv[1] == "sparkdeck", int(sys.argv[2])
import numpy as np
from sklearn.datasets import load_digits
d = load_digits()
x = np.pad(np.kron(d.images.astype("float32"), np.ones((3, 3), "float32")), ((0, 0), (2, 2), (2, 2)))
x, y = np.concatenate([x] * 4)[:5750, ..., None], np.concatenate([d.target.astype("int64")] * 4)[:5750]
import tensorflow as tf, tf_keras
from workers.jobs import data, templates, tfdata_teardown
from workers.jobs.spec import Hyperparameters
tf.config.threading.set_intra_op_parallelism_threads(2)
strategy = tf.distribute.MultiWorkerMirroredStrategy()
if sparkdeck:
    tfdata_teardown.disable_device_autotune()
    make = lambda _c: data.shard_dataset(x, y, 64, 1)
else:  # the pipeline as it was: stock options but for auto-sharding, AUTOTUNE prefetch
    def make(_c):
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=1).repeat().batch(64)
        opts = tf.data.Options()
        opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return ds.prefetch(tf.data.AUTOTUNE).with_options(opts)
dataset = strategy.distribute_datasets_from_function(make)
with strategy.scope():
    model = templates.build("cnn", (28, 28, 1), 10, Hyperparameters(epochs=epochs, batch_size=64))
marks = {}
class Mark(tf_keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        marks["end"] = time.time()
t0 = time.time()
model.fit(dataset, epochs=epochs, steps_per_epoch=data.steps_per_epoch(len(x), 64), callbacks=[Mark()], verbose=0)
t1 = time.time()
print("FIT_TAIL=" + json.dumps({"fit": round(t1 - t0, 2), "tail": round(t1 - marks["end"], 2)}))
"""


def trial(variant: str, epochs: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, variant, str(epochs)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.split("FIT_TAIL=")[1].splitlines()[0])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=8)
    args = ap.parse_args()
    results = {"stock": [], "sparkdeck": []}
    for i in range(args.trials):
        for variant in results:  # interleaved: both see the same machine load
            r = trial(variant, args.epochs)
            results[variant].append(r)
            print(f"trial {i + 1} {variant:<9} fit {r['fit']:6.2f} s, returned {r['tail']:6.2f} s after the last epoch")
    for variant, rs in results.items():
        tails = [r["tail"] for r in rs]
        fits = [r["fit"] for r in rs]
        print(
            f"{variant:<9} tail mean {sum(tails) / len(tails):5.2f} s max {max(tails):5.2f} s; "
            f"fit mean {sum(fits) / len(fits):6.2f} s"
        )
    stock = sum(r["fit"] for r in results["stock"]) / args.trials
    ours = sum(r["fit"] for r in results["sparkdeck"]) / args.trials
    print(f"RATIO fit stock / sparkdeck = {stock / ours:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
