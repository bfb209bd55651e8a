import json
import os
import socket
import time
import urllib.error
import urllib.request

import pytest

from tests.outage_server import OutageServer
from webapp.runs import metrics
from webapp.runs.models import MetricPoint, Run
from workers.jobs import metrics as jobs_metrics


@pytest.fixture
def run(submitted_run):
    return submitted_run


def post(client, run, payload, token=None):
    return client.post(
        f"/ingest/runs/{run.pk}/metrics",
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token or run.ingest_token}",
    )


POINTS = {"executor": "1", "points": [{"name": "loss", "value": 2.1, "step": 5, "epoch": 0, "ts": 1.0}]}


@pytest.mark.django_db
def test_ingest_stores_points_with_the_run_token(client, run):
    resp = post(client, run, POINTS)
    assert resp.status_code == 200 and resp.json() == {"stored": 1}
    p = MetricPoint.objects.get(run=run)
    assert (p.name, p.executor, p.step, p.value) == ("loss", "1", 5, 2.1)


@pytest.mark.django_db
def test_ingest_refuses_a_wrong_token_or_another_runs_token(client, run, alice, cluster, digits_dataset):
    other = Run.objects.create(team=alice[1], dataset=digits_dataset, template="cnn", cluster=cluster)
    assert post(client, run, POINTS, token="nope").status_code == 403
    assert post(client, run, POINTS, token=other.ingest_token).status_code == 403
    assert not MetricPoint.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [
        {"points": "x"},
        {"points": [{"name": "loss", "value": "abc", "step": 1}]},
        {"points": [{"name": "loss", "value": 1.0}]},
        {"points": [{"name": "rm -rf", "value": 1.0, "step": 1}]},
        {"points": [{"name": "loss", "value": 1.0, "step": 1}, {"name": "loss", "step": 2}]},
    ],
)
def test_bad_batches_are_refused_whole(client, run, payload):
    resp = post(client, run, payload)
    assert resp.status_code == 400 and resp.json()["error"]
    assert not MetricPoint.objects.exists()


@pytest.mark.django_db
def test_no_metrics_after_the_run_ended(client, run):
    run.transition(Run.Status.FAILED, reason="x")
    assert post(client, run, POINTS).status_code == 400


@pytest.mark.django_db
def test_live_endpoint_returns_points_after_an_id(client_a, run):
    post(client_a, run, POINTS)
    data = client_a.get(f"/runs/{run.pk}/live.json?since=0").json()
    assert [p["value"] for p in data["points"]] == [2.1]
    last = data["points"][-1]["id"]
    assert client_a.get(f"/runs/{run.pk}/live.json?since={last}").json()["points"] == []


@pytest.mark.django_db
def test_live_log_of_an_active_run_is_followed_first(client_a, run, monkeypatch):
    from webapp.runs import lifecycle

    asked = []

    class Following:
        def follow_log(self, handle, executor, stream):
            asked.append((handle["run_dir"], executor, stream))
            path = run.run_dir / "executors" / executor / stream
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("fetched just now\n")

    monkeypatch.setattr(lifecycle, "backend_for", lambda cluster: Following())
    run.backend_handle = {"run_dir": str(run.run_dir), "app_id": "app-1"}
    run.save(update_fields=["backend_handle"])
    url = f"/runs/{run.pk}/live.json?log=1:stderr&off:1:stderr=0&log=driver"
    data = client_a.get(url).json()
    assert asked == [(str(run.run_dir), "1", "stderr")]  # the executor log, not the driver's own file
    assert data["logs"]["1:stderr"]["text"] == "fetched just now\n"

    client_a.get(f"/runs/{run.pk}/live.json?log=..:stderr")  # a bad name reaches no backend
    run.transition(Run.Status.FAILED, reason="x")
    client_a.get(url)  # ended: the reconciler's final copy is all there is
    assert len(asked) == 1


# --- idempotent ingest ---------------------------------------------------------------------------


def keys(run):
    return list(MetricPoint.objects.filter(run=run).order_by("id").values_list("executor", "name", "step"))


@pytest.mark.django_db
def test_a_batch_sent_again_is_stored_once(client, run):
    batch = {
        "executor": "0",
        "points": [
            {"name": "loss", "value": 0.9, "step": 5, "epoch": 1, "ts": 1.0},
            {"name": "accuracy", "value": 0.5, "step": 5, "epoch": 1, "ts": 1.0},
            {"name": "loss", "value": 0.9, "step": 5, "epoch": 1, "ts": 1.0},  # twice in one batch too
        ],
    }
    assert post(client, run, batch).json() == {"stored": 3}
    assert post(client, run, batch).status_code == 200  # the answer was lost: the poster sends it again
    assert keys(run) == [("0", "loss", 5), ("0", "accuracy", 5)]
    other = {"executor": "1", "points": batch["points"][:1]}  # same step on another executor: its own point
    post(client, run, other)
    assert len(keys(run)) == 3
    assert MetricPoint.objects.get(run=run, executor="0", name="loss").value == 0.9  # the first copy stays


