"""Every API endpoint, as every kind of caller: the owner's team reads everything; another team gets
404 (ids do not leak); no or a bad credential gets 401; viewers cannot submit, upload, edit or cancel."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from webapp.api import tokens
from webapp.datasets.models import Dataset
from webapp.runs.models import Run


def token_client(user):
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {tokens.issue(user)}")
    return c


@pytest.fixture
def run_a(alice, cluster, digits_dataset):
    user, team = alice
    run = Run.objects.create(
        team=team, created_by=user, name="secret-run-a", dataset=digits_dataset, template="cnn", cluster=cluster
    )
    d = run.run_dir
    (d / "executors" / "0").mkdir(parents=True)
    (d / "driver.log").write_text("driver says hi\n")
    (d / "executors" / "0" / "stderr").write_text("executor 0 says hi\n")
    (d / "model").mkdir()
    (d / "model" / "model.keras").write_bytes(b"model")
    (d / "predictions").mkdir()
    (d / "predictions" / "predictions.csv").write_text("row_id,label,prediction,confidence\n")
    return run


def read_urls(run):
    pk, ds = run.pk, run.dataset_id
    return [
        f"/api/runs/{pk}/",
        f"/api/runs/{pk}/metrics/",
        f"/api/runs/{pk}/logs/",
        f"/api/runs/{pk}/logs/driver/",
        f"/api/runs/{pk}/logs/0/stderr/",
        f"/api/runs/{pk}/predictions/",
        f"/api/runs/{pk}/artifacts/",
        f"/api/runs/{pk}/artifacts/model/",
        f"/api/runs/{pk}/artifacts/predictions.csv",
        f"/api/datasets/{ds}/",
    ]


LIST_URLS = ["/api/runs/", "/api/datasets/", "/api/clusters/", "/api/templates/", "/api/schema/"]


def write_requests(run, cluster):
    """(method, url, data, format) of every request that changes something."""
    submit = {"dataset": run.dataset_id, "template": "cnn", "cluster": cluster.pk}
    return [
        ("post", "/api/runs/", submit, "json"),
        ("patch", f"/api/runs/{run.pk}/", {"name": "hijacked", "starred": True}, "json"),
        ("post", f"/api/runs/{run.pk}/cancel/", None, "json"),
        ("post", "/api/datasets/", {"name": "sneaky", "file": SimpleUploadedFile("d.npz", b"PK\x03\x04")}, "multipart"),
    ]


def unchanged(run):
    run.refresh_from_db()
    assert run.name == "secret-run-a" and run.status == Run.Status.QUEUED and not run.starred
    assert Run.objects.count() == 1 and not Dataset.objects.filter(name="sneaky").exists()


@pytest.mark.django_db
def test_owner_team_reads_every_endpoint(alice, run_a):
    c = token_client(alice[0])
    for url in read_urls(run_a) + LIST_URLS:
        assert c.get(url).status_code == 200, url


@pytest.mark.django_db
def test_session_login_reads_too(client_a, run_a):
    for url in read_urls(run_a) + LIST_URLS:
        assert client_a.get(url).status_code == 200, url


@pytest.mark.django_db
def test_other_team_gets_404_everywhere(bob, run_a, cluster):
    c = token_client(bob[0])
    for url in read_urls(run_a):
        resp = c.get(url)
        assert resp.status_code == 404, url
        assert "secret-run-a" not in resp.content.decode()
    for method, url, data, fmt in write_requests(run_a, cluster):
        if url.endswith(f"/{run_a.pk}/") or "/cancel/" in url:
            resp = getattr(c, method)(url, data, format=fmt)
            assert resp.status_code == 404, url
    listed = c.get("/api/runs/").json()["results"]
    assert listed == [] and c.get("/api/datasets/").json()["results"] == []
    unchanged(run_a)


@pytest.mark.django_db
def test_anonymous_gets_401_everywhere(run_a, cluster):
    c = APIClient()
    for url in read_urls(run_a) + LIST_URLS:
        resp = c.get(url)
        assert resp.status_code == 401, url
        assert resp["WWW-Authenticate"] == "Token"
    for method, url, data, fmt in write_requests(run_a, cluster):
        assert getattr(c, method)(url, data, format=fmt).status_code == 401, url
    unchanged(run_a)


@pytest.mark.django_db
def test_bad_token_gets_401_everywhere(alice, run_a, cluster):
    tokens.issue(alice[0])
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION="Token sdk_guessing")
    for url in read_urls(run_a) + LIST_URLS:
        assert c.get(url).status_code == 401, url
    for method, url, data, fmt in write_requests(run_a, cluster):
        assert getattr(c, method)(url, data, format=fmt).status_code == 401, url
    unchanged(run_a)


@pytest.mark.django_db
def test_viewer_reads_but_cannot_submit_edit_cancel_or_upload(make_member, run_a, cluster):
    vera, _ = make_member("vera", "Team A", role="viewer")
    c = token_client(vera)
    for url in read_urls(run_a) + LIST_URLS:
        assert c.get(url).status_code == 200, url
    for method, url, data, fmt in write_requests(run_a, cluster):
        resp = getattr(c, method)(url, data, format=fmt)
        assert resp.status_code == 403, url
        assert "Viewers cannot" in resp.json()["detail"]
    assert c.get(f"/api/runs/{run_a.pk}/").json()["can_edit"] is False
    unchanged(run_a)


@pytest.mark.django_db
def test_member_cancels_team_runs_like_the_page_but_edits_only_their_own(make_member, run_a):
    carol, _ = make_member("carol", "Team A", role="member")
    c = token_client(carol)
    assert c.patch(f"/api/runs/{run_a.pk}/", {"name": "x"}, format="json").status_code == 403
    resp = c.post(f"/api/runs/{run_a.pk}/cancel/")
    assert resp.status_code == 200 and resp.json()["status"] == "CANCELLED"


@pytest.mark.django_db
def test_unsupported_methods_are_405(alice, run_a):
    c = token_client(alice[0])
    assert c.delete(f"/api/runs/{run_a.pk}/").status_code == 405
    assert c.put(f"/api/runs/{run_a.pk}/", {}, format="json").status_code == 405
    assert c.get(f"/api/runs/{run_a.pk}/cancel/").status_code == 405
    assert c.delete(f"/api/datasets/{run_a.dataset_id}/").status_code == 405
    assert Run.objects.filter(pk=run_a.pk).exists()
