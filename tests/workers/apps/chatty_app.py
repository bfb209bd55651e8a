"""A pure-pyspark app (no TensorFlow) whose executor tasks print lines steadily for a while.

chatty_app.py <run_dir> [--seconds S] [--every E]: 2 tasks, each prints one line to stdout and one to
stderr every E seconds for S seconds; follows the driver contract in docs/architecture.md.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from pyspark import SparkContext


def chatter(seconds: float, every: float):
    def task(index, _rows):
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < seconds:
            print(f"task {index} line {n:05d} at {time.monotonic() - t0:8.3f} s " + "x" * 40, flush=True)
            print(f"task {index} err {n:05d}", file=sys.stderr, flush=True)
            n += 1
            time.sleep(every)
        yield n

    return task


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir", type=Path)
    p.add_argument("--seconds", type=float, default=45)
    p.add_argument("--every", type=float, default=0.1)
    a = p.parse_args()
    sc = SparkContext()
    print(f"SPARKDECK_APP_ID={sc.applicationId}", flush=True)
    print(f"SPARKDECK_UI_URL={sc.uiWebUrl}", flush=True)
    lines = sc.parallelize(range(2), 2).mapPartitionsWithIndex(chatter(a.seconds, a.every)).collect()
    (a.run_dir / "result.json").write_text(json.dumps({"lines": lines}))
    sc.stop()


if __name__ == "__main__":
    main()
