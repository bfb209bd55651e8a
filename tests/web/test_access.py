"""Login required everywhere; teams see only their own datasets, runs, logs and files."""

import pytest
from django.urls import reverse

from webapp.runs.models import Run


@pytest.fixture
def run_a(alice, cluster, digits_dataset):
    user, team = alice
    run = Run.objects.create(
        team=team, created_by=user, name="secret-run-a", dataset=digits_dataset, template="cnn", cluster=cluster
    )
    # Files as a finished run would have them, so the owner's requests find something.
    (run.run_dir / "executors" / "0").mkdir(parents=True)
    (run.run_dir / "driver.log").write_text("driver says hi\n")
    (run.run_dir / "executors" / "0" / "stderr").write_text("executor 0 says hi\n")
    (run.run_dir / "model").mkdir()
    (run.run_dir / "model" / "model.keras").write_bytes(b"model")
    (run.run_dir / "predictions").mkdir()
    (run.run_dir / "predictions" / "predictions.csv").write_text("row_id,label,prediction,confidence\n")
    return run


def team_urls(run):
    ds = run.dataset.pk
    return [
        reverse("dataset_detail", args=[ds]),
        reverse("dataset_download", args=[ds]),
        reverse("run_detail", args=[run.pk]),
        reverse("run_live", args=[run.pk]),
        reverse("run_log_driver", args=[run.pk, "driver"]),
        reverse("run_log", args=[run.pk, "0", "stderr"]),
        reverse("run_predictions", args=[run.pk]),
        reverse("run_predictions_csv", args=[run.pk]),
        reverse("run_model", args=[run.pk]),
    ]


@pytest.mark.django_db
def test_owner_reaches_every_url(client_a, run_a):
    for url in team_urls(run_a):
        assert client_a.get(url).status_code == 200, url


@pytest.mark.django_db
def test_other_team_gets_404_on_every_url(client_b, run_a):
    for url in team_urls(run_a):
        assert client_b.get(url).status_code == 404, url


@pytest.mark.django_db
def test_other_team_does_not_see_the_run_or_dataset_in_lists(client_b, run_a):
    assert run_a.name not in client_b.get(reverse("dashboard")).content.decode()
    assert "digits" not in client_b.get(reverse("dataset_list")).content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["dashboard", "dataset_list", "dataset_upload", "run_new"])
def test_login_required(client, name):
    resp = client.get(reverse(name))
    assert resp.status_code == 302 and "/accounts/login/" in resp["Location"]


@pytest.mark.django_db
def test_anonymous_cannot_read_run_files(client, run_a):
    for url in team_urls(run_a):
        assert client.get(url).status_code == 302, url


@pytest.mark.django_db
def test_log_path_traversal_refused(client_a, run_a):
    assert client_a.get(f"/runs/{run_a.pk}/logs/../stderr/").status_code == 404
    assert client_a.get(f"/runs/{run_a.pk}/logs/0/../../spec/").status_code == 404
    assert client_a.get(f"/runs/{run_a.pk}/logs/0/environ/").status_code == 404


@pytest.mark.django_db
def test_cluster_admin_is_staff_only(client_a, admin_client):
    assert client_a.get("/admin/clusters/cluster/").status_code == 302  # to the admin login
    assert admin_client.get("/admin/clusters/cluster/").status_code == 200


@pytest.mark.django_db
def test_csrf_enforced_on_run_form(alice, cluster, digits_dataset):
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    c.force_login(alice[0])
    resp = c.post(reverse("run_new"), {"dataset": digits_dataset.pk, "template": "cnn"})
    assert resp.status_code == 403
    assert not Run.objects.exists()
