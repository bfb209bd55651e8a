"""The REST API (webapp/api): tokens, runs (list, submit, edit, cancel, metrics, logs, predictions,
artifacts), datasets (list, detail, upload), clusters, templates and the OpenAPI schema."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from webapp.api import tokens
from webapp.api.models import ApiToken
from webapp.datasets.models import Dataset
from webapp.runs.models import MetricPoint, Run

BAD_DIR = Path(__file__).resolve().parents[1] / "data" / "bad"


def api(user=None, key=None):
    c = APIClient()
    if key:
        c.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    elif user is not None:
        c.force_authenticate(user)
    return c


def token_client(user):
    return api(key=tokens.issue(user))


def make_run(team, user, dataset, cluster, **fields):
    fields.setdefault("name", "a run")
    fields.setdefault("template", "cnn")
    fields.setdefault("hyperparameters", {"epochs": 3, "batch_size": 32, "learning_rate": 0.001})
    return Run.objects.create(team=team, created_by=user, dataset=dataset, cluster=cluster, **fields)


def submission(ds, cl, **over):
    data = {
        "dataset": ds.pk,
        "template": "cnn",
        "cluster": cl.pk,
        "num_executors": 2,
        "executor_cores": 1,
        "executor_memory_mb": 2048,
        "hyperparameters": {"epochs": 4, "batch_size": 32, "learning_rate": 0.002},
    }
    data.update(over)
    return data


@pytest.fixture
def run_a(alice, cluster, digits_dataset):
    user, team = alice
    return make_run(team, user, digits_dataset, cluster, name="alpha")


# ---------------------------------------------------------------- tokens


@pytest.mark.django_db
def test_token_authenticates_and_is_stored_hashed(alice, run_a):
    user, _ = alice
    key = tokens.issue(user)
    token = ApiToken.objects.get(user=user)
    assert key.startswith("sdk_") and token.digest != key and key not in token.digest
    assert token.prefix == key[:10] and len(token.digest) == 64
    resp = api(key=key).get("/api/runs/")
    assert resp.status_code == 200 and [r["id"] for r in resp.json()["results"]] == [run_a.pk]
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert bearer.get(f"/api/runs/{run_a.pk}/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    ["Token sdk_not-a-real-token", "Token", "Token a b", "Bearer wrong", "Token " + "x" * 500, "Token sdk_ünï"],
)
def test_bad_token_is_refused_with_401(alice, header):
    tokens.issue(alice[0])
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=header)
    resp = c.get("/api/runs/")
    assert resp.status_code == 401
    assert resp["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
def test_rotating_or_revoking_stops_the_old_token(alice):
    user, _ = alice
    old = tokens.issue(user)
    new = tokens.issue(user)
    assert api(key=old).get("/api/runs/").status_code == 401
    assert api(key=new).get("/api/runs/").status_code == 200
    assert ApiToken.objects.filter(user=user).count() == 1
    tokens.revoke(user)
    assert api(key=new).get("/api/runs/").status_code == 401


@pytest.mark.django_db
def test_inactive_users_token_is_refused(alice):
    user, _ = alice
    key = tokens.issue(user)
    user.is_active = False
    user.save()
    assert api(key=key).get("/api/runs/").status_code == 401


@pytest.mark.django_db
def test_token_page_makes_rotates_and_revokes(client_a, alice):
    page = client_a.get("/api/token/")
    assert page.status_code == 200 and "no API token yet" in page.content.decode()
    resp = client_a.post("/api/token/", {"action": "issue"})
    key = resp.context["key"]
    assert resp.status_code == 200 and key in resp.content.decode() and resp["Cache-Control"] == "no-store"
    assert api(key=key).get("/api/runs/").status_code == 200
    again = client_a.get("/api/token/").content.decode()
    assert key not in again and key[:10] in again  # shown once; then only its prefix
    rotated = client_a.post("/api/token/", {"action": "issue"}).context["key"]
    assert rotated != key and api(key=key).get("/api/runs/").status_code == 401
    assert client_a.post("/api/token/", {"action": "revoke"}).status_code == 302
    assert api(key=rotated).get("/api/runs/").status_code == 401 and not ApiToken.objects.exists()


@pytest.mark.django_db
def test_token_page_needs_a_login(client):
    resp = client.get("/api/token/")
    assert resp.status_code == 302 and "/accounts/login/" in resp["Location"]
    assert client.post("/api/token/", {"action": "issue"}).status_code == 302
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_session_requests_need_csrf_token_requests_do_not(alice, cluster, digits_dataset):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice[0])
    assert browser.get("/api/runs/").status_code == 200  # session auth for reading
    resp = browser.post("/api/runs/", submission(digits_dataset, cluster), content_type="application/json")
    assert resp.status_code == 403 and "CSRF" in resp.json()["detail"]
    assert not Run.objects.exists()
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {tokens.issue(alice[0])}")
    resp = client.post("/api/runs/", submission(digits_dataset, cluster), format="json")
    assert resp.status_code == 201, resp.content


# ---------------------------------------------------------------- run list


@pytest.mark.django_db
def test_run_list_filters_sorts_and_pages_like_the_table(alice, bob, cluster, digits_dataset):
    user, team = alice
    runs = [
        make_run(team, user, digits_dataset, cluster, name=f"run {i}", status=st, test_accuracy=acc)
        for i, (st, acc) in enumerate(
            [("SUCCEEDED", 0.9), ("FAILED", None), ("SUCCEEDED", 0.97), ("QUEUED", None), ("SUCCEEDED", 0.5)]
        )
    ]
    c = token_client(user)
    got = c.get("/api/runs/", {"status": "succeeded", "sort": "-test_accuracy"}).json()
    assert [r["test_accuracy"] for r in got["results"]] == [0.97, 0.9, 0.5]
    assert got["sort"] == "-test_accuracy" and got["next_cursor"] is None
    got = c.get("/api/runs/", {"expr": "accuracy > 0.8"}).json()
    assert {r["name"] for r in got["results"]} == {"run 0", "run 2"}
    # Keyset paging: two at a time, following `next`.
    seen, url = [], "/api/runs/?size=2"
    while url:
        page = c.get(url).json()
        assert len(page["results"]) <= 2
        seen += [r["id"] for r in page["results"]]
        url = page["next"]
    assert seen == [r.pk for r in reversed(runs)]  # newest first
    first = c.get("/api/runs/", {"size": 2}).json()
    row = first["results"][0]
    assert row["team"]["slug"] == team.slug and row["dataset"]["name"] == "digits" and row["created_by"] == "alice"
    assert "hyperparameters" not in row and "ingest_token" not in row


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params,field",
    [
        ({"status": "sleeping"}, "status"),
        ({"expr": "accuracy >"}, "expr"),
        ({"expr": "__import__('os')"}, "expr"),
        ({"sort": "password"}, "sort"),
        ({"cursor": "garbage!!"}, "cursor"),
        ({"size": "0"}, "size"),
        ({"size": "abc"}, "size"),
        ({"since": "yesterday"}, "since"),
        ({"dataset": "x"}, "dataset"),
        ({"team": "no-such-team"}, "team"),
    ],
)
def test_run_list_bad_filters_are_400_with_the_parameter(alice, run_a, params, field):
    resp = token_client(alice[0]).get("/api/runs/", params)
    assert resp.status_code == 400, resp.content
    assert field in resp.json() and resp.json()[field][0]


@pytest.mark.django_db
def test_run_list_team_parameter(alice, bob, cluster, digits_dataset, run_a, make_member):
    user, team = alice
    # alice also in Team B: both teams' runs listed; team=<slug or id> narrows to one.
    from webapp.accounts.models import Membership

    b_user, b_team = bob
    Membership.objects.create(team=b_team, user=user, role="viewer")
    b_ds = Dataset.objects.create(team=b_team, name="b-data", source_format="npz", original_name="b.npz")
    run_b = make_run(b_team, b_user, b_ds, cluster, name="beta")
    c = token_client(user)
    assert {r["id"] for r in c.get("/api/runs/").json()["results"]} == {run_a.pk, run_b.pk}
    assert [r["id"] for r in c.get("/api/runs/", {"team": b_team.slug}).json()["results"]] == [run_b.pk]
    assert [r["id"] for r in c.get("/api/runs/", {"team": team.pk}).json()["results"]] == [run_a.pk]
    # bob is not in Team A
    resp = token_client(b_user).get("/api/runs/", {"team": team.slug})
    assert resp.status_code == 400 and "team" in resp.json()


@pytest.mark.django_db
def test_run_detail_shows_everything_but_secrets(alice, run_a):
    body = token_client(alice[0]).get(f"/api/runs/{run_a.pk}/").json()
    assert body["id"] == run_a.pk and body["status"] == "QUEUED" and body["queue_position"] == 1
    assert body["hyperparameters"]["epochs"] == 3 and body["can_edit"] is True
    assert body["links"]["metrics"].endswith(f"/api/runs/{run_a.pk}/metrics/")
    assert "ingest_token" not in body and "backend_handle" not in body
    assert run_a.ingest_token not in json.dumps(body)


# ---------------------------------------------------------------- submit


@pytest.mark.django_db
def test_submit_happy_path_queues_the_run_on_commit(alice, digits_dataset, cluster, django_capture_on_commit_callbacks):
    c = token_client(alice[0])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resp = c.post("/api/runs/", submission(digits_dataset, cluster, name="via api"), format="json")
    assert resp.status_code == 201, resp.content
    run = Run.objects.get()
    body = resp.json()
    assert body["id"] == run.pk and resp["Location"] == body["url"]
    assert run.status == Run.Status.QUEUED and run.name == "via api" and run.created_by == alice[0]
    assert run.team == alice[1] and run.hyperparameters["epochs"] == 4 and run.hyperparameters["dropout"] == 0.4
    assert len(callbacks) == 1  # submit_run.delay, after the row is committed


@pytest.mark.django_db
def test_submit_defaults_resources_like_the_form(alice, digits_dataset, cluster, django_capture_on_commit_callbacks):
    data = {"dataset": digits_dataset.pk, "template": "cnn", "cluster": cluster.pk}
    with django_capture_on_commit_callbacks(execute=False):
        resp = token_client(alice[0]).post("/api/runs/", data, format="json")
    assert resp.status_code == 201, resp.content
    run = Run.objects.get()
    assert (run.num_executors, run.executor_cores, run.executor_memory_mb, run.gpus_per_executor) == (2, 1, 2048, 0)
    assert run.name == "CNN on digits" or run.name.endswith("on digits")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "over,field,message",
    [
        ({"hyperparameters": {"epochs": 0}}, "epochs", "between"),
        ({"hyperparameters": {"epochs": "abc"}}, "epochs", "integer"),
        ({"hyperparameters": {"epochs": True}}, "epochs", "integer"),
        ({"hyperparameters": {"learning_rate": 5}}, "learning_rate", "between"),
        ({"hyperparameters": {"colour": "red"}}, "colour", "unknown hyperparameter"),
        ({"hyperparameters": "epochs=3"}, "hyperparameters", "dictionary"),
        ({"num_executors": 3}, "num_executors", "at most 2 executors"),
        ({"executor_cores": 4}, "executor_cores", "at most 1 cores"),
        ({"executor_memory_mb": 999999}, "executor_memory_mb", "at most 3072 MB"),
        ({"executor_memory_mb": 10**12}, "executor_memory_mb", "less than or equal"),
        ({"num_executors": 0}, "num_executors", "greater than or equal"),
        ({"num_executors": "two"}, "num_executors", "valid integer"),
        ({"gpus_per_executor": 1}, "gpus_per_executor", "no GPUs"),
        ({"template": "gpt"}, "template", "gpt"),
        ({"input_mode": "carrier-pigeon"}, "input_mode", "valid choice"),
        ({"dataset": 999999}, "dataset", "No such dataset"),
        ({"dataset": "x"}, "dataset", "valid integer"),
        ({"cluster": 999999}, "cluster", "No such cluster"),
        ({"template": "featurizer", "hyperparameters": {}}, "base", "required"),
        ({"name": "x" * 300}, "name", "200"),
    ],
)
def test_submit_bad_values_400_per_field_and_nothing_stored(alice, digits_dataset, cluster, over, field, message):
    resp = token_client(alice[0]).post("/api/runs/", submission(digits_dataset, cluster, **over), format="json")
    assert resp.status_code == 400, resp.content
    errors = resp.json()
    assert field in errors, errors
    assert isinstance(errors[field], list) and message in errors[field][0]
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_submit_to_an_unreachable_cluster_says_so(alice, digits_dataset, cluster, fake_capacity):
    fake_capacity.reachable = False
    fake_capacity.error = "Connection refused."
    resp = token_client(alice[0]).post("/api/runs/", submission(digits_dataset, cluster), format="json")
    assert resp.status_code == 400
    assert "not reachable" in resp.json()["cluster"][0] and "Connection refused" in resp.json()["cluster"][0]
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_submit_bigger_than_the_idle_cluster_is_refused(alice, digits_dataset, cluster, fake_capacity):
    from tests.conftest import idle_workers

    fake_capacity.workers = idle_workers(n=1)
    resp = token_client(alice[0]).post("/api/runs/", submission(digits_dataset, cluster), format="json")
    assert resp.status_code == 400 and "even when idle" in resp.json()["num_executors"][0]
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_submit_with_another_teams_dataset_is_400_not_a_leak(alice, bob, cluster, digits_dataset):
    resp = token_client(bob[0]).post("/api/runs/", submission(digits_dataset, cluster), format="json")
    assert resp.status_code == 400 and resp.json()["dataset"] == ["No such dataset."]
    assert not Run.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body,content_type",
    [("{not json", "application/json"), ("[1, 2]", "application/json"), ("null", "application/json")],
)
def test_submit_malformed_body_is_400(alice, cluster, digits_dataset, body, content_type):
    resp = token_client(alice[0]).generic("POST", "/api/runs/", body, content_type=content_type)
    assert resp.status_code == 400
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_submit_as_form_data_is_refused_as_unsupported(alice, cluster, digits_dataset):
    resp = token_client(alice[0]).post("/api/runs/", {"dataset": digits_dataset.pk})
    assert resp.status_code == 415


@pytest.mark.django_db
def test_submit_picks_the_team(alice, bob, cluster, digits_dataset, django_capture_on_commit_callbacks):
    from webapp.accounts.models import Membership

    user, team = alice
    Membership.objects.create(team=bob[1], user=user, role="member")
    c = token_client(user)
    resp = c.post("/api/runs/", submission(digits_dataset, cluster), format="json")
    assert resp.status_code == 400 and "several teams" in resp.json()["team"][0]
    with django_capture_on_commit_callbacks(execute=False):
        resp = c.post("/api/runs/", submission(digits_dataset, cluster, team=team.slug), format="json")
    assert resp.status_code == 201 and Run.objects.get().team == team
    resp = c.post("/api/runs/", submission(digits_dataset, cluster, team=bob[1].pk), format="json")
    assert resp.status_code == 400 and resp.json()["dataset"] == ["No such dataset."]  # Team A's dataset
    resp = c.post("/api/runs/", submission(digits_dataset, cluster, team="nope"), format="json")
    assert resp.status_code == 400 and "team" in resp.json()


# ---------------------------------------------------------------- edit and cancel


@pytest.mark.django_db
def test_edit_name_tags_notes_star_archive(alice, run_a):
    c = token_client(alice[0])
    resp = c.patch(
        f"/api/runs/{run_a.pk}/",
        {"name": "renamed", "tags": ["Baseline", "digits"], "notes": "first try", "starred": True},
        format="json",
    )
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert (body["name"], body["tags"], body["notes"], body["starred"]) == (
        "renamed",
        ["baseline", "digits"],
        "first try",
        True,
    )
    run_a.refresh_from_db()
    assert run_a.tags == "baseline digits" and run_a.starred
    assert c.patch(f"/api/runs/{run_a.pk}/", {"tags": "a, b c"}, format="json").json()["tags"] == ["a", "b", "c"]
    # Only a run that has ended is archived.
    resp = c.patch(f"/api/runs/{run_a.pk}/", {"archived": True}, format="json")
    assert resp.status_code == 400 and "ended" in resp.json()["archived"][0]
    Run.objects.filter(pk=run_a.pk).update(status=Run.Status.FAILED)
    assert c.patch(f"/api/runs/{run_a.pk}/", {"archived": True}, format="json").json()["archived"] is True
    assert c.get("/api/runs/").json()["results"] == []  # hidden from the list by default
    assert len(c.get("/api/runs/", {"archived": "1"}).json()["results"]) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "   "}, "name"),
        ({"tags": ["no spaces allowed!"]}, "tags"),
        ({"tags": [f"t{i}" for i in range(30)]}, "tags"),
        ({"starred": "perhaps"}, "starred"),
        ({"notes": ["a list"]}, "notes"),
        ({"tags": {"a": 1}}, "tags"),
    ],
)
def test_edit_bad_values_400_and_nothing_changed(alice, run_a, body, field):
    c = token_client(alice[0])
    resp = c.patch(f"/api/runs/{run_a.pk}/", {"notes": "changed", **body}, format="json")
    assert resp.status_code == 400 and field in resp.json(), resp.content
    run_a.refresh_from_db()
    assert run_a.name == "alpha" and run_a.tags == "" and run_a.notes == ""


@pytest.mark.django_db
def test_members_edit_their_own_runs_admins_and_owners_any(make_member, alice, run_a):
    carol, _ = make_member("carol", "Team A", role="member")
    boss, _ = make_member("boss", "Team A", role="owner")
    adam, _ = make_member("adam", "Team A", role="admin")
    resp = token_client(carol).patch(f"/api/runs/{run_a.pk}/", {"name": "mine now"}, format="json")
    assert resp.status_code == 403 and "your own runs" in resp.json()["detail"]
    assert token_client(carol).get(f"/api/runs/{run_a.pk}/").json()["can_edit"] is False
    for who in (boss, adam):
        resp = token_client(who).patch(f"/api/runs/{run_a.pk}/", {"notes": f"by {who}"}, format="json")
        assert resp.status_code == 200
    run_a.refresh_from_db()
    assert run_a.name == "alpha" and run_a.notes == "by adam"


@pytest.mark.django_db
def test_cancel_a_queued_run(alice, run_a):
    c = token_client(alice[0])
    resp = c.post(f"/api/runs/{run_a.pk}/cancel/")
    assert resp.status_code == 200 and resp.json()["status"] == "CANCELLED"
    assert "Cancelled by alice" in resp.json()["status_reason"]
    resp = c.post(f"/api/runs/{run_a.pk}/cancel/")
    assert resp.status_code == 409 and "already ended" in resp.json()["detail"]


@pytest.mark.django_db
def test_cancel_of_a_running_run_is_200_and_leaves_the_driver_to_its_host(
    alice, run_a, monkeypatch, django_capture_on_commit_callbacks
):
    from webapp.runs import lifecycle, tasks
    from workers import supervision

    handle = {"run_dir": str(run_a.run_dir), "host": "other-host", "launcher_pid": 1}
    Run.objects.filter(pk=run_a.pk).update(status=Run.Status.RUNNING, backend_handle=handle)

    def no_backend(cluster):
        raise AssertionError("the web must not talk to the driver's processes or backend when cancelling")

    asked = []
    monkeypatch.setattr(lifecycle, "backend_for", no_backend)
    monkeypatch.setattr(tasks.stop_driver, "apply_async", lambda args, **kw: asked.append((args, kw["queue"])))
    with django_capture_on_commit_callbacks(execute=True):
        resp = token_client(alice[0]).post(f"/api/runs/{run_a.pk}/cancel/")
    assert resp.status_code == 200, resp.content
    run_a.refresh_from_db()
    assert run_a.status == Run.Status.CANCELLED and run_a.status_reason == "Cancelled by alice."
    assert asked == [((run_a.pk,), supervision.host_queue("other-host"))]
    assert supervision.is_cancelled(run_a.run_dir)  # a launcher that has not started spark-submit won't


# ---------------------------------------------------------------- metrics, logs, predictions, artifacts


@pytest.mark.django_db
def test_metrics_are_series_per_executor_downsampled(alice, run_a):
    MetricPoint.objects.bulk_create(
        MetricPoint(run=run_a, name=n, executor=e, step=i, epoch=i // 100, value=1.0 / (i + 1), wall_time=1000.0 + i)
        for n in ("loss", "accuracy")
        for e in ("0", "1")
        for i in range(500)
    )
    c = token_client(alice[0])
    body = c.get(f"/api/runs/{run_a.pk}/metrics/", {"names": "loss", "max_points": 50}).json()
    assert body["x"] == "step" and body["max_points"] == 50
    assert sorted((s["name"], s["executor"]) for s in body["series"]) == [("loss", "0"), ("loss", "1")]
    for series in body["series"]:
        assert series["count"] == 500 and series["downsampled"] and len(series["points"]) <= 50
    raw = c.get(f"/api/runs/{run_a.pk}/metrics/", {"names": "accuracy", "start": 10, "end": 19}).json()
    assert all(len(s["points"]) == 10 for s in raw["series"])
    everything = c.get(f"/api/runs/{run_a.pk}/metrics/").json()
    assert {s["name"] for s in everything["series"]} == {"loss", "accuracy"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params,field",
    [
        ({"x": "banana"}, "x"),
        ({"names": "loss,password"}, "names"),
        ({"max_points": "many"}, "max_points"),
        ({"max_points": 10**9}, "max_points"),
        ({"start": "soon"}, "start"),
        ({"start": "nan"}, None),
        ({"end": "1e400"}, "end"),
    ],
)
def test_metrics_bad_parameters_are_400(alice, run_a, params, field):
    resp = token_client(alice[0]).get(f"/api/runs/{run_a.pk}/metrics/", params)
    assert resp.status_code == 400, resp.content
    assert field is None or field in resp.json()


@pytest.fixture
def run_files(run_a):
    d = run_a.run_dir
    (d / "executors" / "0").mkdir(parents=True)
    (d / "driver.log").write_text("".join(f"driver line {i}\n" for i in range(100)))
    (d / "executors" / "0" / "stderr").write_text("executor 0 says hi\n")
    (d / "model").mkdir()
    (d / "model" / "model.keras").write_bytes(b"model-bytes")
    (d / "predictions").mkdir()
    (d / "predictions" / "predictions.csv").write_text("row_id,label,prediction,confidence\n0,1,1,0.9\n")
    n = 120
    table = pa.table(
        {
            "row_id": pa.array(range(n), pa.int64()),
            "label": pa.array([i % 10 for i in range(n)], pa.int64()),
            "prediction": pa.array([(i * 3) % 10 for i in range(n)], pa.int64()),
            "confidence": pa.array([0.5 + i / 1000 for i in range(n)], pa.float32()),
        }
    )
    pq.write_table(table, d / "predictions" / "predictions.parquet", row_group_size=50)
    return run_a


@pytest.mark.django_db
def test_logs_index_and_chunks_by_byte_offset(alice, run_files):
    c = token_client(alice[0])
    pk = run_files.pk
    index = c.get(f"/api/runs/{pk}/logs/").json()
    assert [(f["source"], f["stream"]) for f in index] == [("driver", "driver"), ("0", "stderr")]
    driver = index[0]
    chunk = c.get(driver["url"], {"offset": 0, "limit": 28}).json()
    assert chunk["text"] == "driver line 0\ndriver line 1\n" and chunk["next_offset"] == 28 and not chunk["eof"]
    rest = c.get(driver["url"], {"offset": chunk["next_offset"]}).json()
    assert rest["text"].startswith("driver line 2\n") and rest["eof"] and rest["next_offset"] == rest["size"]
    beyond = c.get(driver["url"], {"offset": 10**9}).json()
    assert beyond["text"] == "" and beyond["eof"]
    ex = c.get(f"/api/runs/{pk}/logs/0/stderr/").json()
    assert ex["text"] == "executor 0 says hi\n" and ex["source"] == "0" and ex["stream"] == "stderr"
    assert c.get(f"/api/runs/{pk}/logs/0/").json()["text"] == "executor 0 says hi\n"  # stderr by default


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path,params,code",
    [
        ("logs/driver/", {"offset": -1}, 400),
        ("logs/driver/", {"offset": "abc"}, 400),
        ("logs/driver/", {"limit": 0}, 400),
        ("logs/0/environ/", {}, 404),
        ("logs/0/stdout/", {}, 404),  # not written
        ("logs/7/stderr/", {}, 404),
        ("logs/../stderr/", {}, 404),
        ("logs/..%2F..%2Fspec.json/", {}, 404),
    ],
)
def test_bad_log_requests(alice, run_files, path, params, code):
    resp = token_client(alice[0]).get(f"/api/runs/{run_files.pk}/{path}", params)
    assert resp.status_code == code, resp.content


@pytest.mark.django_db
def test_predictions_paged_with_class_names(alice, run_files):
    c = token_client(alice[0])
    page = c.get(f"/api/runs/{run_files.pk}/predictions/", {"page": 2, "size": 50}).json()
    assert (page["count"], page["page"], page["pages"], page["size"]) == (120, 2, 3, 50)
    assert [r["row_id"] for r in page["results"]] == list(range(50, 100))
    first = page["results"][0]
    assert first["label_name"] == "0" and first["prediction_name"] == "0" and 0.5 <= first["confidence"] < 1
    assert len(c.get(f"/api/runs/{run_files.pk}/predictions/", {"page": 3}).json()["results"]) == 20
    last = c.get(f"/api/runs/{run_files.pk}/predictions/", {"page": 99}).json()
    assert last["page"] == 3 and len(last["results"]) == 20  # past the end: the last page
    wrong = c.get(f"/api/runs/{run_files.pk}/predictions/", {"errors": 1, "true": 3, "size": 500}).json()
    assert wrong["count"] == 12 and {(r["label"], r["correct"]) for r in wrong["results"]} == {(3, False)}
    confident = c.get(f"/api/runs/{run_files.pk}/predictions/", {"conf_min": 0.6}).json()
    assert confident["count"] == 20 and all(r["confidence"] >= 0.6 for r in confident["results"])
    for bad in ({"page": 0}, {"page": "x"}, {"size": 501}, {"true": 10}, {"conf_min": 2}, {"conf_min": "nan"}):
        assert c.get(f"/api/runs/{run_files.pk}/predictions/", bad).status_code == 400, bad


@pytest.mark.django_db
def test_prediction_analysis(alice, run_files, run_a):
    c = token_client(alice[0])
    body = c.get(f"/api/runs/{run_files.pk}/analysis/").json()
    assert body["rows"] == 120 and body["num_classes"] == 10 and len(body["confusion"]) == 10
    assert body["correct"] == sum(1 for i in range(120) if i % 10 == (i * 3) % 10)


@pytest.mark.django_db
def test_predictions_before_the_run_wrote_them(alice, run_a):
    c = token_client(alice[0])
    body = c.get(f"/api/runs/{run_a.pk}/predictions/").json()
    assert body["count"] == 0 and body["results"] == []
    assert c.get(f"/api/runs/{run_a.pk}/analysis/").status_code == 404


@pytest.mark.django_db
def test_artifacts_listed_and_downloaded(alice, run_files):
    c = token_client(alice[0])
    pk = run_files.pk
    index = c.get(f"/api/runs/{pk}/artifacts/").json()
    assert index["model"]["name"] == "model.keras" and index["model"]["size"] == len(b"model-bytes")
    resp = c.get(index["model"]["url"], HTTP_ACCEPT="application/octet-stream")
    assert resp.status_code == 200 and b"".join(resp.streaming_content) == b"model-bytes"
    assert f"run{pk}-model.keras" in resp["Content-Disposition"]
    resp = c.get(index["predictions_csv"]["url"])
    assert resp.status_code == 200 and b"".join(resp.streaming_content).startswith(b"row_id,label")


@pytest.mark.django_db
def test_run_result_names_the_model_by_its_url_not_its_path(alice, run_files):
    model = run_files.run_dir / "model" / "model.keras"
    run_files.result = {"test_accuracy": 0.9, "model": str(model)}
    run_files.save(update_fields=["result"])
    c = token_client(alice[0])
    result = c.get(f"/api/runs/{run_files.pk}/").json()["result"]
    assert result["test_accuracy"] == 0.9
    assert result["model"] == f"http://testserver/api/runs/{run_files.pk}/artifacts/model/"
    assert str(run_files.run_dir) not in json.dumps(result)
    model.unlink()  # recorded, but not (or no longer) there: no URL to a 404
    assert c.get(f"/api/runs/{run_files.pk}/").json()["result"]["model"] is None


@pytest.mark.django_db
def test_artifacts_not_written_yet(alice, run_a):
    c = token_client(alice[0])
    assert c.get(f"/api/runs/{run_a.pk}/artifacts/").json() == {
        "model": None,
        "predictions_csv": None,
        "tensorboard": None,
    }
    for path in ("artifacts/model/", "artifacts/predictions.csv", "artifacts/tensorboard.tar.gz"):
        resp = c.get(f"/api/runs/{run_a.pk}/{path}", HTTP_ACCEPT="application/octet-stream")
        assert resp.status_code == 404 and resp.json()["detail"]


# ---------------------------------------------------------------- datasets


@pytest.mark.django_db
def test_dataset_list_and_detail(alice, bob, digits_dataset):
    c = token_client(alice[0])
    body = c.get("/api/datasets/").json()
    assert body["count"] == 1 and body["results"][0]["name"] == "digits"
    detail = c.get(f"/api/datasets/{digits_dataset.pk}/").json()
    assert detail["status"] == "READY" and detail["shape"] == [8, 8, 1] and detail["num_classes"] == 10
    assert detail["train_rows"] == 1437 and detail["team"]["name"] == "Team A"
    assert token_client(bob[0]).get("/api/datasets/").json()["count"] == 0
    assert c.get("/api/datasets/", {"status": "failed"}).json()["count"] == 0
    assert c.get("/api/datasets/", {"status": "bogus"}).status_code == 400
    assert c.get("/api/datasets/", {"page": 9}).status_code == 404


@pytest.mark.django_db
def test_dataset_upload_npz_is_converted(alice, digits_npz, eager_tasks, django_capture_on_commit_callbacks):
    c = token_client(alice[0])
    f = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
    with django_capture_on_commit_callbacks(execute=True):
        resp = c.post("/api/datasets/", {"name": "d-api", "file": f, "test_fraction": "0.25"}, format="multipart")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["status"] == "UPLOADED" and resp["Location"] == body["url"]
    ds = Dataset.objects.get(name="d-api")
    assert ds.status == Dataset.Status.READY, ds.status_reason
    assert ds.team == alice[1] and ds.created_by == alice[0] and ds.options["test_fraction"] == 0.25
    now = c.get(body["url"]).json()
    assert now["status"] == "READY" and now["num_classes"] == 10


@pytest.mark.django_db
def test_dataset_upload_malformed_npz_fails_with_the_reason(alice, eager_tasks, django_capture_on_commit_callbacks):
    c = token_client(alice[0])
    f = SimpleUploadedFile("labels.npz", (BAD_DIR / "npz_missing_y.npz").read_bytes())
    with django_capture_on_commit_callbacks(execute=True):
        resp = c.post("/api/datasets/", {"name": "broken", "file": f}, format="multipart")
    assert resp.status_code == 201
    body = c.get(resp.json()["url"]).json()
    assert body["status"] == "FAILED" and "no array named 'y'" in body["status_reason"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data,field,message",
    [
        ({"name": "t", "file": ("fake.npz", b"this is not a zip archive at all")}, "non_field_errors", "not"),
        ({"name": "t", "file": ("empty.npz", b"")}, "file", "empty"),
        ({"name": "t", "file": ("notes.txt", b"a,b,label\n1,2,0\n")}, "non_field_errors", "nsupported"),
        ({"file": ("d.npz", b"PK\x03\x04")}, "name", "required"),
        ({"name": "t"}, "file", "required"),
        ({"name": "t", "file": ("d.npz", b"PK\x03\x04"), "test_fraction": "2"}, "test_fraction", "less than"),
        ({"name": "t", "file": ("d.npz", b"PK\x03\x04"), "shape": "banana"}, "shape", ""),
        ({"name": "t", "file": ("d.npz", b"PK\x03\x04"), "layout": "video"}, "layout", "valid choice"),
    ],
)
def test_dataset_upload_refused_at_once(alice, settings, data, field, message):
    payload = {k: SimpleUploadedFile(*v) if isinstance(v, tuple) else v for k, v in data.items()}
    resp = token_client(alice[0]).post("/api/datasets/", payload, format="multipart")
    assert resp.status_code == 400, resp.content
    assert field in resp.json() and message in resp.json()[field][0], resp.json()
    assert not Dataset.objects.exists()
    root = settings.DATA_ROOT
    assert not root.exists() or not [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.django_db
def test_dataset_upload_duplicate_name(alice, digits_dataset, digits_npz):
    f = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
    resp = token_client(alice[0]).post("/api/datasets/", {"name": "digits", "file": f}, format="multipart")
    assert resp.status_code == 400 and "already has a dataset named" in resp.json()["non_field_errors"][0]


@pytest.mark.django_db
def test_dataset_upload_over_the_limit_is_413(alice, settings, digits_npz):
    settings.MAX_UPLOAD_BYTES = 10_000
    f = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())  # ~100 kB
    resp = token_client(alice[0]).post("/api/datasets/", {"name": "big", "file": f}, format="multipart")
    assert resp.status_code == 413 and "upload limit" in resp.json()["detail"]
    assert not Dataset.objects.exists()


@pytest.mark.django_db
def test_dataset_upload_json_is_unsupported(alice):
    resp = token_client(alice[0]).post("/api/datasets/", {"name": "x"}, format="json")
    assert resp.status_code == 415


# ---------------------------------------------------------------- clusters, templates, schema


@pytest.mark.django_db
def test_clusters_and_templates(alice, cluster):
    c = token_client(alice[0])
    clusters = c.get("/api/clusters/").json()
    assert [x["name"] for x in clusters] == ["loopback"] and clusters[0]["max_executors"] == 2
    assert "master_url" not in clusters[0] and "executor_env" not in clusters[0]
    templates = c.get("/api/templates/").json()
    assert {t["key"] for t in templates} >= {"cnn", "lstm"}


@pytest.mark.django_db
def test_openapi_schema_is_valid_and_lists_every_endpoint(alice):
    from drf_spectacular.validation import validate_schema

    resp = token_client(alice[0]).get("/api/schema/", {"format": "json"})
    assert resp.status_code == 200
    doc = json.loads(resp.content)
    validate_schema(doc)  # raises on an invalid OpenAPI 3 document
    assert doc["openapi"].startswith("3.") and doc["info"]["title"] == "Sparkdeck API"
    paths = doc["paths"]
    expected = {
        "/api/runs/": {"get", "post"},
        "/api/runs/{id}/": {"get", "patch"},
        "/api/runs/{id}/cancel/": {"post"},
        "/api/runs/{id}/metrics/": {"get"},
        "/api/runs/{id}/logs/": {"get"},
        "/api/runs/{id}/logs/{source}/": {"get"},
        "/api/runs/{id}/logs/{source}/{stream}/": {"get"},
        "/api/runs/{id}/predictions/": {"get"},
        "/api/runs/{id}/analysis/": {"get"},
        "/api/runs/{id}/artifacts/": {"get"},
        "/api/runs/{id}/artifacts/model/": {"get"},
        "/api/runs/{id}/artifacts/predictions.csv": {"get"},
        "/api/runs/{id}/artifacts/tensorboard.tar.gz": {"get"},
        "/api/runs/{id}/resources/": {"get"},
        "/api/datasets/": {"get", "post"},
        "/api/datasets/{id}/": {"get"},
        "/api/clusters/": {"get"},
        "/api/templates/": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    assert "tokenAuth" in doc["components"]["securitySchemes"]
    upload = paths["/api/datasets/"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload


@pytest.mark.django_db
def test_docs_page(client_a):
    from django.test import Client

    page = client_a.get("/api/docs/")
    assert page.status_code == 200 and b"swagger-ui" in page.content and b"/api/schema/" in page.content
    assert b"cdn.jsdelivr" not in page.content  # served from our static files
    resp = Client().get("/api/docs/")
    assert resp.status_code == 302 and "/accounts/login/" in resp["Location"]
