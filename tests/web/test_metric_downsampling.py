"""webapp/runs/metrics.series(): charts downsampled in the database, zoom ranges, the run page's use."""

import math

import numpy as np
import pytest
from django.core.cache import cache
from django.urls import reverse

from webapp.runs import metrics
from webapp.runs.models import MetricPoint, Run

pytestmark = pytest.mark.django_db
T0 = 1_732_400_000.0


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def run_a(alice, cluster, digits_dataset):
    user, team = alice
    return Run.objects.create(  # training: a run never submitted has no points (Run.never_submitted)
        team=team, created_by=user, name="run-a", dataset=digits_dataset, template="cnn", cluster=cluster,
        status=Run.Status.RUNNING,
    )  # fmt: skip


def add(run, name, executor, steps, values, epochs=None, wall=None):
    MetricPoint.objects.bulk_create(
        [
            MetricPoint(
                run=run,
                name=name,
                executor=executor,
                step=int(s),
                epoch=None if epochs is None else int(epochs[i]),
                value=float(v),
                wall_time=T0 + float(s) * 0.5 if wall is None else float(wall[i]),
            )
            for i, (s, v) in enumerate(zip(steps, values, strict=True))
        ],
        batch_size=5000,
    )


def noisy_loss(n, seed):
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n + 1)
    values = 2.0 / np.sqrt(steps) + rng.normal(0, 0.01, n)
    return steps, values


def by_key(data):
    return {(s["name"], s["executor"]): s for s in data["series"]}


def test_downsampled_series_keep_extremes_and_stay_under_max_points(run_a):
    steps, values = noisy_loss(20_000, 0)
    values[12_345] = 9.5  # a spike
    values[17_000] = -3.0  # and a dip
    add(run_a, "loss", "0", steps, values)
    add(run_a, "loss", "1", *noisy_loss(15_000, 1))
    add(run_a, "epoch_loss", "0", [4000, 8000, 12000, 16000, 20000], [0.9, 0.5, 0.4, 0.35, 0.3])
    data = metrics.series(run_a, max_points=300)
    s = by_key(data)
    main = s[("loss", "0")]
    assert main["count"] == 20_000 and main["downsampled"] and len(main["points"]) <= 300
    ys = [p[1] for p in main["points"]]
    assert max(ys) == pytest.approx(9.5) and min(ys) == pytest.approx(-3.0)
    # each extreme sits in its own bucket's x range (bucket width = 20000 / 150 steps)
    spike_x = main["points"][ys.index(max(ys))][0]
    assert abs(spike_x - steps[12_345]) <= math.ceil(20_000 / 150)
    xs = [p[0] for p in main["points"]]
    assert xs == sorted(xs) and xs[0] == 1 and xs[-1] == 20_000
    assert len(s[("loss", "1")]["points"]) <= 300 and s[("loss", "1")]["count"] == 15_000
    # the per-bucket extremes are the true ones
    width = math.ceil(20_000 / 150)
    for b in (0, 40, 149):
        chunk = values[b * width : (b + 1) * width]
        bucket = [y for x, y in main["points"] if b * width < x <= (b + 1) * width]
        assert max(bucket) == pytest.approx(chunk.max()) and min(bucket) == pytest.approx(chunk.min())
    # a small series comes back raw
    epoch = s[("epoch_loss", "0")]
    assert not epoch["downsampled"] and epoch["points"] == [
        [4000, 0.9],
        [8000, 0.5],
        [12000, 0.4],
        [16000, 0.35],
        [20000, 0.3],
    ]
    assert data["range"] == [1, 20_000] and data["last_id"] == MetricPoint.objects.latest("id").id


def test_trend_decides_the_order_of_a_buckets_two_points(run_a):
    add(run_a, "loss", "0", range(1, 1001), np.linspace(1.0, 0.0, 1000))  # falling
    add(run_a, "accuracy", "0", range(1, 1001), np.linspace(0.0, 1.0, 1000))  # rising
    s = by_key(metrics.series(run_a, max_points=20))
    falling, rising = s[("loss", "0")]["points"], s[("accuracy", "0")]["points"]
    assert len(falling) == 20 and all(a[1] >= b[1] for a, b in zip(falling, falling[1:], strict=False))
    assert all(a[1] <= b[1] for a, b in zip(rising, rising[1:], strict=False))
    assert falling[0] == [1, 1.0] and falling[-1] == [1000, pytest.approx(0.0)]


