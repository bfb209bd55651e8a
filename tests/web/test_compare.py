"""Compare 2–10 runs (issue 7): tables with differences highlighted, downsampled chart JSON, access."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from webapp.history import compare
from webapp.runs.models import MetricPoint, Run

HP = {"epochs": 3, "batch_size": 32, "learning_rate": 0.001, "dropout": 0.4}
T0 = 1_732_400_000.0


@pytest.fixture
def make_run(alice, cluster, digits_dataset):
    user, team = alice

    def make(name="r", hp=None, **fields):
        return Run.objects.create(
            team=team,
            created_by=user,
            name=name,
            dataset=digits_dataset,
            template="cnn",
            cluster=cluster,
            hyperparameters=dict(HP if hp is None else hp),
            **fields,
        )

    return make


def add_points(run, name, n, executors=("0", "1"), every=1, steps_per_epoch=100, value=lambda s: 1.0 / s):
    """n points per executor at steps every, 2*every, ...; wall time 0.5 s per step after T0."""
    rows = []
    for ex in executors:
        for i in range(1, n + 1):
            step = i * every
            rows.append(
                MetricPoint(
                    run=run,
                    name=name,
                    executor=ex,
                    step=step,
                    epoch=(step - 1) // steps_per_epoch + 1,
                    value=value(step),
                    wall_time=T0 + step * 0.5,
                )
            )
    MetricPoint.objects.bulk_create(rows, batch_size=5000)


def url(*ids, name="run_compare", **params):
    q = "&".join([f"ids={','.join(map(str, ids))}"] + [f"{k}={v}" for k, v in params.items()])
    return f"{reverse(name)}?{q}"


def diff_keys(html):
    return set(re.findall(r'<tr data-key="([^"]+)" class="diff">', html))


@pytest.mark.django_db
def test_diff_highlighting_marks_exactly_the_differing_hyperparameters(client_a, make_run):
    r1 = make_run("base")
    r2 = make_run("bigger batch", hp={**HP, "batch_size": 64, "filters": 16}, num_executors=1)
    r3 = make_run("same as base")

    rows = {row.key: row for row in compare.hyperparameter_rows([r1, r2, r3])}
    assert {k for k, row in rows.items() if row.differs} == {"hp:batch_size", "hp:filters"}
    assert rows["hp:filters"].cells == ["—", "16", "—"]
    assert rows["hp:batch_size"].cells == ["32", "64", "32"]

    resp = client_a.get(url(r1.pk, r2.pk, r3.pk))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert {k for k in diff_keys(html) if k.startswith("hp:")} == {"hp:batch_size", "hp:filters"}
    # Resources: only the executor count (and so the total cores) differ.
    assert {k for k in diff_keys(html) if k.startswith("res:")} == {"res:executors", "res:total_cores"}
    assert not {k for k in diff_keys(html) if k.startswith(("ds:", "final:", "time:"))}
    for key in ("hp:epochs", "hp:learning_rate", "hp:dropout", "hp:template", "res:memory", "ds:dataset"):
        assert f'data-key="{key}" class="same"' in html


@pytest.mark.django_db
def test_page_shows_resources_dataset_status_and_final_metrics(client_a, make_run, digits_dataset):
    r1 = make_run("good", status=Run.Status.SUCCEEDED, test_accuracy=0.97, test_rows=360)
    r2 = make_run("worse", status=Run.Status.FAILED, test_accuracy=0.81, test_rows=360, gpus_per_executor=1)
    html = client_a.get(url(r2.pk, r1.pk)).content.decode()
    assert html.index(f">#{r2.pk}</a>") < html.index(f">#{r1.pk}</a>")  # the order asked
    assert "loopback" in html and "digits" in html and digits_dataset.shape_text in html
    assert 's-succeeded">SUCCEEDED' in html and 's-failed">FAILED' in html
    assert '<td class="best">0.9700</td>' in html and "0.8100" in html
    assert "res:gpus" in diff_keys(html)
    for attr, _label, _higher in compare.FINAL_COLUMNS:  # columns added by later migrations show when they exist
        assert (f'data-key="final:{attr}"' in html) == hasattr(Run, attr)
    assert f'id="compare-ids" type="application/json">[{r2.pk}, {r1.pk}]' in html
    assert "js/compare.js" in html and "chart.umd.min.js" in html


@pytest.mark.django_db
def test_chart_json_has_one_dataset_per_run_per_metric_each_at_most_1000_points(client_a, make_run):
    big, small, empty = make_run("big"), make_run("small"), make_run("no metrics")
    add_points(big, "loss", 6000)  # 12,000 points over two executors
    add_points(big, "epoch_loss", 60, every=100)
    add_points(big, "steps_per_epoch", 1, executors=("0",))  # a constant, not charted
    add_points(small, "loss", 10)
    add_points(small, "accuracy", 10, value=lambda s: s / 10)

    resp = client_a.get(url(big.pk, small.pk, empty.pk, name="run_compare_data"))
    assert resp.status_code == 200
    data = resp.json()
    assert data["x"] == "step" and data["max_points"] == 1000
    assert [r["id"] for r in data["runs"]] == [big.pk, small.pk, empty.pk]
    assert [m["name"] for m in data["metrics"]] == ["loss", "accuracy", "epoch_loss"]
    for metric in data["metrics"]:
        assert [d["run"] for d in metric["datasets"]] == [big.pk, small.pk, empty.pk]
        assert all(len(d["points"]) <= 1000 for d in metric["datasets"])
    loss = {d["run"]: d["points"] for d in data["metrics"][0]["datasets"]}
    assert 900 <= len(loss[big.pk]) <= 1000  # downsampled, not thinned to nothing
    assert loss[empty.pk] == []
    xs = [p[0] for p in loss[big.pk]]
    assert xs == sorted(xs) and xs[0] < 10 and xs[-1] > 5990
    # Few points: nothing to bucket, the executors' values at a step are averaged.
    assert loss[small.pk] == [[s, pytest.approx(1.0 / s, rel=1e-5)] for s in range(1, 11)]


@pytest.mark.django_db
def test_chart_json_by_epoch_averages_each_epoch(client_a, make_run):
    a, b = make_run("a"), make_run("b")
    add_points(a, "loss", 300, value=lambda s: float((s - 1) // 100))  # epoch 1: 0.0, 2: 1.0, 3: 2.0
    add_points(a, "epoch_loss", 3, every=100, value=lambda s: s / 1000)
    add_points(b, "loss", 50, steps_per_epoch=10, value=lambda s: 5.0)
    data = client_a.get(url(a.pk, b.pk, name="run_compare_data", x="epoch")).json()
    assert data["x"] == "epoch"
    series = {m["name"]: {d["run"]: d["points"] for d in m["datasets"]} for m in data["metrics"]}
    assert series["loss"][a.pk] == [[1, 0.0], [2, 1.0], [3, 2.0]]
    assert series["loss"][b.pk] == [[e, 5.0] for e in range(1, 6)]
    assert series["epoch_loss"][a.pk] == [[1, 0.1], [2, 0.2], [3, 0.3]]
    assert series["epoch_loss"][b.pk] == []


@pytest.mark.django_db
def test_chart_json_by_wall_clock_counts_seconds_from_each_runs_first_point(client_a, make_run):
    a, b = make_run("a"), make_run("b")
    add_points(a, "loss", 4000)  # steps 1..4000 at T0 + step/2
    add_points(b, "loss", 20, every=5)
    MetricPoint.objects.filter(run=b).update(wall_time=T0 + 10_000)
    # A point posted without a timestamp (stored at 0) has no place on the clock: left out.
    MetricPoint.objects.create(run=a, name="loss", executor="0", step=4001, epoch=41, value=99.0, wall_time=0)
    data = client_a.get(url(a.pk, b.pk, name="run_compare_data", x="wall")).json()
    assert data["x"] == "wall" and "seconds" in data["x_label"]
    loss = {d["run"]: d["points"] for d in data["metrics"][0]["datasets"]}
    xs = [p[0] for p in loss[a.pk]]
    assert len(xs) <= 1000 and xs[0] == pytest.approx(0, abs=2.0) and xs[-1] == pytest.approx(1999.5, abs=2.0)
    assert xs == sorted(xs)
    # All of b's points at one instant: one point at 0 s, however far from a's clock.
    assert loss[b.pk] == [[0.0, pytest.approx(sum(1.0 / s for s in range(5, 101, 5)) / 20, rel=1e-5)]]


@pytest.mark.django_db
def test_chart_data_is_aggregated_in_the_database(make_run):
    runs = [make_run(f"r{i}") for i in range(10)]
    for r in runs:
        add_points(r, "loss", 1500, executors=("0",))
    with CaptureQueriesContext(connection) as ctx:
        data = compare.chart_data(runs, "step")
    point_queries = [q["sql"] for q in ctx.captured_queries if "runs_metricpoint" in q["sql"]]
    assert len(point_queries) <= 3 * len(runs)  # last id, x range, one GROUP BY per run
    assert all(re.search(r"GROUP BY|MIN\(|MAX\(", sql) for sql in point_queries)  # never the raw points
    assert len(data["metrics"][0]["datasets"]) == 10
    assert all(len(d["points"]) <= 1000 for d in data["metrics"][0]["datasets"])


@pytest.mark.django_db
def test_another_teams_run_is_404_like_an_unknown_id(client_a, client_b, make_run, bob, cluster):
    # Names long enough not to turn up by chance in a page's static hashes or CSRF token.
    r1, r2 = make_run("alice-secret-run-one"), make_run("alice-secret-run-two")
    user_b, team_b = bob
    # bob may compare his own runs but not alice's, alone or mixed with his.
    own = Run.objects.create(
        team=team_b, created_by=user_b, name="b1", dataset=r1.dataset, template="cnn", cluster=cluster
    )
    for name in ("run_compare", "run_compare_data"):
        for ids in ((r1.pk, r2.pk), (own.pk, r1.pk)):
            resp = client_b.get(url(*ids, name=name))
            assert resp.status_code == 404, (name, ids)
            assert b"alice-secret-run" not in resp.content
        unknown = client_b.get(url(own.pk, 99999999, name=name))
        assert unknown.status_code == 404
    assert client_b.get(url(r1.pk, own.pk, name="run_compare_data")).json() == {"error": f"Run {r1.pk} not found."}
    assert client_b.get(url(99999999, own.pk, name="run_compare_data")).json() == {"error": "Run 99999999 not found."}
    assert "not found" in client_b.get(url(own.pk, r2.pk)).content.decode()
    assert client_a.get(url(r1.pk, r2.pk)).status_code == 200


@pytest.mark.django_db
def test_login_required(client, make_run):
    r1, r2 = make_run(), make_run()
    page = client.get(url(r1.pk, r2.pk))
    assert page.status_code == 302 and "/accounts/login/" in page["Location"]
    data = client.get(url(r1.pk, r2.pk, name="run_compare_data"), HTTP_ACCEPT="application/json")
    assert data.status_code == 401
    assert client.get(url(r1.pk, r2.pk, name="run_compare_data")).status_code == 302


@pytest.mark.django_db
def test_too_few_too_many_or_bad_ids_are_400_with_a_message(client_a, make_run):
    runs = [make_run(f"r{i}") for i in range(11)]
    ids = [r.pk for r in runs]
    cases = {
        (ids[0],): "at least 2 runs",
        (ids[0], ids[0]): "at least 2 runs",  # the same run twice is one run
        tuple(ids): "at most 10 runs",
        ("abc", ids[0]): "is not a run id",
    }
    for case, message in cases.items():
        page = client_a.get(url(*case))
        assert page.status_code == 400 and message in page.content.decode(), case
        data = client_a.get(url(*case, name="run_compare_data"))
        assert data.status_code == 400 and message in data.json()["error"], case
    assert client_a.get(f"{reverse('run_compare')}?ids=").status_code == 400
    assert client_a.get(url(*ids[:10])).status_code == 200  # 10 is fine
    assert client_a.get(f"{reverse('run_compare')}?ids={ids[0]}&ids={ids[1]}").status_code == 200  # repeated ids=
    bad_x = client_a.get(url(ids[0], ids[1], name="run_compare_data", x="minutes"))
    assert bad_x.status_code == 400 and "x must be one of" in bad_x.json()["error"]


@pytest.mark.django_db
def test_without_ids_a_picker_with_the_run_checked(client_a, make_run):
    r1, r2 = make_run("first"), make_run("second")
    resp = client_a.get(f"{reverse('run_compare')}?with={r1.pk}")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert f'name="ids" value="{r1.pk}" id="pick-{r1.pk}" checked' in html
    assert f'name="ids" value="{r2.pk}" id="pick-{r2.pk}" >' in html
    assert "compare.js" not in html
    # The run page's "Compare with…" opens this picker.
    assert f'href="{reverse("run_compare")}?with={r1.pk}"' in client_a.get(r1.get_absolute_url()).content.decode()


def test_merge_points_averages_executors_and_buckets_to_max_points():
    assert compare.merge_points([[[1, 1.0], [2, 2.0]], [[1, 3.0], [3, 5.0]]]) == [[1, 2.0], [2, 2.0], [3, 5.0]]
    many = [[[float(i), 1.0] for i in range(5000)], [[i + 0.5, 3.0] for i in range(5000)]]
    merged = compare.merge_points(many, max_points=1000)
    assert len(merged) == 1000
    assert all(y == 2.0 for _, y in merged)
    assert merged[0][0] == pytest.approx(2.25) and merged[-1][0] == pytest.approx(4997.25, abs=0.01)
    assert compare.merge_points([]) == []
