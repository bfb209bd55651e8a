import json

import pytest

from webapp.runs.models import MetricPoint, Run


@pytest.fixture
def run(alice, cluster, digits_dataset):
    user, team = alice
    r = Run.objects.create(team=team, created_by=user, dataset=digits_dataset, template="cnn", cluster=cluster)
    r.transition(Run.Status.SUBMITTED)
    return r


def post(client, run, payload, token=None):
    return client.post(
        f"/ingest/runs/{run.pk}/metrics",
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token or run.ingest_token}",
    )


POINTS = {"executor": "1", "points": [{"name": "loss", "value": 2.1, "step": 5, "epoch": 0, "ts": 1.0}]}


@pytest.mark.django_db
def test_ingest_stores_points_with_the_run_token(client, run):
    resp = post(client, run, POINTS)
    assert resp.status_code == 200 and resp.json() == {"stored": 1}
    p = MetricPoint.objects.get(run=run)
    assert (p.name, p.executor, p.step, p.value) == ("loss", "1", 5, 2.1)


@pytest.mark.django_db
def test_ingest_refuses_a_wrong_token_or_another_runs_token(client, run, alice, cluster, digits_dataset):
    other = Run.objects.create(team=alice[1], dataset=digits_dataset, template="cnn", cluster=cluster)
    assert post(client, run, POINTS, token="nope").status_code == 403
    assert post(client, run, POINTS, token=other.ingest_token).status_code == 403
    assert not MetricPoint.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [
        {"points": "x"},
        {"points": [{"name": "loss", "value": "abc", "step": 1}]},
        {"points": [{"name": "loss", "value": 1.0}]},
        {"points": [{"name": "rm -rf", "value": 1.0, "step": 1}]},
        {"points": [{"name": "loss", "value": 1.0, "step": 1}, {"name": "loss", "step": 2}]},
    ],
)
def test_bad_batches_are_refused_whole(client, run, payload):
    resp = post(client, run, payload)
    assert resp.status_code == 400 and resp.json()["error"]
    assert not MetricPoint.objects.exists()


@pytest.mark.django_db
def test_no_metrics_after_the_run_ended(client, run):
    run.transition(Run.Status.FAILED, reason="x")
    assert post(client, run, POINTS).status_code == 400


@pytest.mark.django_db
def test_live_endpoint_returns_points_after_an_id(client_a, run):
    post(client_a, run, POINTS)
    data = client_a.get(f"/runs/{run.pk}/live.json?since=0").json()
    assert [p["value"] for p in data["points"]] == [2.1]
    last = data["points"][-1]["id"]
    assert client_a.get(f"/runs/{run.pk}/live.json?since={last}").json()["points"] == []


@pytest.mark.django_db
def test_live_log_of_an_active_run_is_followed_first(client_a, run, monkeypatch):
    from webapp.runs import lifecycle

    asked = []

    class Following:
        def follow_log(self, handle, executor, stream):
            asked.append((handle["run_dir"], executor, stream))
            path = run.run_dir / "executors" / executor / stream
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("fetched just now\n")

    monkeypatch.setattr(lifecycle, "backend_for", lambda cluster: Following())
    run.backend_handle = {"run_dir": str(run.run_dir), "app_id": "app-1"}
    run.save(update_fields=["backend_handle"])
    url = f"/runs/{run.pk}/live.json?log=1:stderr&off:1:stderr=0&log=driver"
    data = client_a.get(url).json()
    assert asked == [(str(run.run_dir), "1", "stderr")]  # the executor log, not the driver's own file
    assert data["logs"]["1:stderr"]["text"] == "fetched just now\n"

    client_a.get(f"/runs/{run.pk}/live.json?log=..:stderr")  # a bad name reaches no backend
    run.transition(Run.Status.FAILED, reason="x")
    client_a.get(url)  # ended: the reconciler's final copy is all there is
    assert len(asked) == 1