def test_small_but_lumpy_series_comes_back_raw(run_a):
    # 300 points within 30 steps of a 100,000-step range: few buckets, many points each
    steps = list(range(1, 301)) + [100_000]
    add(run_a, "accuracy", "0", steps, np.linspace(0, 1, len(steps)))
    add(run_a, "loss", "0", [1, 100_000], [1.0, 0.1])
    s = by_key(metrics.series(run_a, max_points=1000))
    acc = s[("accuracy", "0")]
    assert not acc["downsampled"] and len(acc["points"]) == 301 and acc["points"][150][0] == 151


def test_zoom_returns_the_finer_range(run_a):
    steps, values = noisy_loss(50_000, 2)
    add(run_a, "loss", "0", steps, values)
    overview = by_key(metrics.series(run_a, max_points=200))[("loss", "0")]
    zoomed = metrics.series(run_a, start=10_000.4, end=10_150.6, max_points=200)
    z = by_key(zoomed)[("loss", "0")]
    assert (zoomed["start"], zoomed["end"]) == (10_000, 10_151)  # whole steps covering the range
    assert not z["downsampled"] and z["count"] == 152
    assert [p[0] for p in z["points"]] == list(range(10_000, 10_152))
    assert [p[1] for p in z["points"]] == pytest.approx(values[9_999:10_151].tolist())
    inside = [p for p in overview["points"] if 10_000 <= p[0] <= 10_151]
    assert len(inside) < 10  # the overview had a handful of points there
    wide = by_key(metrics.series(run_a, start=1000, end=30_000, max_points=200))[("loss", "0")]
    assert wide["downsampled"] and len(wide["points"]) <= 200
    assert min(p[0] for p in wide["points"]) >= 1000 and max(p[0] for p in wide["points"]) <= 30_000
    assert metrics.series(run_a, start=60_000, end=70_000)["series"] == []


