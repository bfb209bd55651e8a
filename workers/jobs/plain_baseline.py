"""The same model, data, epochs and batch size in one plain TF process (no Spark, no TFoS).

``python -m workers.jobs.plain_baseline --spec spec.json`` prints one line
``PLAIN_BASELINE={"wall_seconds": ..., "fit_seconds": ..., "test_accuracy": ...}`` so the bench
can compare a Sparkdeck run with what a single process does.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def run(spec) -> dict:
    t0 = time.time()
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    from workers.jobs import data, templates
    from workers.jobs.spec import parse_spec

    spec = parse_spec(spec)
    import tensorflow as tf
    import tf_keras

    hp, shape = spec.hyperparameters, spec.dataset.shape
    tf_keras.utils.set_random_seed(spec.seed)
    x, y, _ = data.read_arrays(spec.dataset.train, shape)
    xt, yt, _ = data.read_arrays(spec.dataset.test, shape)
    model = templates.build(spec.template, shape, spec.dataset.num_classes, hp, base=spec.base)
    # Same step count as a distributed run: one pass over the data per epoch at the global batch.
    steps = int(hp.get("steps_per_epoch", 0) or 0) or data.steps_per_epoch(len(x), hp.batch_size)
    ds = data.shard_dataset(x, y, hp.batch_size, spec.seed)
    t1 = time.time()
    model.fit(ds, epochs=hp.epochs, steps_per_epoch=steps, verbose=0)
    fit_seconds = time.time() - t1
    probs = model.predict(tf.constant(xt), batch_size=256, verbose=0)
    accuracy = float((probs.argmax(axis=1) == yt).mean()) if len(yt) else None
    return {
        "wall_seconds": round(time.time() - t0, 3),
        "fit_seconds": round(fit_seconds, 3),
        "test_accuracy": accuracy,
        "train_rows": len(x),
        "test_rows": len(xt),
        "epochs": hp.epochs,
        "batch_size": hp.batch_size,
        "steps_per_epoch": steps,
    }


def main(argv=None) -> int:
    t0 = time.time()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True)
    args = parser.parse_args(argv)
    from workers.jobs.spec import load_spec

    result = run(load_spec(args.spec))
    result["process_seconds"] = round(time.time() - t0, 3)  # includes the TensorFlow import
    print("PLAIN_BASELINE=" + json.dumps(result, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
