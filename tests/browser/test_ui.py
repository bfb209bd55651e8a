"""The dashboard in a real browser (issue 7): log in, filter the run table, open a run, its confusion
matrix, and compare two runs, with no JS error on the way. Screenshots of every step are kept
(tests/browser/conftest.py); the runs are written straight to the database, no cluster runs."""

import datetime as dt
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from django.utils import timezone

from tests.conftest import PASSWORD
from webapp.runs.models import MetricPoint, Run
from webapp.runs.summary import summarize
from workers.jobs import inference

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HP = {"filters": 16, "kernel_size": 3, "dense_units": 64, "dropout": 0.3, "epochs": 3, "batch_size": 32}
STEPS_PER_EPOCH = 20
T0 = 1_732_400_000.0


def add_metrics(run, final_accuracy, final_loss):
    """Per-step loss/accuracy and per-epoch epoch_loss/epoch_accuracy from two executors, as the ingest stores them."""
    steps = HP["epochs"] * STEPS_PER_EPOCH
    rows = []
    for ex in ("0", "1"):
        for step in range(1, steps + 1):
            epoch = (step - 1) // STEPS_PER_EPOCH + 1
            progress = step / steps
            acc = final_accuracy * (0.4 + 0.6 * progress) - (0.01 if ex == "1" else 0.0)
            values = {"loss": 2.3 * (1 - progress) + final_loss, "accuracy": acc}
            if step % STEPS_PER_EPOCH == 0:
                values |= {"epoch_loss": values["loss"], "epoch_accuracy": acc}
            rows += [
                MetricPoint(run=run, name=n, executor=ex, step=step, epoch=epoch, value=v, wall_time=T0 + step)
                for n, v in values.items()
            ]
    MetricPoint.objects.bulk_create(rows)


def write_predictions(run, wrong_share, seed):
    """Predictions of the dataset's real test rows, through the job's own writer (it also writes the
    analysis); returns the confusion matrix the page must show."""
    test = pq.read_table(run.dataset.storage_dir / "test.parquet", columns=["row_id", "label"])
    row_id, label = test.column("row_id").to_numpy(), test.column("label").to_numpy()
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(label)) < wrong_share
    pred = np.where(wrong, (label + rng.integers(1, 10, len(label))) % 10, label)
    conf = rng.uniform(0.3, 1.0, len(label)).astype(np.float32)
    rows = list(zip(row_id.tolist(), label.tolist(), pred.tolist(), conf.tolist(), strict=True))
    inference.write_predictions(rows, str(run.run_dir / "predictions"), num_classes=10)
    cm = np.zeros((10, 10), np.int64)
    np.add.at(cm, (label, pred), 1)
    run.test_rows = len(label)
    run.test_accuracy = round(float((label == pred).mean()), 4)
    run.save(update_fields=["test_rows", "test_accuracy"])
    return cm


@pytest.fixture
def runs(alice, cluster, digits_dataset):
    """Four finished runs of team A: two that succeeded (with metrics and predictions), a failed and a cancelled one."""
    user, team = alice
    end = timezone.now() - dt.timedelta(hours=1)

    def make(name, status, hp, minutes, **fields):
        started = end - dt.timedelta(minutes=minutes)
        run = Run.objects.create(
            team=team,
            created_by=user,
            name=name,
            dataset=digits_dataset,
            template="cnn",
            cluster=cluster,
            hyperparameters=hp,
            status=status,
            submitted_at=started - dt.timedelta(seconds=20),
            started_at=started,
            finished_at=end,
            spark_app_id=f"app-20260101000000-{name}",
            **fields,
        )
        run.created_at = started - dt.timedelta(seconds=30)  # auto_now_add: set after, so the queue wait is 10 s
        Run.objects.filter(pk=run.pk).update(created_at=run.created_at)
        return run

    best = make("cnn-baseline", Run.Status.SUCCEEDED, HP, 4)
    add_metrics(best, 0.98, 0.05)
    best.confusion = write_predictions(best, wrong_share=0.03, seed=1)
    wide = make("cnn-wide-batch", Run.Status.SUCCEEDED, {**HP, "batch_size": 128, "dense_units": 256}, 6)
    add_metrics(wide, 0.9, 0.3)
    wide.confusion = write_predictions(wide, wrong_share=0.12, seed=2)
    failed = make("cnn-too-big", Run.Status.FAILED, {**HP, "filters": 512}, 1, status_reason="executor 1 lost")
    cancelled = make("cnn-cancelled", Run.Status.CANCELLED, HP, 2)
    for run in (best, wide, failed, cancelled):
        summarize(run)  # the table's denormalized columns, as Run.transition fills them
    assert best.test_accuracy > 0.95 > wide.test_accuracy
    return {"best": best, "wide": wide, "failed": failed, "cancelled": cancelled}