def test_epoch_and_wall_axes_and_names(run_a):
    add(run_a, "loss", "0", range(1, 101), np.linspace(1, 0, 100), epochs=[s // 25 for s in range(1, 101)])
    add(run_a, "loss", "1", [5, 6], [0.5, 0.4], wall=[0.0, T0 + 100])  # first point posted without a timestamp
    add(run_a, "epoch_accuracy", "0", [25, 50, 75, 100], [0.5, 0.6, 0.7, 0.8], epochs=[0, 1, 2, 3])
    by_epoch = metrics.series(run_a, x="epoch", max_points=8)
    s = by_key(by_epoch)
    assert ("loss", "1") not in s  # no epoch numbers
    assert s[("epoch_accuracy", "0")]["points"] == [[0, 0.5], [1, 0.6], [2, 0.7], [3, 0.8]]
    assert {p[0] for p in s[("loss", "0")]["points"]} <= {0, 1, 2, 3, 4}
    wall = metrics.series(run_a, x="wall")
    assert wall["origin"] == pytest.approx(T0 + 0.5)
    w = by_key(wall)
    assert w[("loss", "1")]["points"] == [[pytest.approx(99.5), 0.4]]  # the point without "ts" is left out
    assert w[("loss", "0")]["points"][0] == [pytest.approx(0.0), 1.0]
    only = metrics.series(run_a, names=["epoch_accuracy", "not-a-metric"])
    assert [(x["name"], x["executor"]) for x in only["series"]] == [("epoch_accuracy", "0")]
    with pytest.raises(metrics.SeriesError):
        metrics.series(run_a, x="minutes")
    with pytest.raises(metrics.SeriesError):
        metrics.series(run_a, start="soon")


def test_new_points_show_up_despite_the_cache(run_a):
    add(run_a, "loss", "0", [1, 2], [0.9, 0.8])
    assert by_key(metrics.series(run_a))[("loss", "0")]["count"] == 2
    add(run_a, "loss", "0", [3], [0.7])
    assert by_key(metrics.series(run_a))[("loss", "0")]["count"] == 3
    assert metrics.series(Run.objects.create(**_clone(run_a)))["series"] == []


def _clone(run):
    return {"team": run.team, "dataset": run.dataset, "template": "cnn", "cluster": run.cluster}


def test_series_json_view(client_a, client_b, run_a):
    add(run_a, "loss", "0", *noisy_loss(3000, 3))
    url = reverse("run_series", args=[run_a.pk])
    data = client_a.get(url, {"max_points": 100, "names": "loss"}).json()
    assert len(data["series"][0]["points"]) <= 100 and data["terminal"] is False and data["status"] == "RUNNING"
    zoomed = client_a.get(url, {"start": 100, "end": 160}).json()
    assert [p[0] for p in zoomed["series"][0]["points"]] == list(range(100, 161))
    assert client_a.get(url, {"x": "minutes"}).status_code == 400
    assert client_a.get(url, {"start": "x"}).status_code == 400
    assert client_b.get(url).status_code == 404


def test_run_page_has_the_zoomable_chart(client_a, run_a):
    body = client_a.get(reverse("run_detail", args=[run_a.pk])).content.decode()
    for marker in ('id="chart"', 'id="chart-x"', 'id="zoom-start"', 'id="zoom-reset"', 'id="analysis-link"'):
        assert marker in body
    # live.json still serves points since an id (run.js polls it after loading series.json)
    add(run_a, "loss", "0", [1, 2, 3], [0.9, 0.8, 0.7])
    first = MetricPoint.objects.filter(run=run_a).order_by("id").first().id
    live = client_a.get(reverse("run_live", args=[run_a.pk]), {"since": first}).json()
    assert [p["step"] for p in live["points"]] == [2, 3]


def test_series_uses_the_unique_points_index(run_a):
    """One index both refuses a point stored twice and serves series()' step ranges per metric."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL plan")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'runs_metricpoint'")
        defs = dict(cursor.fetchall())
        assert "UNIQUE" in defs["metric_one_point"] and "(run_id, name, step, executor)" in defs["metric_one_point"]
        assert "metric_run_name_step" not in defs  # its work is done by the unique index now
        add(run_a, "loss", "0", *noisy_loss(2000, 7))
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT step, value FROM runs_metricpoint"
            " WHERE run_id = %s AND name = %s AND step BETWEEN 10 AND 20",
            [run_a.pk, "loss"],
        )
        assert "metric_one_point" in " ".join(r[0] for r in cursor.fetchall())


def test_a_finished_runs_chart_is_computed_once_and_stored(run_a, django_assert_max_num_queries):
    add(run_a, "loss", "0", *noisy_loss(5000, 4))
    run_a.run_dir.mkdir(parents=True)
    Run.objects.filter(pk=run_a.pk).update(status=Run.Status.SUCCEEDED)
    run_a.refresh_from_db()
    metrics.warm_series(run_a, axes=metrics.X_AXES)
    stored = sorted(p.name for p in (run_a.run_dir / metrics.SERIES_DIR).iterdir())
    assert len(stored) == 3 and all(name.startswith("v1-") for name in stored)  # step, epoch, wall
    first = metrics.series(run_a)
    assert first["last_id"] == MetricPoint.objects.filter(run=run_a).latest("id").id
    cache.clear()
    with django_assert_max_num_queries(0):  # read back from the run dir: no aggregation, no query
        assert metrics.series(run_a) == first
    zoomed = metrics.series(run_a, start=10, end=20)  # zooms are computed (and cached), not stored
    assert [p[0] for p in zoomed["series"][0]["points"]] == list(range(10, 21))
    assert len(list((run_a.run_dir / metrics.SERIES_DIR).iterdir())) == 3


def test_epochs_done_reads_the_newest_epoch_end_point(client_a, run_a, django_assert_max_num_queries):
    assert metrics.epochs_done(run_a) == 0
    add(run_a, "loss", "0", *noisy_loss(300, 5), epochs=[1 + i // 100 for i in range(300)])
    add(run_a, "epoch_loss", "0", [100, 200], [0.5, 0.4], epochs=[1, 2])  # epochs are 1-based
    add(run_a, "epoch_accuracy", "1", [100, 200, 300], [0.8, 0.9, 0.95], epochs=[1, 2, 3])
    with django_assert_max_num_queries(2):  # one index end per name, not a scan of the points
        assert metrics.epochs_done(run_a) == 3
    body = client_a.get(reverse("run_detail", args=[run_a.pk])).content.decode()
    assert '<script id="epochs-done" type="application/json">3</script>' in body


def test_compare_reads_the_file_warm_series_stored(run_a, django_assert_max_num_queries):
    from webapp.history import compare

    add(run_a, "loss", "0", *noisy_loss(3000, 6), epochs=[1 + i // 1000 for i in range(3000)])
    add(run_a, "steps_per_epoch", "0", [1], [1000.0])
    run_a.run_dir.mkdir(parents=True)
    Run.objects.filter(pk=run_a.pk).update(status=Run.Status.SUCCEEDED)
    run_a.refresh_from_db()
    metrics.warm_series(run_a)  # the default axes: step and epoch
    cache.clear()
    for x in ("step", "epoch"):
        with django_assert_max_num_queries(0):  # both axes come from the stored files
            curves = compare.run_series(run_a, x=x)
        assert set(curves) == {"loss"}  # steps_per_epoch is a constant, not a curve
        assert len(curves["loss"]) <= compare.MAX_POINTS
