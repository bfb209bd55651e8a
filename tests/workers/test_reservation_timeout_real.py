"""A run that cannot start fails with the reason within the cluster's (short) reservation timeout
instead of hanging for TFoS's 600 s: a TFoS cluster of 2 nodes on an application with 1 executor
(what an executor lost at start, or executors ≠ cluster size, looks like), on a real loopback cluster."""

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.jobs.digits import spec_dict, write_digits_parquet
from workers.backends.base import SubmitRequest
from workers.backends.standalone import StandaloneBackend
from workers.jobs.package import build_jobs_zip
from workers.localcluster import LocalCluster, free_port, free_port_block

pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(shutil.which("java") is None and not os.environ.get("JAVA_HOME"), reason="needs Java"),
]

REPO = Path(__file__).resolve().parents[2]
RESERVATION_S = 15


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    lc = LocalCluster(
        tmp_path_factory.mktemp("one-worker"),
        master_port=free_port(),
        webui_port=free_port_block(2),
        workers=1,
        worker_cores=1,
        worker_memory="2g",
    )
    try:
        lc.start(timeout=90)
        yield lc
    finally:
        lc.stop()
    assert not lc.is_running()


def test_reservation_timeout_fails_the_run_with_the_reason(one_worker, tmp_path):
    digits = write_digits_parquet(tmp_path / "data")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    spec = spec_dict(
        digits,
        run_dir,
        app_name="sparkdeck-reservation",
        cluster_size=2,  # two TF nodes ...
        hyperparameters={"epochs": 1, "batch_size": 64, "steps_per_epoch": 2},
        timeouts={"reservation": RESERVATION_S, "feed": 30, "shutdown": 20},
    )
    (run_dir / "spec.json").write_text(json.dumps(spec))
    req = SubmitRequest(
        run_id="reservation",
        run_dir=run_dir,
        master_url=one_worker.master_url,
        app_name=spec["app_name"],
        entry=str(REPO / "workers" / "jobs" / "driver.py"),
        entry_args=["--spec", str(run_dir / "spec.json")],
        py_files=[build_jobs_zip(str(run_dir / "jobs.zip"))],
        num_executors=1,  # ... but one executor: the second reservation never comes
        executor_cores=1,
        executor_memory_mb=1024,
        python=sys.executable,
        bind_host="127.0.0.1",
    )
    backend = StandaloneBackend(master_url=one_worker.master_url, rest_url=one_worker.rest_url)
    t0 = time.monotonic()
    handle = backend.submit(req)
    while not (st := backend.status(handle)).is_final:
        assert time.monotonic() - t0 < 150, f"still {st.state} after 150 s"
        time.sleep(1)
    wall = time.monotonic() - t0
    assert st.state == "FAILED"
    assert st.reason.startswith(
        f"2 TF nodes did not all start within timeouts.reservation ({RESERVATION_S} s); "
        "the application has 1 executor(s): it needs 2 with one task slot each"
    ), st.reason
    # Driver start (~15-25 s on 2 busy cores) + the reservation timeout + teardown, not TFoS's 600 s.
    assert wall < 120, wall
    print(f"\nreservation timeout {RESERVATION_S} s: submit -> FAILED in {wall:.1f} s")