def table_ids(page) -> set[int]:
    return {int(v) for v in page.locator("#runs tbody tr[data-run]").evaluate_all("rs => rs.map(r => r.dataset.run)")}


def chart_points(page, selector) -> list[int]:
    """Points per dataset of the Chart.js chart on the canvas `selector` (waits until it has any)."""
    page.wait_for_function(
        "sel => { const c = window.Chart && Chart.getChart(document.querySelector(sel));"
        " return c && c.data.datasets.some(d => d.data.length > 0); }",
        arg=selector,
    )
    return page.evaluate(
        "sel => Chart.getChart(document.querySelector(sel)).data.datasets.map(d => d.data.length)", selector
    )


def test_login_filter_run_analysis_compare(live_server, runs, page, screenshot):
    best, wide = runs["best"], runs["wide"]
    base = live_server.url

    # Log in through the form (the table redirects there first).
    page.goto(base + "/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    screenshot("login")
    page.click("form button[type=submit]")
    page.wait_for_url(base + "/")
    assert page.locator("h1").inner_text() == "Runs of Team A"
    assert table_ids(page) == {r.pk for r in runs.values()}
    screenshot("run-table")

    # Filter by status, then narrow with an expression: the visible rows follow.
    page.select_option("select[name=status]", ["SUCCEEDED"])
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"status=SUCCEEDED"))
    assert table_ids(page) == {best.pk, wide.pk}
    screenshot("filter-status")
    page.fill("input[name=expr]", "accuracy > 0.95")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"expr=accuracy"))
    assert table_ids(page) == {best.pk}
    assert page.locator("#filter-error").count() == 0
    screenshot("filter-expression")

    # Open the run from the filtered table.
    page.click(f"#runs tr[data-run='{best.pk}'] a[href='/runs/{best.pk}/']")
    page.wait_for_url(f"{base}/runs/{best.pk}/")
    assert page.locator("h1").inner_text() == f"Run {best.pk} · cnn-baseline"
    assert page.locator("#status").inner_text().strip() == "SUCCEEDED"
    assert page.locator("#accuracy").inner_text().startswith(f"{best.test_accuracy:.4f}")
    assert page.locator("#hyperparameters").inner_text().count("=") == len(HP)
    assert all(n > 0 for n in chart_points(page, "#chart"))
    # The first live.json poll has come back: the finished run's progress is full.
    page.wait_for_function("document.getElementById('progress-text').textContent === 'done: 3 epochs'")
    assert page.locator("#progress-bar").evaluate("b => b.style.width") == "100%"
    screenshot("run-detail")

    # Its prediction analysis: every confusion-matrix cell shows the count of (true, predicted) rows.
    page.click("#analysis-link")
    page.wait_for_url(f"{base}/runs/{best.pk}/analysis/")
    cells = page.locator("#confusion tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.querySelectorAll('td .count')).map(c => Number(c.textContent)))"
    )
    assert cells == best.confusion.tolist()
    supports = page.locator("#confusion tbody tr td:last-child").all_inner_texts()
    assert [int(s) for s in supports] == best.confusion.sum(axis=1).tolist()
    assert page.locator("#stats #accuracy").inner_text() == f"{best.test_accuracy:.4f}"
    screenshot("analysis")

    # Compare the two successful runs, picked with the table's checkboxes.
    page.goto(base + "/?status=SUCCEEDED")
    page.check(f"#runs tr[data-run='{best.pk}'] input[name=ids]")
    page.check(f"#runs tr[data-run='{wide.pk}'] input[name=ids]")
    page.click("button[form=compare-form]")
    page.wait_for_url(re.compile(r"/runs/compare/\?ids="))
    headers = page.locator("#compare-table thead th[data-run]").evaluate_all("hs => hs.map(h => Number(h.dataset.run))")
    assert sorted(headers) == sorted([best.pk, wide.pk])
    assert "cnn-baseline" in page.locator("#compare-table thead").inner_text()
    assert "cnn-wide-batch" in page.locator("#compare-table thead").inner_text()
    batch = page.locator("#compare-table tr[data-key='hp:batch_size']")
    assert "diff" in batch.get_attribute("class")
    assert sorted(batch.locator("td").all_inner_texts()) == ["128", "32"]
    page.wait_for_selector("#charts canvas")
    assert page.locator("#charts canvas").count() >= 1
    per_run = chart_points(page, "#charts canvas")
    assert len(per_run) == 2 and all(n > 0 for n in per_run)
    screenshot("compare")

    assert not page.problems, "JS errors:\n" + "\n".join(page.problems)
