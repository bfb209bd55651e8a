"""The per-device tf.data streams of MultiWorkerMirroredStrategy run without autotuning once
tfdata_teardown's hook is in (see the module for the slow teardown it avoids). In a subprocess:
the hook changes a module-level function of a fresh TensorFlow."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os
os.environ.pop("TF_CONFIG", None)
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf
from tensorflow.python.data.ops import multi_device_iterator_ops as mdi
from workers.jobs import data, tfdata_teardown

def device_autotune():
    ds = data.shard_dataset([[1.0], [2.0], [3.0]], [0, 1, 0], 2, 0)
    it = mdi.OwnedMultiDeviceIterator(ds, ["/cpu:0"])
    first = it.get_next()[0][0].numpy().shape
    return it._device_iterators[0]._dataset.options().autotune.enabled, list(first)

before = device_autotune()
applied = tfdata_teardown.disable_device_autotune()
again = tfdata_teardown.disable_device_autotune()
after = device_autotune()
strategy = tf.distribute.MultiWorkerMirroredStrategy()
dist = strategy.distribute_datasets_from_function(lambda _c: data.shard_dataset([[1.0], [2.0]], [0, 1], 2, 0))
batch = next(iter(dist))
print("CHILD=" + json.dumps({
    "before": before, "applied": applied, "again": again, "after": after,
    "own": data.shard_dataset([[1.0]], [0], 1, 0).options().autotune.enabled,
    "batch": sorted(float(v) for v in batch[0].numpy().reshape(-1)),
}))
"""


def test_device_streams_lose_autotune_and_still_deliver_batches():
    out = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    line = [x for x in out.stdout.splitlines() if x.startswith("CHILD=")]
    assert line, out.stderr[-3000:]
    got = json.loads(line[0][len("CHILD=") :])
    assert got["before"][0] is not False  # TF's default: the slow teardown this works around
    assert got["applied"] is True and got["again"] is True
    assert got["after"] == [False, [2, 1]]  # a batch of 2 rows of 1 value
    assert got["own"] is False  # the worker's own pipeline is built without autotuning too
    assert got["batch"] == [1.0, 2.0]  # a distributed batch still arrives whole