# --- bad input: a clear 4xx, never a 500 ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Bearer ³", "Bearer \x00", "Bearer tok\x00en", "Bëarer x", "\x00"])
def test_an_odd_authorization_header_is_refused_not_a_crash(client, run, header):
    resp = client.post(
        f"/ingest/runs/{run.pk}/metrics",
        data=json.dumps(POINTS),
        content_type="application/json",
        HTTP_AUTHORIZATION=header,
    )
    assert resp.status_code == 403
    assert not MetricPoint.objects.exists()


@pytest.mark.django_db
def test_an_unknown_run_id_beyond_the_id_range_is_refused(client, run):
    resp = client.post(f"/ingest/runs/{10**20}/metrics", data=json.dumps(POINTS), content_type="application/json")
    assert resp.status_code == 403


def point(**changes):
    p = {"name": "loss", "value": 0.5, "step": 5, "epoch": 1, "ts": 1.0}
    p.update(changes)
    return {k: v for k, v in p.items() if v is not DROP}


DROP = object()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [
        {"points": [point(step=10**12)]},  # beyond the IntegerField
        {"points": [point(step=2**31)]},
        {"points": [point(step=-1)]},
        {"points": [point(epoch=10**12)]},
        {"points": [point(epoch=-1)]},
        {"points": [point(step=True)]},
        {"points": [point(step="5")]},
        {"points": [point(step=1.5)]},
        {"points": [point(step=DROP)]},
        {"points": [point(value=True)]},
        {"points": [point(value="0.5")]},
        {"points": [point(value=10**400)]},  # no float holds it
        {"points": [point(ts=float("inf"))]},
        {"points": [point(ts=float("nan"))]},
        {"points": [point(ts="now")]},
        {"points": [point(ts=10**400)]},
        {"points": [point(name=["loss"])]},
        {"points": [1]},
        {"points": ["loss"]},
        {"executor": 0, "points": [point()]},
        {"executor": "x" * 33, "points": [point()]},
        {"executor": "a\x00b", "points": [point()]},
        {"executor": {"id": 1}, "points": [point()]},
        [point()],
        {"points": [point()] * 5001},
    ],
)
def test_out_of_range_and_wrongly_typed_points_are_refused(client, run, payload):
    resp = post(client, run, payload)
    assert resp.status_code == 400 and resp.json()["error"]
    assert not MetricPoint.objects.exists()


@pytest.mark.django_db
def test_the_largest_step_and_epoch_are_stored(client, run):
    assert post(client, run, {"executor": "0", "points": [point(step=2**31 - 1, epoch=2**31 - 1)]}).status_code == 200
    assert MetricPoint.objects.get(run=run).step == 2**31 - 1


def raw_post(client, run, body: bytes):
    return client.post(
        f"/ingest/runs/{run.pk}/metrics",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {run.ingest_token}",
    )


@pytest.mark.django_db
def test_deeply_nested_json_is_refused_with_bounded_work(client, run):
    t0 = time.monotonic()
    resp = raw_post(client, run, b"[" * 100_000 + b"]" * 100_000)
    assert resp.status_code == 400 and "nested too deeply" in resp.json()["error"]
    inner = {"executor": "0", "points": [{"name": "loss", "value": 1.0, "step": 1, "epoch": None}]}
    body = (
        json.dumps(inner).replace("None", "[" * 100_000 + "]" * 100_000).replace("null", "[" * 100_000 + "]" * 100_000)
    )
    assert raw_post(client, run, body.encode()).status_code == 400
    assert time.monotonic() - t0 < 5


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body", [b"\xff\xfe", b"{", b"", b'{"points": [{"name": "loss", "value": NaN, "step": 1, "ts": Infinity}]}']
)
def test_bodies_that_are_not_json_or_carry_non_finite_ts_are_refused(client, run, body):
    assert raw_post(client, run, body).status_code == 400
    assert not MetricPoint.objects.exists()


