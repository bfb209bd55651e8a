"""Executor log copying against real HTTP servers standing in for Spark workers, a driver and a master:
sources recorded as soon as seen, copying without the master, the final copy, the incomplete mark."""

import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.fake_http import QuietHandler, serve
from workers.backends import executor_logs
from workers.backends.executor_logs import LogCopier

APP = "app-20260101000000-0001"


class FakeSpark:
    """One HTTP server: a worker (/json/, /log/), or a driver (/api/v1/.../allexecutors), or a master (/json/)."""

    def __init__(self):
        self.executors = []  # a worker's running executors: [{"id": 0, "appid": APP}]
        self.logs = {}  # (exec id, stream) -> bytes
        self.driver_executors = None  # the driver's allexecutors answer, when this is a driver
        self.master_workers = None  # the master's worker list, when this is a master
        self.hang = 0.0  # seconds every request waits before answering
        self.requests = []
        fake = self

        class Handler(QuietHandler):
            def do_GET(self):
                url = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.requests.append(url.path)
                if fake.hang:
                    time.sleep(fake.hang)
                if url.path == "/json/" and fake.master_workers is not None:
                    self._send(json.dumps({"workers": fake.master_workers}))
                elif url.path == "/json/":
                    self._send(json.dumps({"executors": fake.executors, "finishedexecutors": []}))
                elif url.path == f"/api/v1/applications/{APP}/allexecutors" and fake.driver_executors is not None:
                    self._send(json.dumps(fake.driver_executors))
                elif url.path == "/log/" and (q["executorId"], q["logType"]) in fake.logs and q["appId"] == APP:
                    data = fake.logs[(q["executorId"], q["logType"])]
                    start = min(int(q["offset"]), len(data))
                    end = min(start + int(q["byteLength"]), len(data))
                    head = f"==== Bytes {start}-{end} of {len(data)} of /work/{APP}/{q['executorId']}/x ====\n"
                    self._send(head.encode() + data[start:end], "text/plain")
                elif url.path == "/log/":  # what a real worker answers for a log it does not have
                    path = f"/work/{q['appId']}/{q['executorId']}/"
                    self._send(f"==== Bytes 0-0 of 0 of {path}{q['logType']} ====\nError: invalid log directory {path}")
                else:
                    self._send("not found", "text/plain", 404)

        self.server, self.url = serve(Handler)
        self.host = f"127.0.0.1:{self.server.server_port}"

    def stop(self):
        """The worker goes away: its port refuses connections from now on."""
        self.server.shutdown()
        self.server.server_close()

    def log_urls(self, exec_id):
        base = f"{self.url}/logPage/?appId={APP}&executorId={exec_id}&logType="
        return {"stdout": base + "stdout", "stderr": base + "stderr"}


@pytest.fixture
def spark():
    made = []

    def make():
        made.append(FakeSpark())
        return made[-1]

    yield make
    for f in made:
        try:
            f.stop()
        except OSError:
            pass


def listing(*pairs):
    """The driver's allexecutors for (exec id, worker) pairs, with its own entry first."""
    return [{"id": "driver", "executorLogs": {}}] + [{"id": e, "executorLogs": w.log_urls(e)} for e, w in pairs]


def status_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "executors" / "status.json").read_text())


def test_a_worker_that_stops_answering_is_marked_with_the_reason(spark, tmp_path):
    w1, w2, driver = spark(), spark(), spark()
    w1.logs = {("0", "stderr"): b"zero 1\n", ("0", "stdout"): b""}
    w2.logs = {("1", "stderr"): b"one 1\n", ("1", "stdout"): b"out\n"}
    driver.driver_executors = listing(("0", w1), ("1", w2))
    copier = LogCopier(tmp_path, APP, driver_ui=driver.url, timeout=1)
    copier.collect()
    out = tmp_path / "executors"
    assert (out / "1/stderr").read_bytes() == b"one 1\n"

    w1.logs[("0", "stderr")] += b"zero 2\n"
    w2.logs[("1", "stderr")] += b"one 2 never copied\n"
    w2.stop()
    driver.stop()  # the application ended: the driver's UI is gone too
    t0 = time.monotonic()
    files = LogCopier(tmp_path, APP, driver_ui=driver.url, timeout=1).collect(final=True)
    assert time.monotonic() - t0 < 3
    assert {f"{p.parent.name}/{p.name}" for p in files} == {"0/stderr", "0/stdout", "1/stderr", "1/stdout"}
    assert (out / "0/stderr").read_bytes() == b"zero 1\nzero 2\n"
    status = status_of(tmp_path)
    assert status["0/stderr"] == {"complete": True, "copied": 14, "total": 14, "reason": "", "final": True}
    assert status["1/stderr"]["complete"] is False and status["1/stderr"]["copied"] == 6
    assert status["1/stderr"]["reason"] == f"worker {w2.host} not reachable (ConnectionError)"
    assert status["1/stdout"]["complete"] is False  # copied whole earlier, but never seen whole at the end

    # Whole after the end: not asked for again, and the mark stays.
    asked = w1.requests.count("/log/")
    LogCopier(tmp_path, APP, timeout=1).collect(final=True)
    assert w1.requests.count("/log/") == asked
    assert status_of(tmp_path)["0/stderr"]["complete"] is True


