"""Reading the chief's TensorBoard event files (workers/jobs/tbevents.py) back, for the job tests."""

import json
import os
import subprocess
import sys
from pathlib import Path


def tensorboard_scalars(artifact_dir) -> dict:
    """{tag: [[step, value], ...]} from the chief's event files under <artifact_dir>/tensorboard/train,
    read with TensorFlow in a child process (this one stays free of TensorFlow, as the driver tests need)."""
    files = sorted((Path(artifact_dir) / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert files and all(f.stat().st_size > 0 for f in files), files
    proc = subprocess.run(
        [sys.executable, "-c", READ_EVENTS, *map(str, files)],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


READ_EVENTS = r"""
import json, sys
import tensorflow as tf
out = {}
for path in sys.argv[1:]:
    for event in tf.compat.v1.train.summary_iterator(path):
        for v in event.summary.value:
            assert v.metadata.plugin_data.plugin_name == "scalars", v.metadata
            out.setdefault(v.tag, []).append([event.step, float(tf.make_ndarray(v.tensor))])
print(json.dumps(out))
"""
