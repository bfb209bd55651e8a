"""scikit-learn's digits (8x8x1, 1,797 images) in the dataset Parquet layout of
docs/architecture.md: train.parquet / test.parquet / meta.json, 80/20 split, seed 42.
Reusable by any test: ``write_digits_parquet(dest_dir)``."""

from __future__ import annotations

import json
import os

import numpy as np


def write_digits_parquet(dest_dir, test_fraction: float = 0.2, seed: int = 42) -> dict:
    """Write the dataset files into dest_dir; return meta.json's content plus absolute paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    scale = 16.0  # pixel values are 0..16
    x = (digits.data / scale).astype(np.float32)
    y = digits.target.astype(np.int64)
    ids = np.arange(len(y), dtype=np.int64)  # position in the original data
    x_tr, x_te, y_tr, y_te, id_tr, id_te = train_test_split(x, y, ids, test_size=test_fraction, random_state=seed)
    os.makedirs(dest_dir, exist_ok=True)
    for name, xs, ys, rid in (("train", x_tr, y_tr, id_tr), ("test", x_te, y_te, id_te)):
        features = pa.FixedSizeListArray.from_arrays(pa.array(xs.reshape(-1)), xs.shape[1])
        table = pa.table(
            {
                "row_id": pa.array(rid, pa.int64()),
                "label": pa.array(ys, pa.int64()),
                "features": features.cast(pa.list_(pa.float32())),
            }
        )
        pq.write_table(table, os.path.join(dest_dir, f"{name}.parquet"), row_group_size=1024)
    meta = {
        "shape": [8, 8, 1],
        "num_classes": 10,
        "class_names": [str(i) for i in range(10)],
        "train_rows": int(len(y_tr)),
        "test_rows": int(len(y_te)),
        "scale": scale,
        "split": {"test_fraction": test_fraction, "seed": seed},
    }
    with open(os.path.join(dest_dir, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    return {
        **meta,
        "train": os.path.abspath(os.path.join(dest_dir, "train.parquet")),
        "test": os.path.abspath(os.path.join(dest_dir, "test.parquet")),
    }


def spec_dict(dataset: dict, artifact_dir, **overrides) -> dict:
    """A run spec (docs/architecture.md) for the digits dataset written above."""
    spec = {
        "run_id": 1,
        "app_name": "sparkdeck-test-digits",
        "template": "cnn",
        "hyperparameters": {"epochs": 3, "batch_size": 32, "learning_rate": 0.001, "dropout": 0.4},
        "input_mode": "tensorflow",
        "cluster_size": 2,
        "dataset": {
            "train": dataset["train"],
            "test": dataset["test"],
            "shape": dataset["shape"],
            "num_classes": dataset["num_classes"],
            "class_names": dataset["class_names"],
        },
        "artifact_dir": os.path.abspath(str(artifact_dir)),
        "metrics": {"url": None, "token": "", "every_steps": 5},
        "timeouts": {"reservation": 120, "feed": 120, "shutdown": 60},
        "bind_host": "127.0.0.1",
        "seed": 42,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec
