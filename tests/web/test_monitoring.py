"""webapp/monitoring: executor samples from Spark's REST API (against a real HTTP server on 127.0.0.1
serving a Spark 4.3 answer recorded from a loopback cluster), thinning, chart series, progress/ETA,
the TensorBoard download and the log search; team scoping of every view. The real-cluster proof of
sampling is tests/workers/test_executor_sampling_real.py."""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from webapp.datasets.models import Dataset
from webapp.monitoring import logsearch, services
from webapp.monitoring.models import ExecutorSample
from webapp.runs.models import MetricPoint, Run

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]
RECORDING = Path(__file__).parent / "recordings" / "spark_executors.json"
APP_ID = "app-20261124143842-0000"


@pytest.fixture
def dataset(alice):
    return Dataset.objects.create(
        team=alice[1], name="d", source_format="npz", original_name="d.npz", status="READY", shape=[8, 8, 1]
    )


@pytest.fixture
def make_run(alice, cluster, dataset):
    def make(status=Run.Status.RUNNING, **fields):
        user, team = alice
        fields.setdefault("hyperparameters", {"epochs": 10})
        return Run.objects.create(
            team=team, created_by=user, dataset=dataset, template="cnn", cluster=cluster, status=status, **fields
        )

    return make


@pytest.fixture
def spark_ui():
    """A stand-in Spark UI on 127.0.0.1: /api/v1/applications/<APP_ID>/executors answers the
    recording (or .body, when a test sets it); every request path is kept in .paths."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            ui.paths.append(self.path)
            if self.path != f"/api/v1/applications/{APP_ID}/executors":
                self.send_error(404)
                return
            body = ui.body if ui.body is not None else RECORDING.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ui = type("UI", (), {})()
    ui.paths, ui.body = [], None
    ui.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ui
    server.shutdown()
    server.server_close()


def closed_port_url():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


# --- sampling ------------------------------------------------------------------------------------


def test_sample_stores_one_row_per_executor_from_the_rest_api(make_run, spark_ui):
    run = make_run(spark_ui_url=spark_ui.url, spark_app_id=APP_ID)
    assert services.sample(run) == 3
    assert spark_ui.paths == [f"/api/v1/applications/{APP_ID}/executors"]
    rows = {s.executor_id: s for s in ExecutorSample.objects.filter(run=run)}
    assert set(rows) == {"driver", "0", "1"}
    assert rows["driver"].is_driver and not rows["0"].is_driver
    e0, e1 = rows["0"], rows["1"]
    # executor 0 is mid-task (a TFoS node): task time not counted yet, heartbeat metrics live
    assert (e0.active_tasks, e0.total_duration_ms, e0.total_cores, e0.max_tasks) == (1, 0, 1, 1)
    assert (e0.jvm_gc_time_ms, e0.peak_jvm_heap, e0.peak_jvm_offheap) == (374, 83306496, 63938888)
    assert e0.raw["ProcessTreePythonRSSMemory"] == 317743104 and e0.raw["hostPort"] == "127.0.0.1:39711"
    assert (e1.total_duration_ms, e1.total_gc_time_ms, e1.total_tasks, e1.failed_tasks) == (14292, 19, 1, 0)
    assert (e1.memory_used, e1.max_memory) == (3980, 133378867)


def test_an_unreachable_ui_gives_no_sample_and_no_exception(make_run):
    run = make_run(spark_ui_url=closed_port_url(), spark_app_id=APP_ID)
    assert services.sample(run) == 0
    assert not ExecutorSample.objects.exists()


@pytest.mark.parametrize("body", [b"not json", b'{"id": "0"}', b"[1, 2]"])
def test_a_garbled_answer_gives_no_sample(make_run, spark_ui, body):
    spark_ui.body = body
    run = make_run(spark_ui_url=spark_ui.url, spark_app_id=APP_ID)
    assert services.sample(run) == 0 and spark_ui.paths  # asked, and refused the answer


@pytest.mark.parametrize(
    "ui,app",
    [
        ("file:///etc/passwd", APP_ID),
        ("ftp://127.0.0.1:21", APP_ID),
        ("http://", APP_ID),
        ("http://user:pw@127.0.0.1:4040", APP_ID),
        ("{ui}", "../../../etc"),
        ("{ui}", "app-1/../../x"),
        ("{ui}", ""),
        ("", APP_ID),
    ],
)
def test_only_http_urls_and_spark_app_ids_are_fetched(make_run, spark_ui, ui, app):
    run = make_run(spark_ui_url=ui.format(ui=spark_ui.url), spark_app_id=app)
    assert services.executors_url(run.spark_ui_url, run.spark_app_id) is None
    assert services.sample(run) == 0 and spark_ui.paths == []


def test_the_periodic_task_samples_running_runs_only_and_is_idempotent(make_run, spark_ui, settings, eager_tasks):
    from webapp.monitoring.tasks import sample_executors

    settings.SPARKDECK_SAMPLE_SECONDS = 60  # a second delivery within 30 s adds nothing
    live = make_run(spark_ui_url=spark_ui.url, spark_app_id=APP_ID)
    gone = make_run(spark_ui_url=closed_port_url(), spark_app_id=APP_ID)
    done = make_run(status=Run.Status.SUCCEEDED, spark_ui_url=spark_ui.url, spark_app_id=APP_ID)
    assert sample_executors.delay().get() == 3
    assert sample_executors.delay().get() == 0
    assert ExecutorSample.objects.filter(run=live).count() == 3
    assert not ExecutorSample.objects.filter(run__in=[gone, done]).exists()
    assert len(spark_ui.paths) == 1


def test_the_sampler_is_on_the_beat_schedule(settings):
    from workers.celery import app

    app.loader.import_default_modules()
    app.finalize()
    tasks = {e["task"]: e["schedule"] for e in app.conf.beat_schedule.values()}
    assert tasks["webapp.monitoring.tasks.sample_executors"] == float(settings.SPARKDECK_SAMPLE_SECONDS)


@pytest.mark.parametrize("value,ok", [("abc", False), ("0", False), ("1.5", False), (" 3 ", True)])
def test_the_sample_interval_is_parsed_strictly(value, ok):
    code = "from django.conf import settings as s; print(s.SPARKDECK_SAMPLE_SECONDS)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings", "DJANGO_SECRET_KEY": "t"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**env, "SPARKDECK_SAMPLE_SECONDS": value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if ok:
        assert proc.returncode == 0 and proc.stdout.split() == ["3"], proc.stderr
    else:
        assert proc.returncode != 0 and "ImproperlyConfigured" in proc.stderr


# --- thinning and series ---------------------------------------------------------------------------


def add_samples(run, executor, start, count, every_s, **fields):
    ExecutorSample.objects.bulk_create(
        [
            ExecutorSample(run=run, executor_id=executor, sampled_at=start + timedelta(seconds=i * every_s), **fields)
            for i in range(count)
        ]
    )


def test_thinning_keeps_the_last_ten_minutes_and_a_bounded_even_spread_before(make_run):
    run = make_run()
    now = timezone.now()
    start = now - timedelta(hours=2)
    add_samples(run, "0", start, 1441, 5)  # 2 h every 5 s, the last one at `now`
    add_samples(run, "1", now - timedelta(minutes=20), 10, 5)  # few old ones: left alone
    deleted = services.thin(run, now)
    cut = now - timedelta(seconds=services.KEEP_ALL_S)
    kept = list(ExecutorSample.objects.filter(run=run, executor_id="0").order_by("sampled_at"))
    old = [s.sampled_at for s in kept if s.sampled_at < cut]
    recent = [s for s in kept if s.sampled_at >= cut]
    assert len(recent) == 121  # every sample of the last 10 minutes
    assert len(old) == services.MAX_OLD_PER_EXECUTOR
    assert deleted == 1441 - 121 - services.MAX_OLD_PER_EXECUTOR
    assert old[0] == start  # the first sample stays: the charts start where the run did
    width = (cut - start).total_seconds() / services.MAX_OLD_PER_EXECUTOR
    gaps = [(b - a).total_seconds() for a, b in zip(old, old[1:], strict=False)]
    assert max(gaps) <= 2 * width
    assert ExecutorSample.objects.filter(run=run, executor_id="1").count() == 10
    assert services.thin(run, now) == 0  # idempotent


def test_sampling_thins_as_it_goes(make_run, spark_ui, monkeypatch):
    monkeypatch.setattr(services, "MAX_OLD_PER_EXECUTOR", 5)
    run = make_run(spark_ui_url=spark_ui.url, spark_app_id=APP_ID)
    now = timezone.now()
    add_samples(run, "0", now - timedelta(hours=1), 40, 90)  # 34 before the last 10 minutes, 6 in them
    services.sample(run, now=now)
    samples = ExecutorSample.objects.filter(run=run, executor_id="0")
    assert samples.filter(sampled_at__lt=now - timedelta(minutes=10)).count() == 5
    assert samples.filter(sampled_at__gte=now - timedelta(minutes=10)).count() == 6 + 1  # and the new one


def test_series_computes_cores_busy_memory_and_gc_share(make_run):
    run = make_run()
    t0 = timezone.now() - timedelta(seconds=20)
    common = {"total_cores": 2, "max_tasks": 2, "max_memory": 100 * 2**20}
    rows = [
        # a long task running (nothing finished yet), GC from heartbeats
        dict(executor_id="0", sampled_at=t0, active_tasks=1, total_duration_ms=0, jvm_gc_time_ms=100),
        dict(executor_id="0", sampled_at=t0 + timedelta(seconds=5), active_tasks=1, jvm_gc_time_ms=600),
        # short tasks finished in between: 8 s of task time in 5 s -> 1.6 cores
        dict(executor_id="0", sampled_at=t0 + timedelta(seconds=10), active_tasks=0, total_duration_ms=8000),
        # more task time than the cores allow (a long task ending): capped at the executor's 2 cores
        dict(executor_id="0", sampled_at=t0 + timedelta(seconds=15), active_tasks=0, total_duration_ms=60000),
        dict(executor_id="driver", is_driver=True, sampled_at=t0 + timedelta(seconds=5), peak_jvm_heap=300 * 2**20),
        dict(executor_id="driver", is_driver=True, sampled_at=t0 + timedelta(seconds=10), peak_jvm_heap=310 * 2**20),
    ]
    ExecutorSample.objects.bulk_create(
        [
            ExecutorSample(run=run, memory_used=10 * 2**20, raw={"ProcessTreePythonRSSMemory": 2**30}, **common, **r)
            for r in rows
        ]  # fmt: skip
    )
    data = services.series(run)
    assert data["origin"] == pytest.approx(t0.timestamp())
    e0, drv = data["executors"]
    assert (e0["id"], drv["id"], drv["is_driver"]) == ("0", "driver", True)
    assert e0["t"] == [0, 5, 10, 15]
    assert e0["cores_busy"] == [None, 1.0, 1.6, 2.0]
    assert e0["gc_share"] == [None, 0.1, None, None]  # 500 ms of GC in 5 s; none sent after
    assert e0["storage_mb"] == [10.0] * 4 and e0["python_rss_mb"] == [1024.0] * 4 and e0["storage_max_mb"] == 100.0
    assert drv["cores_busy"] == [None, None] and drv["heap_peak_mb"] == [300.0, 310.0] and drv["t"] == [5, 10]
    assert e0["latest"]["task_time_s"] == 60.0


# --- progress and ETA ----------------------------------------------------------------------------

ETA_CASES = [
    # (samples [[step, wall]], epochs, steps_per_epoch) -> expected fields
    ([[10, 100.0], [20, 110.0], [30, 120.0]], 2, 50, {"rate": 1.0, "eta_s": 70.0, "epoch": 1, "step_in_epoch": 30}),
    # only the last 30 s count: a slow start (1 step/s) does not drag the rate of the last 30 s (5 steps/s)
    ([[0, 0.0 + 1000], [50, 50.0 + 1000], [100, 60.0 + 1000], [200, 80.0 + 1000]], 3, 100,
     {"rate": 5.0, "eta_s": 20.0, "epoch": 3, "step_in_epoch": 0, "fraction": 2 / 3}),
    # two samples further apart than the window: the two newest still give a rate
    ([[100, 1000.0], [160, 1060.0]], 1, 200, {"rate": 1.0, "eta_s": 40.0, "epoch": 1, "step_in_epoch": 160}),
    # finished
    ([[90, 1000.0], [100, 1010.0]], 2, 50, {"eta_s": 0.0, "epoch": 2, "step_in_epoch": 50, "fraction": 1.0}),
    # steps per epoch unknown: the step and rate, no ETA
    ([[5, 1000.0], [10, 1005.0]], 4, None, {"step": 10, "rate": 1.0, "eta_s": None, "epoch": None}),
    # no timestamps: no rate, no ETA
    ([[5, 0.0], [10, 0.0]], 4, 20, {"step": 10, "rate": None, "eta_s": None, "epoch": 1}),
    ([], 4, 20, {"step": None, "eta_s": None}),
]  # fmt: skip


@pytest.mark.parametrize("samples,epochs,spe,expected", ETA_CASES)
def test_estimate(samples, epochs, spe, expected):
    est = vars(services.estimate(samples, epochs, spe))
    for key, value in expected.items():
        assert est[key] == (pytest.approx(value) if isinstance(value, float) else value), key


@pytest.mark.skipif(shutil.which("node") is None, reason="node runs static/js/progress.js")
def test_the_page_computes_the_same_estimate_as_the_server():
    script = (
        f"const P = require({json.dumps(str(REPO / 'static/js/progress.js'))});"
        f"const cases = {json.dumps([c[:3] for c in ETA_CASES])};"
        "console.log(JSON.stringify(cases.map(([s, e, k]) => P.estimate(s, e, k))));"
        "console.log(P.describe(P.estimate([[120, 1000], [130, 1010]], 10, 300)));"
    )
    proc = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    js, text = proc.stdout.strip().splitlines()
    for (samples, epochs, spe, _), got in zip(ETA_CASES, json.loads(js), strict=True):
        want = vars(services.estimate(samples, epochs, spe))
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == (pytest.approx(want[key]) if isinstance(want[key], float) else want[key]), key
    assert text == "epoch 1 of 10 · step 130/300 · ETA 47 min 50 s"


def points(run, executor, rows, name="loss"):
    MetricPoint.objects.bulk_create(
        [
            MetricPoint(run=run, name=name, executor=executor, step=s, epoch=e, value=0.5, wall_time=t)
            for s, e, t in rows
        ]
    )


def test_eta_follows_the_chief_and_its_posted_steps_per_epoch(make_run):
    run = make_run(hyperparameters={"epochs": 4})
    points(run, "0", [(0, 1, 0.0)], name="steps_per_epoch")
    MetricPoint.objects.filter(run=run, name="steps_per_epoch").update(value=50)
    points(run, "0", [(s, 1 + s // 50, 1000.0 + s) for s in range(5, 121, 5)])  # 1 step/s
    points(run, "1", [(s, 1 + s // 50, 2000.0 + s / 10) for s in range(5, 200, 5)])  # another executor: ignored
    e = services.eta(run)
    assert (e["executor"], e["steps_per_epoch"], e["step"], e["epoch"], e["step_in_epoch"]) == ("0", 50, 120, 3, 20)
    assert e["rate"] == pytest.approx(1.0) and e["eta_s"] == pytest.approx(80.0)
    assert e["window"][0] == [90, 1090.0] and e["window"][-1] == [120, 1120.0]  # the last 30 s


def test_eta_without_a_posted_value_takes_steps_per_epoch_from_an_epoch_end(make_run):
    run = make_run(hyperparameters={"epochs": 3})
    points(run, "1", [(s, 1, 500.0 + s / 2) for s in range(5, 41, 5)])
    points(run, "1", [(40, 1, 520.0)], name="epoch_loss")  # epoch 1 ended after 40 batches
    e = services.eta(run)
    assert (e["executor"], e["steps_per_epoch"], e["epoch"], e["step_in_epoch"]) == ("1", 40, 2, 0)
    assert e["rate"] == pytest.approx(2.0) and e["eta_s"] == pytest.approx(40.0)


def test_eta_of_a_run_without_points(make_run):
    e = services.eta(make_run())
    assert e["step"] is None and e["eta_s"] is None and e["window"] == [] and e["epochs"] == 10


def test_a_run_never_submitted_reads_no_metric_points(make_run, client_a):
    """No executor has run for it, so its page and live.json skip the points' queries (the planted
    point stands for anything they could find)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    queued = make_run(status=Run.Status.QUEUED)
    points(queued, "0", [(5, 1, 1000.0)])
    for url in (reverse("run_detail", args=[queued.pk]), reverse("run_live", args=[queued.pk])):
        with CaptureQueriesContext(connection) as ctx:
            resp = client_a.get(url, {"since": 0})
        assert resp.status_code == 200
        assert not [q["sql"] for q in ctx.captured_queries if "runs_metricpoint" in q["sql"]], url
    assert client_a.get(reverse("run_live", args=[queued.pk]), {"since": 0}).json()["points"] == []
    assert services.eta(queued)["step"] is None
    # Sent again after a lost submission: it was submitted once, so it is read as before.
    resent = make_run(status=Run.Status.QUEUED, submitted_at=timezone.now())
    points(resent, "0", [(5, 1, 1000.0)])
    assert services.eta(resent)["step"] == 5
    assert [p["step"] for p in client_a.get(reverse("run_live", args=[resent.pk]), {"since": 0}).json()["points"]] == [
        5
    ]


