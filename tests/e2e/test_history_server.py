"""A finished run's Spark UI on the History Server, for real: a run on the loopback cluster writes its
event log to the cluster's event log directory; the run page links the driver's live UI while the run is
active, and once it has ended the History Server's REST API knows the application and the page links
to the application's page there."""

import json
import time
import urllib.request

import pytest
from django.urls import reverse

from tests.e2e.runs import submit, wait_terminal
from webapp.clusters.models import Cluster
from webapp.runs.models import Run

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.django_db(transaction=True)]


def get_json(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return None


def test_a_finished_run_links_to_its_application_on_the_history_server(
    owner, digits_dataset, loopback_cluster, history_server, celery_worker
):
    Cluster.objects.filter(pk=loopback_cluster.pk).update(
        event_log_dir=history_server.event_log_dir.as_uri(), history_url=history_server.history_url
    )
    run = submit(owner, digits_dataset, loopback_cluster, hp_cnn_epochs="1")

    # While it runs: the driver's own UI.
    deadline = time.time() + 300
    while True:
        run.refresh_from_db()
        if run.status == Run.Status.RUNNING and run.spark_ui_url:
            break
        assert not run.is_terminal and time.time() < deadline, (run.status, run.status_reason)
        time.sleep(0.3)
    live = owner.get(reverse("run_live", args=[run.pk])).json()
    assert (live["ui_url"], live["ui_kind"]) == (run.spark_ui_url, "live")

    run, _ = wait_terminal(run.pk, 420, celery_worker)
    assert run.status == Run.Status.SUCCEEDED, f"{run.status_reason}\n{run.status_detail}"
    app_id = run.spark_app_id
    # Its event log (a file, or with Spark 4's rolling logs a directory eventlog_v2_<app id>/).
    logs = [p.name for p in history_server.event_log_dir.iterdir()]
    assert app_id.startswith("app-") and any(name.endswith(app_id) for name in logs), logs

    # The History Server finds the finished log on its next scan (every 2 s here).
    api = f"{history_server.history_url}/api/v1/applications/{app_id}"
    deadline = time.time() + 60
    while not ((app := get_json(api)) and app.get("attempts") and app["attempts"][0].get("completed")):
        assert time.time() < deadline, f"the History Server does not know {app_id} as completed: {app}"
        time.sleep(1)
    assert app["id"] == app_id and app["name"] == f"sparkdeck-run-{run.pk}"

    url = f"{history_server.history_url}/history/{app_id}/"
    page = owner.get(run.get_absolute_url()).content.decode()
    assert f'href="{url}"' in page and f'href="{run.spark_ui_url}"' not in page
    live = owner.get(reverse("run_live", args=[run.pk])).json()
    assert (live["ui_url"], live["ui_kind"]) == (url, "history")
    with urllib.request.urlopen(url, timeout=30) as resp:  # the application's UI, replayed from its log
        assert resp.status == 200 and f"sparkdeck-run-{run.pk}" in resp.read().decode(errors="replace")
