"""Early stopping on the executors: the epoch asker against a real HTTP endpoint, and two real TF
nodes (MultiWorkerMirroredStrategy over loopback, no Spark) that both leave fit() after the epoch
the endpoint says "stop" at, without hanging the all-reduce."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_http import QuietHandler, serve
from tests.jobs.digits import spec_dict
from workers.jobs import prune

REPO = Path(__file__).resolve().parents[2]


class Endpoint:
    """A tiny epoch endpoint: answers from ``script`` (a list of (status, body) consumed in order, then
    ``stop_at``'s rule), and records every request."""

    def __init__(self, stop_at=None):
        self.stop_at = stop_at
        self.script = []
        self.requests = []  # (headers, body)
        outer = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                outer.requests.append((dict(self.headers), body))
                if outer.script:
                    status, answer = outer.script.pop(0)
                else:
                    stop = outer.stop_at is not None and body["epoch"] >= outer.stop_at
                    status, answer = 200, {"decision": "stop" if stop else "continue", "epoch": body["epoch"]}
                self._send(answer if isinstance(answer, bytes) else json.dumps(answer), code=status)

        self.server, base = serve(Handler)
        self.url = f"{base}/ingest/runs/1/epoch"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    e = Endpoint(stop_at=2)
    yield e
    e.close()


def test_the_decision_comes_back_with_the_token_and_the_epoch(endpoint):
    asker = prune.EpochAsker(endpoint.url, "tok", executor="1")
    assert asker.ask(1, 0.5) == "continue"
    assert asker.ask(2, 0.4) == "stop"
    headers, body = endpoint.requests[0]
    assert headers["Authorization"] == "Bearer tok"
    assert body == {"epoch": 1, "value": 0.5, "diverged": False, "executor": "1"}


def test_a_diverged_value_goes_as_null_with_diverged_set(endpoint):
    assert prune.EpochAsker(endpoint.url).ask(1, float("nan")) == "continue"
    assert endpoint.requests[0][1]["value"] is None and endpoint.requests[0][1]["diverged"] is True


def test_it_asks_again_through_a_restart_then_takes_the_answer(endpoint):
    endpoint.script = [(503, {"error": "starting"}), (502, b"bad gateway")]
    slept = []
    assert prune.EpochAsker(endpoint.url, wait_seconds=60).ask(3, 0.1, sleep=slept.append) == "stop"
    assert len(endpoint.requests) == 3 and slept == [0.5, 1.0]


@pytest.mark.parametrize(
    "status, answer", [(403, {"error": "unknown run or bad token"}), (400, {"error": "x"}), (200, {"nope": 1})]
)
def test_a_refusal_or_an_odd_answer_trains_on_without_asking_again(endpoint, status, answer, capsys):
    endpoint.script = [(status, answer)]
    asker = prune.EpochAsker(endpoint.url, wait_seconds=60)
    assert asker.ask(2, 0.1, sleep=lambda s: pytest.fail("must not retry")) == "continue"
    assert asker.asked == 1 and "training on" in capsys.readouterr().err


def test_an_unreachable_web_trains_on_after_wait_seconds(capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    asker = prune.EpochAsker(f"http://127.0.0.1:{port}/ingest/runs/1/epoch", wait_seconds=20, timeout=1)
    assert asker.ask(1, 0.3, sleep=sleep, clock=lambda: now[0]) == "continue"
    # 0.5 + 1 + 2 + 4 + 8 = 15.5 s asked; the next wait (10 s) would pass the 20 s.
    assert asker.asked == 6 and now[0] == 15.5
    assert "no answer from" in capsys.readouterr().err


CHILD = r"""
import json, os, sys
from workers.jobs import train

class Ctx:
    def __init__(self, index):
        self.executor_id, self.task_index = index, 0
        self.job_name = "chief" if index == 0 else "worker"

spec = json.load(open(sys.argv[1]))
train.main_fun({"spec": spec}, Ctx(int(sys.argv[2])))
print("CHILD_DONE")
"""


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_tf_nodes_both_stop_after_the_epoch_the_pruner_names(tmp_path, digits, endpoint, sink):
    spec = spec_dict(
        digits,
        tmp_path / "art",
        input_mode="tensorflow",
        hyperparameters={"epochs": 5, "batch_size": 64, "validation_split": 0.1, "filters": 4, "dense_units": 16},
        metrics={
            "url": sink.url,
            "token": "tok",
            "every_steps": 10,
            "prune": {"url": endpoint.url, "objective": "val_accuracy", "wait_seconds": 30},
        },
        bind_host=None,
    )
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    chief, worker = (f"127.0.0.1:{p}" for p in _free_ports(2))
    procs = []
    for index, job in enumerate(("chief", "worker")):
        tf_config = {"cluster": {"chief": [chief], "worker": [worker]}, "task": {"type": job, "index": 0}}
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONPATH": str(REPO), "TF_CONFIG": json.dumps(tf_config)}
        env.pop("SPARKDECK_BIND_HOST", None)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(path), str(index)],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=300))  # a node left in the all-reduce would hang here
    finally:
        for p in procs:
            p.kill()
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and "CHILD_DONE" in out, err[-3000:]
        assert "the sweep's pruner stopped this trial" in err
    stats = json.loads((tmp_path / "art" / "train_stats.json").read_text())
    assert stats["pruned_at_epoch"] == 2 and stats["epochs_run"] == 2
    assert len(stats["history"]["val_accuracy"]) == 2
    asked = sorted((b["executor"], b["epoch"]) for _, b in endpoint.requests)
    assert asked == [("0", 1), ("0", 2), ("1", 1), ("1", 2)]  # every node asks; none asks about epoch 3
    # The same all-reduced objective on both nodes.
    by_epoch = {}
    for _, b in endpoint.requests:
        by_epoch.setdefault(b["epoch"], set()).add(round(b["value"], 6))
    assert all(len(v) == 1 for v in by_epoch.values())
    # The epoch's metric points were queued before the question: the chief's val_accuracy is there.
    assert [p["epoch"] for p in sink.points("0") if p["name"] == "val_accuracy"] == [1, 2]
    assert (tmp_path / "art" / "model").exists()
