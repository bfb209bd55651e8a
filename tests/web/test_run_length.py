"""A run's length as every page shows it (Run.training_length): epochs, or for a transfer-learning run
with Spark MLlib's LogisticRegression head its iterations (max_iter until result.json has the fit's
count); and the times and master link live.json carries for the run page to update."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from webapp.runs.models import Run
from webapp.runs.summary import summarize

pytestmark = pytest.mark.django_db

LOGREG = {"base": "app:MobileNetV2", "head": "logreg", "max_iter": 100, "epochs": 15, "batch_size": 32}


def dd(html: str, ident: str) -> str:
    m = re.search(rf'<dd id="{ident}">(.*?)</dd>', html, re.S)
    assert m, f"no dd#{ident}"
    return m.group(1).strip()


def epochs_cell(html: str, run) -> str:
    row = re.search(rf'<tr[^>]*data-run="{run.pk}".*?</tr>', html, re.S).group(0)
    return re.search(r'<td class="c-epochs num">(.*?)</td>', row).group(1)


def test_logreg_head_shows_iterations_everywhere(client_a, make_run):
    cnn = make_run("cnn", epochs=3)

    def featurizer(name, hp):
        return Run.objects.create(
            team=cnn.team, created_by=cnn.created_by, dataset=cnn.dataset, cluster=cnn.cluster,
            name=name, template="featurizer", hyperparameters=hp,
        )  # fmt: skip

    lr = featurizer("lr", dict(LOGREG))
    dense = featurizer("dense", {**LOGREG, "head": "dense"})
    assert (lr.epochs, dense.epochs, cnn.epochs) == (None, 15, 3)  # the table's column: no epochs for logreg

    live = client_a.get(reverse("run_live", args=[lr.pk])).json()
    assert live["length"] == {"count": 100, "unit": "iterations", "actual": False, "text": "at most 100 iterations"}
    assert live["epochs"] is None  # the page's step estimate has no epochs to count
    assert dd(client_a.get(lr.get_absolute_url()).content.decode(), "length") == "at most 100 iterations"
    assert dd(client_a.get(dense.get_absolute_url()).content.decode(), "length") == "15 epochs"

    # Finished: the fit's own count from result.json.
    Run.objects.filter(pk=lr.pk).update(result={"head": "logreg", "iterations": 37})
    lr.refresh_from_db()
    summarize(lr)
    assert lr.epochs is None
    assert client_a.get(reverse("run_live", args=[lr.pk])).json()["length"]["text"] == "37 iterations"
    assert dd(client_a.get(lr.get_absolute_url()).content.decode(), "length") == "37 iterations"

    table = client_a.get(reverse("dashboard") + "?cols=name,epochs").content.decode()
    assert [epochs_cell(table, r) for r in (lr, dense, cnn)] == ["37 iter.", "15", "3"]

    page = client_a.get(reverse("run_compare") + f"?ids={lr.pk},{dense.pk}").content.decode()
    row = re.search(r'<tr[^>]*data-key="hp:epochs".*?</tr>', page, re.S).group(0)
    assert "epochs / iterations" in row
    assert re.findall(r"<td[^>]*>\s*(.*?)\s*</td>", row, re.S) == ["37 iter.", "15"]


def test_live_json_carries_the_times_and_master_link_the_page_shows(client_a, make_run):
    run = make_run("r", epochs=3)
    live = client_a.get(reverse("run_live", args=[run.pk])).json()
    assert (live["submitted_at"], live["finished_at"], live["master_app_url"]) == ("", "", "")

    now = timezone.now()
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.SUCCEEDED,
        submitted_at=now - dt.timedelta(minutes=3),
        finished_at=now,
        spark_app_id="app-20260101000000-0007",
    )
    live = client_a.get(reverse("run_live", args=[run.pk])).json()
    html = client_a.get(run.get_absolute_url()).content.decode()
    # The same text the template prints, so the page reads the same before and after a reload.
    assert live["submitted_at"] == dd(html, "submitted") != "—"
    assert live["finished_at"] == dd(html, "finished") != "—"
    assert live["master_app_url"] == f"{run.cluster.rest_url}/app/?appId=app-20260101000000-0007"
    assert f'href="{live["master_app_url"]}"' in dd(html, "master-app")
