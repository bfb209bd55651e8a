"""A new user's walk in a real browser through the real stack (PostgreSQL, Celery on Redis, the loopback
Spark cluster, its History Server): upload scikit-learn's breast-cancer table as a CSV, see its column
statistics, train the MLP from the form, watch the validation curves on the run page's chart, read the
held-out loss, and follow the Spark UI link: the driver's live UI while the run is active, the History
Server's page for the application (found there from the event log) once it has ended; then the same run
page at a phone's width, with no sideways scrolling.

With SPARKDECK_SHOTS set, phone-walk-run.png (the phone run page) is also written to that folder."""

import json
import os
import re
import time
import urllib.request
from pathlib import Path

import pytest
from django.urls import reverse

from tests.browser import conftest as browser
from tests.browser.login import log_in_at
from tests.e2e.runs import wait_dataset_ready, wait_terminal
from webapp.clusters.models import Cluster
from webapp.datasets.ingest.sample_tables import write_table_csv
from webapp.datasets.models import Dataset
from webapp.runs.models import MetricPoint, Run

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The browser fixtures, beside the e2e stack's (pytest looks fixtures up by name in the module).
chromium, page, phone_page, screenshot = browser.chromium, browser.page, browser.phone_page, browser.screenshot
PHONE = browser.PHONE
VAL_SERIES = (
    "() => { const c = Chart.getChart(document.querySelector('#chart'));"
    " return c && c.data.datasets.some(d => d.label.startsWith('val_accuracy') && d.data.length >= %d); }"
)


def get_json(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return None


def test_table_upload_mlp_run_validation_curves_and_history_link(
    live_server,
    owner,
    loopback_cluster,
    history_server,
    celery_worker,
    page,
    phone_page,
    screenshot,
    tmp_path,
):
    Cluster.objects.filter(pk=loopback_cluster.pk).update(
        event_log_dir=history_server.event_log_dir.as_uri(), history_url=history_server.history_url
    )
    base = live_server.url
    csv_path = write_table_csv(tmp_path / "breast-cancer.csv", "breast-cancer")

    # Upload: a CSV with a header and no image shape becomes a table dataset.
    log_in_at(page, base + reverse("dataset_upload"))
    page.fill("#id_name", "breast-cancer")
    page.set_input_files("#id_file", str(csv_path))
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/datasets/\d+/$"))
    ds = wait_dataset_ready(Dataset.objects.get(name="breast-cancer").pk, 120, celery_worker)
    assert ds.layout == "table" and list(ds.shape) == [30]
    page.reload()
    page.wait_for_selector("text=mean radius")  # the column statistics: names from the header
    screenshot("walk-table-dataset")

    # The CNN refuses the table, naming the MLP.
    resp = owner.post(reverse("run_new"), {"dataset": ds.pk, "template": "cnn", "input_mode": "tensorflow",
                                           "cluster": loopback_cluster.pk, "num_executors": 2, "executor_cores": 1,
                                           "executor_memory_mb": 1536})  # fmt: skip
    assert resp.status_code == 400 and "MLP" in resp.content.decode()

    # The MLP from the form: the only enabled cluster is preselected.
    page.goto(base + reverse("run_new"))
    page.select_option("#id_dataset", str(ds.pk))
    page.select_option("#id_template", "mlp")
    page.fill("#id_hp_mlp_epochs", "20")
    page.fill("#id_executor_memory_mb", "1536")
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/runs/\d+/$"))
    run = Run.objects.latest("id")
    assert run.template == "mlp" and run.hyperparameters["validation_split"] == 0.1

    # While it runs, the Spark UI link is the driver's own UI.
    deadline = time.time() + 300
    while True:
        run.refresh_from_db()
        if run.status == Run.Status.RUNNING and run.spark_ui_url:
            break
        assert not run.is_terminal and time.time() < deadline, (run.status, run.status_reason)
        time.sleep(0.3)
    live = owner.get(reverse("run_live", args=[run.pk])).json()
    assert (live["ui_url"], live["ui_kind"]) == (run.spark_ui_url, "live")

    # The validation curves appear on the chart while it trains, beside the training curves.
    page.wait_for_function(VAL_SERIES % 1, timeout=300_000)
    run, _ = wait_terminal(run.pk, 420, celery_worker)
    assert run.status == Run.Status.SUCCEEDED, f"{run.status_reason}\n{run.status_detail}"
    assert run.test_accuracy >= 0.93, run.test_accuracy
    assert run.test_loss is not None and 0 < run.test_loss < 0.5, run.test_loss
    val = MetricPoint.objects.filter(run=run, name="val_accuracy").order_by("epoch")
    assert [p.epoch for p in val] == list(range(1, 21)) and {p.executor for p in val} == {"0"}
    assert val.last().value >= 0.9 and len(run.result["history"]["val_loss"]) == 20

    # Its event log (a file, or with Spark 4's rolling logs a directory eventlog_v2_<app id>/), which the
    # History Server finds on its next scan (every 2 s here).
    app_id = run.spark_app_id
    logs = [p.name for p in history_server.event_log_dir.iterdir()]
    assert app_id.startswith("app-") and any(name.endswith(app_id) for name in logs), logs
    api = f"{history_server.history_url}/api/v1/applications/{app_id}"
    deadline = time.time() + 60
    while not ((app := get_json(api)) and app.get("attempts") and app["attempts"][0].get("completed")):
        assert time.time() < deadline, f"the History Server does not know {app_id} as completed: {app}"
        time.sleep(1)
    assert app["id"] == app_id and app["name"] == f"sparkdeck-run-{run.pk}"

    # After the run, without a reload: the held-out loss and the History Server's page for the app.
    history = f"{history_server.history_url}/history/{run.spark_app_id}/"
    page.wait_for_selector(f'a[href="{history}"]', timeout=30_000)
    page.wait_for_function(
        f"() => document.getElementById('test-loss').textContent.trim() === '{run.test_loss:.4f}'", timeout=30_000
    )
    labels = page.evaluate("() => Chart.getChart(document.querySelector('#chart')).data.datasets.map(d => d.label)")
    assert {"val_loss (validation)", "val_accuracy (validation)"} <= set(labels), labels
    assert any(label.startswith("epoch_loss") for label in labels)
    screenshot("walk-mlp-run")
    html = owner.get(run.get_absolute_url()).content.decode()
    assert f'href="{history}"' in html and f'href="{run.spark_ui_url}"' not in html
    live = owner.get(reverse("run_live", args=[run.pk])).json()
    assert (live["ui_url"], live["ui_kind"]) == (history, "history")
    with urllib.request.urlopen(history, timeout=30) as resp:  # the application's UI, replayed from its log
        assert resp.status == 200 and f"sparkdeck-run-{run.pk}" in resp.read().decode(errors="replace")

    # The same run page on a phone: everything there, nothing past the right edge.
    log_in_at(phone_page, base + run.get_absolute_url())
    phone_page.wait_for_function(VAL_SERIES % 20)
    phone_page.wait_for_selector(f'a[href="{history}"]')
    width = phone_page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, f"the phone run page is {width} px wide"
    assert phone_page.locator("#chart").bounding_box()["width"] <= PHONE["width"]
    if shots := os.environ.get("SPARKDECK_SHOTS"):
        Path(shots).mkdir(parents=True, exist_ok=True)
        phone_page.screenshot(path=str(Path(shots) / "phone-walk-run.png"), full_page=True, animations="disabled")
    assert page.problems == [] and phone_page.problems == []
