"""A tiny pure-pyspark app (no TensorFlow) that follows the driver contract in docs/architecture.md.

tiny_app.py <run_dir> [--sleep SECONDS] [--fail MESSAGE]
"""

import argparse
import json
import os
import time
from pathlib import Path

from pyspark import SparkContext


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir", type=Path)
    p.add_argument("--sleep", type=float, default=0)
    p.add_argument("--fail")
    a = p.parse_args()
    sc = SparkContext()
    print(f"SPARKDECK_APP_ID={sc.applicationId}", flush=True)
    print(f"SPARKDECK_UI_URL={sc.uiWebUrl}", flush=True)
    if a.fail:
        print(f"SPARKDECK_ERROR={a.fail}", flush=True)
        raise SystemExit(1)
    # print() in the map function lands in each executor's stdout; the Python worker's own log
    # lines in its stderr.
    total = sc.parallelize(range(100), 2).map(lambda x: print(x) or x).sum()
    if a.sleep:
        sc.parallelize(range(2), 2).foreach(lambda _: time.sleep(a.sleep))
    (a.run_dir / "result.json").write_text(json.dumps({"sum": total, "pid": os.getpid()}))
    sc.stop()


if __name__ == "__main__":
    main()