# --- views: resources.json, TensorBoard, log search, the page ---------------------------------------


def test_resources_json_is_team_scoped(make_run, spark_ui, client_a, client_b):
    run = make_run(spark_ui_url=spark_ui.url, spark_app_id=APP_ID)
    services.sample(run)
    url = reverse("run_resources", args=[run.pk])
    assert client_b.get(url).status_code == 404
    data = client_a.get(url).json()
    assert [e["id"] for e in data["executors"]] == ["0", "1", "driver"]
    assert data["status"] == "RUNNING" and data["terminal"] is False and data["progress"]["epochs"] == 10
    assert data["executors"][0]["latest"]["python_rss_mb"] == 303.0


def write_events(run, rel="train/events.out.tfevents.1.host.1.v2", data=b"\x18\x00event-bytes"):
    path = run.run_dir / "tensorboard" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_tensorboard_download_is_a_tar_gz_of_the_event_files(make_run, client_a, client_b, tmp_path):
    run = make_run()
    url = reverse("run_tensorboard", args=[run.pk])
    assert client_a.get(url).status_code == 404  # nothing written yet
    write_events(run)
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (run.run_dir / "tensorboard" / "train" / "link").symlink_to(secret)
    (run.run_dir / "tensorboard" / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    assert client_b.get(url).status_code == 404
    resp = client_a.get(url)
    assert resp.status_code == 200 and resp["Content-Type"] == "application/gzip"
    assert f'filename="run{run.pk}-tensorboard.tar.gz"' in resp["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(b"".join(resp.streaming_content)), mode="r:gz") as tar:
        names = tar.getnames()
        assert names == [f"run{run.pk}-tensorboard/train/events.out.tfevents.1.host.1.v2"]
        assert tar.extractfile(names[0]).read() == b"\x18\x00event-bytes"


def test_a_linked_tensorboard_folder_is_not_served(make_run, client_a, tmp_path):
    run = make_run()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "train").mkdir(parents=True)
    (elsewhere / "train" / "events.out.tfevents.1.x").write_bytes(b"x")
    run.run_dir.mkdir(parents=True)
    (run.run_dir / "tensorboard").symlink_to(elsewhere, target_is_directory=True)
    assert client_a.get(reverse("run_tensorboard", args=[run.pk])).status_code == 404


@pytest.fixture
def logged_run(make_run):
    run = make_run()
    run.run_dir.mkdir(parents=True)
    lines = [f"line {i}: step {i} loss 0.{i:03d}" for i in range(1, 2001)]
    lines[41] = "WARNING sparkdeck metrics: POST failed"  # line 42
    lines[1499] = "Traceback (most recent call last): ÉRROR über"  # line 1500, non-ASCII
    (run.run_dir / "driver.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ex = run.run_dir / "executors" / "1"
    ex.mkdir(parents=True)
    (ex / "stderr").write_text("a\nb WARNING\nc", encoding="utf-8")  # last line without a newline
    return run


def search(client, run, **params):
    return client.get(reverse("run_log_search", args=[run.pk]), params)


def test_log_search_returns_matching_lines_with_numbers(logged_run, client_a):
    data = search(client_a, logged_run, log="driver:stdout", q="warning").json()
    assert [(m["line"], m["text"]) for m in data["matches"]] == [(42, "WARNING sparkdeck metrics: POST failed")]
    assert data["lines_scanned"] == 2000 and not data["truncated"] and not data["partial"]
    raw = (logged_run.run_dir / "driver.log").read_bytes()
    assert raw[data["matches"][0]["offset"] :].startswith(b"WARNING sparkdeck")  # offset = the line's first byte
    assert search(client_a, logged_run, log="driver:stdout", q="WARNING", case="1").json()["count"] == 1
    assert search(client_a, logged_run, log="driver:stdout", q="Warning", case="1").json()["count"] == 0
    assert [m["line"] for m in search(client_a, logged_run, log="driver", q="érror").json()["matches"]] == [1500]
    data = search(client_a, logged_run, log="1:stderr", q="warning").json()
    assert [(m["line"], m["text"]) for m in data["matches"]] == [(2, "b WARNING")] and data["lines_scanned"] == 3
    assert search(client_a, logged_run, log="1:stderr", q="c").json()["matches"][0]["line"] == 3


def test_log_search_caps_the_matches(logged_run, client_a):
    data = search(client_a, logged_run, log="driver:stdout", q="loss", max="25").json()
    assert data["count"] == 25 and data["truncated"] is True
    assert [m["line"] for m in data["matches"]] == list(range(1, 26))
    assert search(client_a, logged_run, q="loss").json()["count"] == logsearch.DEFAULT_MATCHES


@pytest.mark.parametrize(
    "params",
    [
        {"q": ""},
        {"q": "   "},
        {},
        {"q": "x" * 201},
        {"q": "a\nb"},
        {"q": "a\x00"},
        {"q": "loss", "max": "0"},
        {"q": "loss", "max": "5000"},
        {"q": "loss", "max": "many"},
        {"q": "loss", "log": "../../etc:stdout"},
        {"q": "loss", "log": "1:passwd"},
    ],
)
def test_log_search_refuses_bad_requests(logged_run, client_a, params):
    resp = search(client_a, logged_run, **params)
    assert resp.status_code == 400 and resp.json()["error"]


def test_log_search_is_team_scoped_and_404s_a_missing_log(logged_run, client_a, client_b):
    assert search(client_b, logged_run, q="loss").status_code == 404
    assert search(client_a, logged_run, log="7:stdout", q="loss").status_code == 404


def test_chunked_search_finds_what_a_plain_scan_finds(tmp_path):
    text = "".join(f"{'needle ' if i % 7 == 3 else ''}row {i} " + "x" * (i % 13) + "\n" for i in range(300))
    path = tmp_path / "log"
    path.write_text(text + "tail needle", encoding="utf-8")
    want = [n for n, line in enumerate((text + "tail needle").split("\n"), 1) if "needle" in line]
    for chunk in (1, 7, 64, 4096):  # line breaks and the needle fall across chunk boundaries
        res = logsearch.search(open(path, "rb"), "needle", chunk=chunk, max_matches=1000)
        assert [m["line"] for m in res.matches] == want, chunk
    assert logsearch.search(open(path, "rb"), "needle", time_budget=-1, chunk=64).partial is True


def test_the_run_page_has_the_resources_section_progress_and_log_tools(make_run, client_a):
    run = make_run()
    points(run, "0", [(0, 1, 0.0)], name="steps_per_epoch")
    MetricPoint.objects.filter(run=run).update(value=30)
    points(run, "0", [(10, 1, 100.0), (20, 1, 110.0)])
    html = client_a.get(reverse("run_detail", args=[run.pk])).content.decode()
    for needle in ('id="resources"', 'id="res-cpu"', 'id="log-pause"', 'id="log-search"', "js/resources.js"):
        assert needle in html, needle
    assert html.index("js/progress.js") < html.index("js/run.js")  # run.js uses it as it starts
    assert f'id="tensorboard-link" href="/runs/{run.pk}/tensorboard.tar.gz" hidden' in html
    start = html.index('<script id="progress-init" type="application/json">') + len(
        '<script id="progress-init" type="application/json">'
    )
    init = json.loads(html[start : html.index("</script>", start)])
    assert (init["step"], init["steps_per_epoch"], init["rate"], init["eta_s"]) == (20, 30, 1.0, 280.0)


def test_the_api_serves_resources_and_the_tensorboard_archive(make_run, spark_ui, alice, bob):
    from rest_framework.test import APIClient

    from webapp.api import tokens

    def client(user):
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Token {tokens.issue(user)}")
        return c

    a, b = client(alice[0]), client(bob[0])
    run = make_run(spark_ui_url=spark_ui.url, spark_app_id=APP_ID)
    services.sample(run)
    write_events(run)
    for url in (f"/api/runs/{run.pk}/resources/", f"/api/runs/{run.pk}/artifacts/tensorboard.tar.gz"):
        assert b.get(url).status_code == 404
    data = a.get(f"/api/runs/{run.pk}/resources/").json()
    assert [e["id"] for e in data["executors"]] == ["0", "1", "driver"] and data["progress"]["epochs"] == 10
    index = a.get(f"/api/runs/{run.pk}/artifacts/").json()["tensorboard"]
    assert index["name"] == f"run{run.pk}-tensorboard.tar.gz" and index["size"] == len(b"\x18\x00event-bytes")
    resp = a.get(index["url"], HTTP_ACCEPT="application/octet-stream")
    with tarfile.open(fileobj=io.BytesIO(b"".join(resp.streaming_content)), mode="r:gz") as tar:
        assert tar.getnames() == [f"run{run.pk}-tensorboard/train/events.out.tfevents.1.host.1.v2"]
