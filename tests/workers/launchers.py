"""A real launcher standing in for a driver, for the backend tests."""

import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def start_launcher(run_dir, seconds=60):
    """workers.launcher running `sleep`, standing in for spark-submit; returns once its child runs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.launcher", "--run-dir", str(run_dir), "--", "sleep", str(seconds)],
        cwd=REPO,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while "child_pid" not in _info(run_dir):  # launcher.json is written first without it
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc


def _info(run_dir) -> dict:
    try:
        return json.loads((Path(run_dir) / "launcher.json").read_text())
    except (OSError, ValueError):
        return {}
