"""Cancel asks first, in a real browser: dismissed, the run goes on; accepted, it is cancelled."""

import pytest

from tests.browser.login import log_in_at
from webapp.datasets.models import Dataset
from webapp.runs.models import Run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_cancel_asks_for_confirmation(live_server, alice, cluster, page):
    user, team = alice
    dataset = Dataset.objects.create(
        team=team, name="d", source_format="npz", original_name="d.npz", status="READY", shape=[8, 8, 1]
    )
    run = Run.objects.create(
        team=team, created_by=user, name="long one", dataset=dataset, template="cnn", cluster=cluster,
        status=Run.Status.QUEUED,
    )  # fmt: skip
    base = live_server.url
    log_in_at(page, base + f"/runs/{run.pk}/")

    asked = []

    def answer(accept):
        def on_dialog(dialog):
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        return on_dialog

    page.once("dialog", answer(False))
    page.click("#cancel-form button")
    page.wait_for_timeout(500)
    assert asked == ["Cancel run long one? Its driver and executors are stopped; logs and metrics so far are kept."]
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED

    page.once("dialog", answer(True))
    with page.expect_navigation():
        page.click("#cancel-form button")
    run.refresh_from_db()
    assert len(asked) == 2 and run.status == Run.Status.CANCELLED
    assert page.problems == []
