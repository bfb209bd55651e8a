"""The run page's live tools in a real browser (issue 8): the Resources charts, the step progress with
ETA, search within the log (in the page and over the whole stored file) and pause/resume of the log
tail, with no JS error on the way. Samples, points and the log are written straight to the database
and the run dir; no cluster runs."""

import datetime as dt
import time

import pytest
from django.utils import timezone

from tests.browser.login import log_in_at
from webapp.datasets.models import Dataset
from webapp.monitoring.models import ExecutorSample
from webapp.runs.models import MetricPoint, Run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def running(alice, cluster):
    user, team = alice
    dataset = Dataset.objects.create(
        team=team, name="d", source_format="npz", original_name="d.npz", status="READY", shape=[8, 8, 1]
    )
    run = Run.objects.create(
        team=team, created_by=user, name="live", dataset=dataset, template="cnn", cluster=cluster,
        hyperparameters={"epochs": 3}, status=Run.Status.RUNNING, started_at=timezone.now(),
        spark_app_id="app-20260101000000-0001",
    )  # fmt: skip
    now = timezone.now()
    rows = []
    for ex in ("0", "1", "driver"):
        driver = ex == "driver"  # Spark reports no Python workers' memory for the driver (0)
        for i in range(6):
            rss = (200 + 20 * i) * 2**20
            rows.append(
                ExecutorSample(
                    run=run, executor_id=ex, is_driver=driver, sampled_at=now - dt.timedelta(seconds=5 * (5 - i)),
                    total_cores=0 if driver else 1, max_tasks=0 if driver else 1, active_tasks=0 if driver else 1,
                    memory_used=4000, max_memory=133 * 2**20, peak_jvm_heap=(80 + i) * 2**20,
                    jvm_gc_time_ms=300 + 50 * i, raw={"ProcessTreePythonRSSMemory": 0 if driver else rss},
                )
            )  # fmt: skip
    ExecutorSample.objects.bulk_create(rows)
    t = time.time()
    points = [MetricPoint(run=run, name="steps_per_epoch", executor="0", step=0, epoch=1, value=40, wall_time=t - 60)]
    points += [
        MetricPoint(run=run, name="loss", executor="0", step=s, epoch=1 + s // 40, value=1.0, wall_time=t - 60 + s / 2)
        for s in range(5, 61, 5)
    ]  # 60 of 120 steps at 2 steps/s: 30 s to go
    MetricPoint.objects.bulk_create(points)
    run.run_dir.mkdir(parents=True)
    # An early line the page's 64 KB tail does not load, then 100 KB of output, two warnings at the end.
    lines = ["EARLYMARKER first line of the driver"] + [f"INFO step {i} " + "." * 60 for i in range(1400)]
    lines += ["WARNING executor 1 is slow", "INFO fine", "WARNING executor 1 is slow again"]
    (run.run_dir / "driver.log").write_text("\n".join(lines) + "\n")
    return run


def test_resources_progress_log_search_and_pause(live_server, running, page, screenshot):
    base = live_server.url
    log_in_at(page, base + f"/runs/{running.pk}/")

    # Resources: one line per executor (the driver runs no tasks: not on the cores chart).
    page.wait_for_function(
        "() => { const c = Chart.getChart(document.querySelector('#res-cpu'));"
        " return c && c.data.datasets.length === 2 && c.data.datasets.every(d => d.data.length === 6); }"
    )
    mem = page.evaluate("() => Chart.getChart(document.querySelector('#res-mem')).data.datasets.map(d => d.label)")
    assert mem == ["executor 0 heap", "executor 0 Python", "executor 1 heap", "executor 1 Python", "driver heap"]
    assert page.locator("#resources-table tbody tr").count() == 3

    # Progress: steps and an ETA from the points' rate.
    page.wait_for_function("() => document.getElementById('progress-text').textContent.startsWith('epoch ')")
    text = page.locator("#progress-text").inner_text()
    assert text.startswith("epoch 2 of 3 · step 20/40 · ETA ") and text.endswith(" s"), text

    # Search in the loaded text: two warnings, Enter moves to the next.
    page.wait_for_function("() => document.getElementById('log').textContent.includes('is slow again')")
    page.fill("#log-search", "warning")
    page.wait_for_function("() => document.getElementById('log-search-count').textContent === '1 / 2'")
    page.press("#log-search", "Enter")
    page.wait_for_function("() => document.getElementById('log-search-count').textContent === '2 / 2'")
    assert page.locator("#log mark.current").inner_text() == "WARNING"
    assert not page.is_checked("#follow")  # jumping to a match stops following the end

    # The early line is outside the loaded tail: only the server's whole-file search finds it.
    page.fill("#log-search", "earlymarker")
    page.wait_for_function("() => document.getElementById('log-search-count').textContent.startsWith('no match')")
    page.click("#log-search-file")
    page.wait_for_selector("#log-search-results li")
    assert page.locator("#log-search-results li").all_inner_texts() == ["line 1 EARLYMARKER first line of the driver"]
    screenshot("run-monitoring-search")

    # Pause: new output waits (offsets kept); Resume catches up.
    page.click("#log-pause")
    assert page.locator("#log-pause").inner_text() == "Resume"
    with open(running.run_dir / "driver.log", "a") as f:
        f.write("NEWLINE written while paused\n")
    page.wait_for_timeout(2500)  # two polls
    assert "NEWLINE" not in page.evaluate("() => document.getElementById('log').textContent")
    page.click("#log-pause")
    page.wait_for_function("() => document.getElementById('log').textContent.includes('NEWLINE written while paused')")
    log = page.evaluate("() => document.getElementById('log').textContent")
    assert log.count("is slow again") == 1 and log.endswith("NEWLINE written while paused\n")  # no gap, no repeat
    screenshot("run-monitoring-resumed")
    assert page.problems == []
