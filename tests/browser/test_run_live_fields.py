"""The run page follows a run's submission and end while it stays open (live.json, static/js/run.js):
Submitted, Finished, the master's app link and, for a LogisticRegression head, the iterations instead
of epochs. The run's row is changed in the database as the lifecycle would; no cluster runs."""

import datetime as dt

import pytest
from django.utils import timezone

from tests.browser.login import log_in_at
from webapp.runs.models import Run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_submitted_finished_master_link_and_iterations_follow_the_run(
    live_server, alice, cluster, digits_dataset, page
):
    user, team = alice
    run = Run.objects.create(
        team=team, created_by=user, name="lr", dataset=digits_dataset, template="featurizer", cluster=cluster,
        hyperparameters={"base": "app:MobileNetV2", "head": "logreg", "max_iter": 100, "epochs": 15},
    )  # fmt: skip
    url = f"{live_server.url}/runs/{run.pk}/"
    log_in_at(page, url)
    for ident in ("submitted", "finished", "master-app"):
        assert page.locator(f"#{ident}").inner_text() == "—"
    assert page.locator("#length").inner_text() == "at most 100 iterations"

    now = timezone.now()
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.RUNNING, submitted_at=now - dt.timedelta(seconds=30), started_at=now,
        spark_app_id="app-20260101000000-0042",
    )  # fmt: skip
    page.wait_for_selector("#master-app a")
    link = page.locator("#master-app a")
    assert link.get_attribute("href") == f"{cluster.rest_url}/app/?appId=app-20260101000000-0042"
    assert link.inner_text() == "app-20260101000000-0042"
    assert page.locator("#submitted").inner_text() != "—"
    assert page.locator("#finished").inner_text() == "—"
    assert page.locator("#progress-text").inner_text() == "at most 100 iterations (Spark MLlib)"

    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.SUCCEEDED, finished_at=timezone.now(), result={"head": "logreg", "iterations": 37}
    )
    page.wait_for_function("() => document.getElementById('finished').textContent !== '—'")
    assert page.locator("#progress-text").inner_text() == "done: 37 iterations"
    assert page.locator("#length").inner_text() == "37 iterations"
    # What the page shows live is what a reload renders.
    shown = {i: page.locator(f"#{i}").inner_text() for i in ("submitted", "finished", "master-app", "length")}
    page.reload()
    assert {i: page.locator(f"#{i}").inner_text() for i in shown} == shown
    page.wait_for_function("() => document.getElementById('progress-text').textContent === 'done: 37 iterations'")
    assert page.problems == [], page.problems
