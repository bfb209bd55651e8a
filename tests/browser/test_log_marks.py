"""The run page shows why an executor log's copy is incomplete, next to that log, in a real browser."""

import json

import pytest
from django.utils import timezone

from tests.browser.login import log_in_at
from webapp.datasets.models import Dataset
from webapp.runs.models import Run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REASON = "worker 127.0.0.1:8082 not reachable (ConnectionError)"


def test_incomplete_executor_log_shows_its_reason(live_server, alice, cluster, page, screenshot):
    user, team = alice
    dataset = Dataset.objects.create(
        team=team, name="d", source_format="npz", original_name="d.npz", status="READY", shape=[8, 8, 1]
    )
    run = Run.objects.create(
        team=team, created_by=user, name="marks", dataset=dataset, template="cnn", cluster=cluster,
        status=Run.Status.SUCCEEDED, started_at=timezone.now(), finished_at=timezone.now(),
    )  # fmt: skip
    out = run.run_dir / "executors"
    for ex in ("0", "1"):
        (out / ex).mkdir(parents=True)
        for stream in ("stdout", "stderr"):
            (out / ex / stream).write_text(f"executor {ex} {stream}\n")
    whole = {"complete": True, "copied": 18, "total": 18, "reason": "", "final": True}
    status = {f"{ex}/{st}": whole for ex in ("0", "1") for st in ("stdout", "stderr")}
    status["1/stderr"] = {"complete": False, "copied": 18, "total": 26000, "reason": REASON, "final": True}
    (out / "status.json").write_text(json.dumps(status))
    (run.run_dir / "driver.log").write_text("driver\n")

    base = live_server.url
    log_in_at(page, base + f"/runs/{run.pk}/")
    assert page.locator("#log-incomplete").is_hidden()  # the driver log is shown first
    page.select_option("#log-source", "1:stderr")
    page.wait_for_function("() => document.getElementById('log').textContent.includes('executor 1 stderr')")
    assert page.locator("#log-incomplete").is_visible()
    assert page.locator("#log-incomplete-reason").inner_text() == REASON
    assert page.locator("#log-source option[value='1:stderr']").inner_text() == "executor 1 stderr (incomplete)"
    screenshot("incomplete-log")
    page.select_option("#log-source", "0:stderr")
    assert page.locator("#log-incomplete").is_hidden()
    assert page.problems == []