def test_a_hung_worker_costs_one_timeout_per_call(spark, tmp_path):
    w1, w2, driver = spark(), spark(), spark()
    w1.logs = {("0", "stderr"): b"a\n", ("0", "stdout"): b"b\n"}
    w2.logs = {("1", "stderr"): b"c\n", ("1", "stdout"): b"d\n", ("2", "stderr"): b"e\n", ("2", "stdout"): b""}
    driver.driver_executors = listing(("0", w1), ("1", w2), ("2", w2))
    w2.hang = 5  # accepts connections, never answers in time
    t0 = time.monotonic()
    LogCopier(tmp_path, APP, driver_ui=driver.url, timeout=0.5).collect(final=True)
    assert time.monotonic() - t0 < 2.5
    assert w2.requests == ["/log/"]  # one try for its four logs, then it is skipped for the rest of the call
    status = status_of(tmp_path)
    assert status["0/stderr"]["complete"] and status["0/stdout"]["complete"]
    for key in ("1/stderr", "1/stdout", "2/stderr", "2/stdout"):
        assert status[key]["complete"] is False
        assert status[key]["reason"] == f"worker {w2.host} not reachable (ReadTimeout)"


def test_copying_goes_on_without_the_master_and_the_driver(spark, tmp_path):
    worker, master = spark(), spark()
    master.master_workers = [{"webuiaddress": worker.url, "state": "ALIVE"}]
    worker.executors = [{"id": 3, "appid": APP}, {"id": 0, "appid": "app-other"}]
    worker.logs = {("3", "stderr"): b"first\n", ("3", "stdout"): b""}
    LogCopier(tmp_path, APP, rest_url=master.url, driver_ui=None, timeout=1).collect()  # no driver UI: ask the workers
    sources = json.loads((tmp_path / "executors/sources.json").read_text())
    assert sources == {"3": {"ui": worker.url, "app_id": APP}}

    # A restarted master knows no workers; the worker no longer lists the executor (it finished).
    master.master_workers = []
    worker.executors = []
    worker.logs[("3", "stderr")] += b"second\n"
    LogCopier(tmp_path, APP, rest_url=master.url, timeout=1).collect(final=True)
    assert (tmp_path / "executors/3/stderr").read_bytes() == b"first\nsecond\n"
    assert status_of(tmp_path)["3/stderr"]["complete"] is True


def test_a_log_the_worker_does_not_have_is_marked(spark, tmp_path):
    worker, driver = spark(), spark()
    worker.logs = {("0", "stderr"): b"x\n"}  # no stdout: the work dir lost it
    driver.driver_executors = listing(("0", worker))
    LogCopier(tmp_path, APP, driver_ui=driver.url, timeout=1).collect(final=True)
    status = status_of(tmp_path)
    assert status["0/stderr"]["complete"] is True
    assert status["0/stdout"] == {
        "complete": False,
        "copied": 0,
        "total": 0,
        "reason": f"worker {worker.host} has no such log (Error: invalid log directory /work/{APP}/0/)",
        "final": True,
    }


def test_the_final_copy_is_bounded_and_says_so(spark, tmp_path, monkeypatch):
    monkeypatch.setattr(executor_logs, "LOG_CHUNK", 10)
    monkeypatch.setattr(executor_logs, "FINAL_MAX_CHUNKS", 3)
    monkeypatch.setattr(executor_logs, "LIVE_MAX_CHUNKS", 1)
    worker, driver = spark(), spark()
    worker.logs = {("0", "stderr"): bytes(range(65, 65 + 45)), ("0", "stdout"): b""}
    driver.driver_executors = listing(("0", worker))
    copier = LogCopier(tmp_path, APP, driver_ui=driver.url, timeout=1)
    copier.collect()
    entry = status_of(tmp_path)["0/stderr"]
    assert (entry["copied"], entry["complete"], entry["reason"]) == (10, False, "")  # behind, nothing wrong
    copier.collect(final=True)
    entry = status_of(tmp_path)["0/stderr"]
    assert (entry["copied"], entry["complete"]) == (40, False)
    assert entry["reason"] == "copied 40 of 45 bytes: the rest is over the copy limit of one call"
    copier.collect(final=True)  # a later call goes on from there
    assert status_of(tmp_path)["0/stderr"]["complete"] is True
    assert (tmp_path / "executors/0/stderr").read_bytes() == worker.logs[("0", "stderr")]


def test_follow_reads_sources_written_before_app_ids_were_recorded(spark, tmp_path):
    worker = spark()
    worker.logs = {("1", "stderr"): b"old run\n"}
    out = tmp_path / "executors"
    out.mkdir()
    (out / "sources.json").write_text(json.dumps({"1": worker.url}))
    LogCopier(tmp_path, APP, timeout=1).follow("1", "stderr")
    assert (out / "1/stderr").read_bytes() == b"old run\n"
    assert json.loads((out / "offsets.json").read_text()) == {"1/stderr": 8}