@pytest.mark.django_db
def test_a_body_over_the_upload_limit_is_refused_before_it_is_parsed(client, run, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    resp = raw_post(client, run, json.dumps({"executor": "0", "points": [point(step=i) for i in range(50)]}).encode())
    assert resp.status_code == 413 and "1000 bytes" in resp.json()["error"]
    assert not MetricPoint.objects.exists()


@pytest.mark.django_db
def test_a_non_finite_value_is_skipped_not_refused(client, run):
    resp = raw_post(client, run, b'{"executor": "0", "points": [{"name": "loss", "value": NaN, "step": 1, "ts": 2.0}]}')
    assert resp.status_code == 200 and resp.json() == {"stored": 0}


# --- points an executor could not post: <run dir>/metrics-pending/ -------------------------------


def closed_port_url(run):
    with socket.socket() as s:  # a port nobody listens on: the web server is down
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/ingest/runs/{run.pk}/metrics"


@pytest.mark.django_db
def test_points_left_at_close_are_stored_once_by_ingest_pending(run):
    run.transition(Run.Status.RUNNING)
    folder = jobs_metrics.pending_dir(str(run.run_dir))
    for executor in ("0", "1"):
        poster = jobs_metrics.MetricsPoster(
            closed_port_url(run), run.ingest_token, executor, pending_dir=folder, close_seconds=0.2, timeout=1
        )
        for step in range(1, 301):
            poster.add("loss", 1 / step, step, 1 + step // 100)
        poster.add("epoch_accuracy", 0.75, 300, 3)
        poster.close()
        assert poster.pending_path and poster.dropped == 0
    assert len(os.listdir(folder)) == 2
    assert metrics.ingest_pending(run) == 602
    assert os.listdir(folder) == []  # each file removed once stored
    assert MetricPoint.objects.filter(run=run).count() == 602
    for executor in ("0", "1"):  # each executor's points, in the order it added them
        assert [k[1:] for k in keys(run) if k[0] == executor] == [("loss", s) for s in range(1, 301)] + [
            ("epoch_accuracy", 300)
        ]
    run.refresh_from_db()
    assert run.best_accuracy == 0.75  # the run table's columns follow, as for posted points
    assert metrics.ingest_pending(run) == 0  # nothing left: a second call stores nothing


@pytest.mark.django_db
def test_a_pending_file_stored_twice_adds_nothing(run, tmp_path):
    """A crash between storing a file and removing it: the next call stores it again, harmlessly."""
    folder = run.run_dir / jobs_metrics.PENDING_DIR
    folder.mkdir(parents=True)
    lines = [
        json.dumps({"executor": "0", "name": "loss", "value": 1 / s, "step": s, "epoch": 1, "ts": 1.0})
        for s in range(1, 8001)
    ]
    (folder / "0-a.jsonl").write_text("\n".join(lines) + "\n")
    copy = (folder / "0-a.jsonl").read_bytes()
    assert metrics.ingest_pending(run) == 8000  # more than one insert batch
    (folder / "0-a.jsonl").write_bytes(copy)
    assert metrics.ingest_pending(run) == 8000
    assert MetricPoint.objects.filter(run=run).count() == 8000


@pytest.mark.django_db
def test_ingest_pending_skips_a_truncated_last_line_and_files_still_being_written(run):
    folder = run.run_dir / jobs_metrics.PENDING_DIR
    folder.mkdir(parents=True)
    good = [{"executor": "2", "name": "loss", "value": 0.5, "step": s, "epoch": 1, "ts": 1.0} for s in (5, 10, 15)]
    text = "\n".join(json.dumps(p) for p in good[:2]) + "\n"
    text += '{"executor": "2", "name": "rm -rf", "value": 1, "step": 1}\n'  # not a metric: skipped
    text += json.dumps(good[2]) + "\n" + '{"executor": "2", "name": "loss", "val'  # the writer died here
    (folder / "2-b.jsonl").write_text(text)
    (folder / ".2-c.jsonl.tmp").write_text(json.dumps(good[0]) + "\n")  # renamed only when whole
    assert metrics.ingest_pending(run) == 3
    assert keys(run) == [("2", "loss", 5), ("2", "loss", 10), ("2", "loss", 15)]
    assert sorted(os.listdir(folder)) == [".2-c.jsonl.tmp"]
    assert metrics.ingest_pending(Run.objects.create(**_clone(run))) == 0  # no folder at all


def _clone(run):
    return {"team": run.team, "dataset": run.dataset, "template": "cnn", "cluster": run.cluster}


@pytest.mark.django_db
def test_points_stored_after_the_run_ended_reach_its_stored_chart(run, django_assert_max_num_queries):
    from django.core.cache import cache

    run.run_dir.mkdir(parents=True)
    post_batch = {"executor": "0", "points": [point(step=s, value=1 / s) for s in range(1, 11)]}
    assert metrics.ingest(run, post_batch) == 10
    run.transition(Run.Status.SUCCEEDED)  # stores the finished run's chart data
    assert metrics.series(run)["series"][0]["count"] == 10
    folder = run.run_dir / jobs_metrics.PENDING_DIR
    folder.mkdir()
    late = [{"executor": "0", **point(step=s, value=1 / s)} for s in range(11, 21)]
    (folder / "0-late.jsonl").write_text("".join(json.dumps(p) + "\n" for p in late))
    assert metrics.ingest_pending(run) == 10  # an ended run still takes its pending points
    assert metrics.series(run)["series"][0]["count"] == 20  # not the answer cached before
    cache.clear()  # another process: reads the stored file, which was written anew
    with django_assert_max_num_queries(0):
        assert metrics.series(run)["series"][0]["count"] == 20


# --- the real path: poster -> a web server that dies and comes back -> Django -> PostgreSQL ----


@pytest.mark.django_db(transaction=True)
def test_every_point_is_stored_exactly_once_across_outages_and_lost_answers(live_server, run):
    lose = {"answers": 0, "lost": 0}

    def forward(path, headers, body):
        req = urllib.request.Request(live_server.url + path, data=body, method="POST")
        for name in ("Authorization", "Content-Type"):
            req.add_header(name, headers[name])
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                answer = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            answer = e.code, e.read()
        if lose["answers"] > 0:  # stored, then the server died before answering
            lose["answers"] -= 1
            lose["lost"] += 1
            return None
        return answer

    web = OutageServer(forward, path=f"/ingest/runs/{run.pk}/metrics").start()
    poster = jobs_metrics.MetricsPoster(
        web.url, run.ingest_token, "0", flush_every=0.05, timeout=5, backoff=(0.02, 0.2), close_seconds=10
    )

    def add(steps):
        for step in steps:
            poster.add("loss", 1 / step, step, 1 + step // 100)

    def stored():
        return MetricPoint.objects.filter(run=run).count()

    try:
        add(range(1, 101))
        wait_for(lambda: stored() == 100)
        web.stop()  # killed
        add(range(101, 301))
        wait_for(lambda: poster.failures >= 3)
        lose["answers"] = 2
        web.start()  # restarted on the same port, and twice stores a batch without answering
        add(range(301, 401))
        wait_for(lambda: stored() >= 400 and lose["lost"] == 2)
        poster.close()
    finally:
        web.stop()
    assert lose["lost"] == 2  # batches the poster had to send again
    steps = list(MetricPoint.objects.filter(run=run).order_by("id").values_list("step", flat=True))
    assert steps == list(range(1, 401))  # every point exactly once, in the order it was added
    assert poster.dropped == 0 and poster.pending_path is None


def wait_for(cond, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_the_first_copy_of_each_point(alice, cluster, digits_dataset):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("runs", "0006_run_driver_supervision")], [("runs", "0007_metricpoint_unique_point")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    OldRun, OldPoint = old.get_model("runs", "Run"), old.get_model("runs", "MetricPoint")
    run = OldRun.objects.create(
        team_id=alice[1].pk, dataset_id=digits_dataset.pk, template="cnn", cluster_id=cluster.pk
    )
    other = OldRun.objects.create(
        team_id=alice[1].pk, dataset_id=digits_dataset.pk, template="cnn", cluster_id=cluster.pk
    )
    rows = [  # (run, name, step, executor, value): what a resent batch left behind before the constraint
        (run, "loss", 5, "0", 1.0),
        (run, "loss", 5, "0", 2.0),
        (run, "loss", 5, "1", 3.0),
        (run, "accuracy", 5, "0", 4.0),
        (run, "loss", 10, "0", 5.0),
        (run, "loss", 5, "0", 6.0),
        (other, "loss", 5, "0", 7.0),
        (other, "loss", 5, "0", 8.0),
    ]
    for r, name, step, ex, value in rows:
        OldPoint.objects.create(run=r, name=name, step=step, executor=ex, value=value, wall_time=1.0)
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    new = executor.loader.project_state(after).apps.get_model("runs", "MetricPoint")
    kept = sorted(new.objects.values_list("run_id", "name", "step", "executor", "value"))
    assert kept == [
        (run.pk, "accuracy", 5, "0", 4.0),
        (run.pk, "loss", 5, "0", 1.0),  # the lowest id of the three
        (run.pk, "loss", 5, "1", 3.0),
        (run.pk, "loss", 10, "0", 5.0),
        (other.pk, "loss", 5, "0", 7.0),
    ]
    MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
