"""The sweeps API (webapp/api): starting a sweep (its trials are made once it commits, as in
tests/web/test_sweeps.py), refusals per field, the list, the detail, the trials with their epochs,
cancelling; another team's sweep is 404 everywhere; runs name their sweep and trial; odd input is 400."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.web.apiclient import api
from webapp.accounts.models import Membership
from webapp.datasets.models import Dataset
from webapp.runs.models import Run
from webapp.sweeps import services
from webapp.sweeps.models import Sweep, Trial

LR = {"type": "range", "low": 0.0001, "high": 0.1, "log": True}
NO_TRIALS = {"RUNNING": 0, "COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
# Not a whole number in range: NUL, digits that are not ASCII, too big for any column, fractions, text.
BAD_NUMBERS = ["\x00", "1\x00", "³", "٣", "１", str(10**30), "9" * 5000, "-1", "1.5", "0x10", "1e3"]
BAD_JSON_NUMBERS = [*BAD_NUMBERS, 10**30, -1, 1.5, True, None, [], {}, 1e300]


@pytest.fixture
def alice_api(alice):
    return api(alice[0])


@pytest.fixture
def request_body(digits_dataset, cluster):
    def make(**over):
        body = {
            "name": "lr sweep",
            "dataset": digits_dataset.pk,
            "template": "cnn",
            "space": {"learning_rate": LR},
            "cluster": cluster.pk,
            "num_executors": 1,
            "executor_cores": 1,
            "executor_memory_mb": 1024,
            "max_trials": 4,
            "parallel": 2,
            "hyperparameters": {"epochs": 2},
        }
        body.update(over)
        return body

    return make


@pytest.fixture
def finished_sweep(make_sweep):
    """Alice's sweep: trial 0 complete (0.9), trial 1 pruned after epoch 1, trial 2 running."""
    sweep = make_sweep(
        name="three trials",
        pruner="median",
        max_trials=5,
        trials=[
            {"value": 0.9, "epochs_run": 2, "epochs": {1: 0.6, 2: 0.9}},
            {"status": "PRUNED", "value": 0.2, "pruned_at_epoch": 1, "epochs_run": 1, "epochs": {1: 0.2}},
            {"status": "RUNNING", "run_status": "QUEUED", "params": {"learning_rate": 0.05}},
        ],
    )
    Run.objects.filter(pk=sweep.trials.get(number=0).run_id).update(test_accuracy=0.88)
    # The pruner's word for trial 1's epoch was "stop" (make_sweep writes "continue" unless told).
    sweep.trials.get(number=1).epochs.update(decision="stop")
    return sweep


# For requests refused before their body is looked at (no dataset needed: make_sweep makes its own).
STUB_BODY = {"dataset": 1, "template": "cnn", "cluster": 1, "space": {"learning_rate": LR}}


def sweep_urls(sweep):
    return [
        ("get", f"/api/sweeps/{sweep.pk}/"),
        ("get", f"/api/sweeps/{sweep.pk}/trials/"),
        ("post", f"/api/sweeps/{sweep.pk}/cancel/"),
    ]


# ---------------------------------------------------------------- starting a sweep


@pytest.mark.django_db
def test_create_is_201_and_its_first_trials_are_made_on_commit(
    alice, alice_api, request_body, monkeypatch, django_capture_on_commit_callbacks
):
    from webapp.sweeps import tasks

    with django_capture_on_commit_callbacks() as callbacks:
        resp = alice_api.post("/api/sweeps/", request_body(), format="json")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    sweep = Sweep.objects.get()
    assert resp["Location"] == body["url"] and body["url"].endswith(f"/api/sweeps/{sweep.pk}/")
    assert body["id"] == sweep.pk and body["name"] == "lr sweep" and body["team"]["slug"] == "team-a"
    assert body["status"] == "RUNNING" and body["terminal"] is False and body["waiting_reason"] == ""
    assert body["space"] == {"learning_rate": {"type": "range", "low": 0.0001, "high": 0.1, "log": True}}
    assert body["hyperparameters"]["epochs"] == 2 and body["hyperparameters"]["validation_split"] == 0.1
    assert (body["strategy"], body["objective"], body["pruner"]) == ("random", "val_accuracy", "none")
    assert (body["max_trials"], body["budget"], body["parallel"], body["seed"]) == (4, 4, 2, 42)
    assert (body["num_executors"], body["executor_memory_mb"], body["created_by"]) == (1, 1024, "alice")
    assert body["trial_counts"] == NO_TRIALS and body["best_trial"] is None
    assert body["links"]["trials"].endswith(f"/api/sweeps/{sweep.pk}/trials/")
    assert not sweep.trials.exists()  # nothing before commit

    # The commit hands the sweep to a worker, which makes the first trials.
    sent = []
    monkeypatch.setattr(tasks.advance_sweep, "delay", lambda *args: sent.append(args))
    assert len(callbacks) == 1
    callbacks[0]()
    assert sent == [(sweep.pk,)]
    made = services.advance(sweep.pk)
    assert len(made) == 2  # trials at once
    assert set(Run.objects.filter(pk__in=made).values_list("status", flat=True)) == {"QUEUED"}

    detail = alice_api.get(f"/api/sweeps/{sweep.pk}/").json()
    assert detail["trial_counts"] == {**NO_TRIALS, "RUNNING": 2}
    trials = alice_api.get(f"/api/sweeps/{sweep.pk}/trials/").json()
    assert trials["count"] == 2 and [t["number"] for t in trials["results"]] == [0, 1]
    for t in trials["results"]:
        run = Run.objects.get(pk=t["run"])
        assert t["status"] == "RUNNING" and t["run_status"] == "QUEUED" and t["epochs"] == []
        assert t["params"]["learning_rate"] == run.hyperparameters["learning_rate"]
        assert 0.0001 <= t["params"]["learning_rate"] <= 0.1


@pytest.mark.django_db
def test_create_takes_every_field_of_the_service(alice_api, request_body, django_capture_on_commit_callbacks):
    space = {
        "learning_rate": {"type": "choice", "values": [0.01, 0.001]},
        "optimizer": {"type": "choice", "values": ["adam", "sgd"]},
        "epochs": {"type": "fixed", "value": 3},
    }
    body = request_body(
        space=space,
        strategy="grid",
        objective="val_loss",
        pruner="asha",
        pruner_startup_trials=3,
        pruner_warmup_epochs=2,
        pruner_reduction_factor=4,
        max_trials="10",
        parallel=1,
        seed=7,
        input_mode="spark",
        gpus_per_executor=0,
        hyperparameters={"batch_size": 16},
    )
    with django_capture_on_commit_callbacks():
        resp = alice_api.post("/api/sweeps/", body, format="json")
    assert resp.status_code == 201, resp.content
    got = resp.json()
    sweep = Sweep.objects.get()
    assert (sweep.strategy, sweep.objective, sweep.pruner, sweep.seed) == ("grid", "val_loss", "asha", 7)
    assert (sweep.pruner_startup_trials, sweep.pruner_warmup_epochs, sweep.max_trials) == (3, 2, 10)
    assert sweep.pruner_reduction_factor == 4 and got["pruner_reduction_factor"] == 4
    assert sweep.input_mode == "spark" and sweep.base_hyperparameters["batch_size"] == 16
    assert sweep.base_hyperparameters["epochs"] == 3  # a fixed entry of the space
    assert got["budget"] == 4  # the grid is smaller than max_trials
    assert got["space"] == {
        "epochs": {"type": "fixed", "value": 3},
        "learning_rate": {"type": "choice", "values": [0.01, 0.001]},
        "optimizer": {"type": "choice", "values": ["adam", "sgd"]},
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "over, field, words",
    [
        ({"max_trials": 501}, "max_trials", "less than or equal to 500"),
        ({"parallel": 3}, "parallel", "at most 2 trial(s) at once"),
        ({"space": {"learning_rate": {"type": "choice", "values": []}}}, "space.learning_rate", "non-empty list"),
        ({"space": {"learning_rate": {**LR, "high": 2.0}}}, "space.learning_rate", "high must be between"),
        ({"space": {"units": {"type": "choice", "values": [1]}}}, "space.units", "has no hyperparameter"),
        ({"space": {"epochs": {"type": "fixed", "value": 3}}}, "space", "vary at least one"),
        ({"hyperparameters": {"validation_split": 0}}, "hyperparameters.validation_split", "validation_split above 0"),
        ({"hyperparameters": {"epochs": 0}}, "hyperparameters.epochs", "must be between"),
        ({"objective": "test_accuracy"}, "objective", "not a valid choice"),
        ({"strategy": "bayes"}, "strategy", "not a valid choice"),
        ({"template": "nope"}, "template", "not a valid choice"),
        ({"num_executors": 3}, "num_executors", "at most 2 executors"),
        ({"dataset": 10**6}, "dataset", "No such dataset"),
        ({"cluster": 10**6}, "cluster", "No such cluster"),
    ],
)
def test_a_refused_request_is_400_naming_its_field_and_stores_nothing(alice_api, request_body, over, field, words):
    resp = alice_api.post("/api/sweeps/", request_body(**over), format="json")
    assert resp.status_code == 400, resp.content
    body = resp.json()
    assert field in body, body
    assert isinstance(body[field], list) and words in body[field][0], body
    assert not Sweep.objects.exists() and not Run.objects.exists()


@pytest.mark.django_db
def test_a_sweep_takes_its_own_teams_dataset_only(alice, bob, cluster, request_body):
    user, team_a = alice
    _, team_b = bob
    Membership.objects.create(team=team_b, user=user, role="member")
    theirs = Dataset.objects.create(team=team_b, name="b-data", status="READY", shape=[8, 8, 1], num_classes=10)
    # alice may read team B's dataset, but a sweep of team A cannot train on it.
    resp = api(user).post("/api/sweeps/", request_body(team="team-a", dataset=theirs.pk), format="json")
    assert resp.status_code == 400 and resp.json() == {"dataset": ["No such dataset."]}
    assert not Sweep.objects.exists()


@pytest.mark.django_db
def test_viewers_cannot_start_or_cancel_a_sweep(make_member, alice, finished_sweep):
    viewer, _ = make_member("vera", "Team A", role="viewer")
    c = api(viewer)
    resp = c.post("/api/sweeps/", STUB_BODY, format="json")
    assert resp.status_code == 403 and "Viewers cannot start sweeps" in resp.json()["detail"]
    resp = c.post(f"/api/sweeps/{finished_sweep.pk}/cancel/")
    assert resp.status_code == 403 and "Viewers cannot cancel sweeps" in resp.json()["detail"]
    assert c.get(f"/api/sweeps/{finished_sweep.pk}/").json()["status"] == "RUNNING"  # reading is fine
    assert Sweep.objects.count() == 1


# ---------------------------------------------------------------- reading


@pytest.mark.django_db
def test_the_list_is_the_teams_sweeps_newest_first_with_counts_and_paged(alice_api, make_sweep, finished_sweep, bob):
    newer = make_sweep(name="newer", status="FAILED", status_reason="No trial finished.")
    make_sweep(name="bob's", team=bob[1], created_by=bob[0])
    body = alice_api.get("/api/sweeps/").json()
    assert body["count"] == 2 and body["next"] is None
    assert [s["name"] for s in body["results"]] == ["newer", "three trials"]
    first, second = body["results"]
    assert first["id"] == newer.pk and first["status"] == "FAILED" and first["terminal"] is True
    assert first["status_reason"] == "No trial finished." and first["trial_counts"] == NO_TRIALS
    assert second["trial_counts"] == {"RUNNING": 1, "COMPLETE": 1, "PRUNED": 1, "FAIL": 0}
    assert second["pruner"] == "median" and second["budget"] == 5 and "best_trial" not in second
    page = alice_api.get("/api/sweeps/", {"size": "1", "page": "2"}).json()
    assert page["count"] == 2 and [s["name"] for s in page["results"]] == ["three trials"]
    assert page["previous"] is not None and page["next"] is None
    assert alice_api.get("/api/sweeps/", {"page": "3", "size": "1"}).status_code == 404
    assert alice_api.get("/api/sweeps/", {"team": "team-b"}).json() == {"team": ["No such team among yours."]}


@pytest.mark.django_db
def test_the_list_filters_by_status(alice_api, make_sweep, finished_sweep):
    make_sweep(name="failed one", status="FAILED")
    make_sweep(name="cancelled one", status="CANCELLED")

    def names(query):
        return [s["name"] for s in alice_api.get("/api/sweeps/", query).json()["results"]]

    assert names({"status": "failed"}) == ["failed one"]
    assert names({"status": "FAILED,running"}) == ["failed one", "three trials"]
    assert len(names({"status": ""})) == 3  # empty: no filter
    for bad, message in [("DONE", "Unknown status 'DONE'"), ("RUNNING\x00", "NUL")]:
        r = alice_api.get("/api/sweeps/", {"status": bad})
        assert r.status_code == 400 and message in r.json()["status"][0], bad


@pytest.mark.django_db
def test_the_list_reads_counts_in_one_query_not_one_per_sweep(alice_api, make_sweep):
    make_sweep(trials=[{}])

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert alice_api.get("/api/sweeps/").status_code == 200
        return len(ctx)

    queries()  # the first request also stamps the token's last use
    one = queries()
    for _ in range(3):
        make_sweep(trials=[{}, {"status": "FAIL"}])
    assert queries() == one


@pytest.mark.django_db
def test_the_detail_shows_state_space_objective_best_trial_and_counts(alice_api, finished_sweep):
    Sweep.objects.filter(pk=finished_sweep.pk).update(waiting_reason="Waiting to make trial 3: the cluster is busy")
    body = alice_api.get(f"/api/sweeps/{finished_sweep.pk}/").json()
    assert body["status"] == "RUNNING" and body["status_reason"] == ""
    assert body["waiting_reason"] == "Waiting to make trial 3: the cluster is busy"
    assert body["space"] == {"learning_rate": LR} and body["objective"] == "val_accuracy"
    assert body["trial_counts"] == {"RUNNING": 1, "COMPLETE": 1, "PRUNED": 1, "FAIL": 0}
    best_run = finished_sweep.trials.get(number=0).run_id
    # The pruned trial never counts as the best, whatever its value.
    assert body["best_trial"] == {
        "number": 0,
        "value": 0.9,
        "params": {"learning_rate": 0.001},
        "run": best_run,
        "test_accuracy": 0.88,
    }
    assert body["dataset"]["name"] == "digits" and body["cluster"]["name"] == "loopback"


@pytest.mark.django_db
def test_the_trials_page_has_params_values_runs_and_each_epochs_decision(alice_api, finished_sweep):
    body = alice_api.get(f"/api/sweeps/{finished_sweep.pk}/trials/").json()
    assert body["count"] == 3 and body["next"] is None
    t0, t1, t2 = body["results"]
    runs = dict(finished_sweep.trials.values_list("number", "run_id"))
    assert t0["number"] == 0 and t0["status"] == "COMPLETE" and t0["value"] == 0.9 and t0["epochs_run"] == 2
    assert t0["run"] == runs[0] and t0["run_status"] == "SUCCEEDED" and t0["pruned_at_epoch"] is None
    assert t0["params"] == {"learning_rate": 0.001}
    assert t0["epochs"] == [
        {"epoch": 1, "value": 0.6, "decision": "continue"},
        {"epoch": 2, "value": 0.9, "decision": "continue"},
    ]
    assert (t1["status"], t1["pruned_at_epoch"], t1["epochs_run"]) == ("PRUNED", 1, 1)
    assert t1["epochs"] == [{"epoch": 1, "value": 0.2, "decision": "stop"}]
    assert (t2["status"], t2["value"], t2["run"], t2["run_status"]) == ("RUNNING", None, runs[2], "QUEUED")
    assert t2["params"] == {"learning_rate": 0.05} and t2["epochs"] == []
    page = alice_api.get(f"/api/sweeps/{finished_sweep.pk}/trials/", {"size": "2", "page": "2"}).json()
    assert [t["number"] for t in page["results"]] == [2]


@pytest.mark.django_db
def test_the_trials_page_reads_epochs_in_a_fixed_number_of_queries(alice_api, make_sweep):
    def queries(sweep):
        with CaptureQueriesContext(connection) as ctx:
            assert alice_api.get(f"/api/sweeps/{sweep.pk}/trials/").status_code == 200
        return len(ctx)

    small = make_sweep(trials=[{"epochs": {1: 0.5}}])
    big = make_sweep(trials=[{"epochs": {1: 0.5, 2: 0.6}} for _ in range(6)])
    queries(small)  # the first request also stamps the token's last use
    assert queries(big) == queries(small)


# ---------------------------------------------------------------- cancelling


@pytest.mark.django_db
def test_cancel_ends_the_sweep_and_its_active_runs_then_is_409(alice_api, finished_sweep):
    queued = finished_sweep.trials.get(number=2).run
    resp = alice_api.post(f"/api/sweeps/{finished_sweep.pk}/cancel/")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["status"] == "CANCELLED" and body["terminal"] is True
    assert body["status_reason"] == "Cancelled by alice." and body["finished_at"] is not None
    assert body["trial_counts"] == {"RUNNING": 0, "COMPLETE": 1, "PRUNED": 1, "FAIL": 1}
    queued.refresh_from_db()
    assert queued.status == "CANCELLED"
    assert finished_sweep.trials.get(number=0).run.status == "SUCCEEDED"  # an ended run stays as it was
    again = alice_api.post(f"/api/sweeps/{finished_sweep.pk}/cancel/")
    assert again.status_code == 409
    assert again.json() == {"detail": f"Sweep {finished_sweep.pk} already ended (CANCELLED)."}


@pytest.mark.django_db
def test_cancel_that_loses_a_race_is_409_with_the_new_status(alice_api, finished_sweep, monkeypatch):
    def ended_meanwhile(sweep, by=""):
        Sweep.objects.filter(pk=sweep.pk).update(status="SUCCEEDED")
        sweep.transition(Sweep.Status.CANCELLED)  # compare-and-set: stale

    monkeypatch.setattr(services, "cancel", ended_meanwhile)
    resp = alice_api.post(f"/api/sweeps/{finished_sweep.pk}/cancel/")
    assert resp.status_code == 409 and resp.json()["detail"] == f"Sweep {finished_sweep.pk} is now SUCCEEDED."


# ---------------------------------------------------------------- who sees what


@pytest.mark.django_db
def test_another_teams_sweep_is_404_on_every_url_and_untouched(bob, finished_sweep):
    c = api(bob[0])
    for method, url in sweep_urls(finished_sweep):
        resp = getattr(c, method)(url)
        assert resp.status_code == 404, (method, url)
        assert resp.json() == {"detail": "No such sweep."}
    assert c.get("/api/sweeps/").json()["count"] == 0
    finished_sweep.refresh_from_db()
    assert finished_sweep.status == "RUNNING"
    assert finished_sweep.trials.get(number=2).run.status == "QUEUED"


@pytest.mark.django_db
def test_no_or_a_bad_credential_is_401_everywhere(finished_sweep):
    anonymous = api()
    bad = APIClient(raise_request_exception=False)
    bad.credentials(HTTP_AUTHORIZATION="Token sdk_not-a-key")
    calls = [*sweep_urls(finished_sweep), ("get", "/api/sweeps/"), ("post", "/api/sweeps/")]
    for client in (anonymous, bad):
        for method, url in calls:
            resp = getattr(client, method)(url, STUB_BODY if method == "post" else None, format="json")
            assert resp.status_code == 401, (method, url)
            assert "detail" in resp.json()
    assert Sweep.objects.get().status == "RUNNING" and Sweep.objects.count() == 1


@pytest.mark.django_db
def test_unknown_sweep_ids_are_404(alice_api):
    for raw in ["999999", str(2**63), str(10**30)]:
        assert alice_api.get(f"/api/sweeps/{raw}/").status_code == 404
        assert alice_api.get(f"/api/sweeps/{raw}/trials/").status_code == 404
        assert alice_api.post(f"/api/sweeps/{raw}/cancel/").status_code == 404


# ---------------------------------------------------------------- runs name their sweep and trial


@pytest.mark.django_db
def test_runs_name_their_sweep_and_trial_number(alice_api, finished_sweep):
    trial_run = finished_sweep.trials.get(number=2).run
    plain = Run.objects.get(name="seed-run")
    listed = {r["id"]: r for r in alice_api.get("/api/runs/").json()["results"]}
    assert (listed[trial_run.pk]["sweep"], listed[trial_run.pk]["trial"]) == (finished_sweep.pk, 2)
    assert (listed[plain.pk]["sweep"], listed[plain.pk]["trial"]) == (None, None)
    assert {(r["sweep"], r["trial"]) for r in listed.values() if r["id"] != plain.pk} == {
        (finished_sweep.pk, 0),
        (finished_sweep.pk, 1),
        (finished_sweep.pk, 2),
    }
    detail = alice_api.get(f"/api/runs/{trial_run.pk}/").json()
    assert (detail["sweep"], detail["trial"]) == (finished_sweep.pk, 2)
    assert alice_api.get(f"/api/runs/{plain.pk}/").json()["sweep"] is None


@pytest.mark.django_db
def test_the_run_list_reads_trials_without_a_query_per_run(alice_api, make_sweep):
    make_sweep(trials=[{}])

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert alice_api.get("/api/runs/").status_code == 200
        return len(ctx)

    queries()  # the first request also stamps the token's last use
    one = queries()
    make_sweep(trials=[{}, {}, {}, {}])
    assert Run.objects.count() == 7 and Trial.objects.count() == 5
    assert queries() == one


# ---------------------------------------------------------------- odd input


def _message(resp, field):
    assert resp.status_code == 400, (resp.status_code, resp.content[:300])
    body = resp.json()
    assert field in body, body
    messages = body[field] if isinstance(body[field], list) else [body[field]]
    assert messages and all(isinstance(m, str) and m for m in messages), body
    return messages[0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field", ["max_trials", "parallel", "seed", "pruner_warmup_epochs", "pruner_reduction_factor", "num_executors"]
)
def test_bad_numbers_in_the_body_are_400_naming_the_field(alice_api, request_body, field, subtests):
    for raw in BAD_JSON_NUMBERS:
        with subtests.test(raw=raw):
            resp = alice_api.post("/api/sweeps/", request_body(**{field: raw}), format="json")
            _message(resp, field)
    assert not Sweep.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/sweeps/", "trials"])
@pytest.mark.parametrize("name", ["page", "size"])
def test_bad_paging_numbers_are_400(alice_api, finished_sweep, path, name, subtests):
    url = f"/api/sweeps/{finished_sweep.pk}/trials/" if path == "trials" else path
    for raw in [*BAD_NUMBERS, "0", ""]:
        with subtests.test(raw=raw):
            assert "whole number" in _message(alice_api.get(url, {name: raw}), name)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "over, field",
    [
        ({"name": "a\x00b"}, "name"),
        ({"name": 5}, "name"),
        ({"team": "a\x00"}, "team"),
        ({"team": "٣"}, "team"),
        ({"space": ["learning_rate"]}, "space"),
        ({"space": "learning_rate"}, "space"),
        ({"space": None}, "space"),
        ({"space": {"learning_rate": {"type": "range", "low": 10**30, "high": 0.1}}}, "space.learning_rate"),
        ({"space": {"learning_rate": {"type": "range", "low": "٠.1", "high": 0.2}}}, "space.learning_rate"),
        ({"space": {"epochs": {"type": "range", "low": "³", "high": 5}}}, "space.epochs"),
        ({"space": {"learning_rate": LR, "optimizer": {"type": "choice", "values": ["adam\x00"]}}}, "space.optimizer"),
        ({"space": {"learning_rate": LR, "\x00": {"type": "fixed", "value": 1}}}, "space.\x00"),
        ({"space": {"learning_rate": {"type": "choice", "values": [[0.1], {"a": 1}]}}}, "space.learning_rate"),
        ({"hyperparameters": "epochs=3"}, "hyperparameters"),
        ({"hyperparameters": {"optimizer": "adam\x00"}}, "hyperparameters.optimizer"),
        ({"hyperparameters": {"epochs": "٣"}}, "hyperparameters.epochs"),
        ({"strategy": ["grid"]}, "strategy"),
        ({"pruner": {"type": "median"}}, "pruner"),
        ({"dataset": "1\x00"}, "dataset"),
        ({"dataset": True}, "dataset"),
    ],
)
def test_odd_values_are_400_with_a_message(alice_api, request_body, over, field):
    resp = alice_api.post("/api/sweeps/", request_body(**over), format="json")
    _message(resp, field)
    assert not Sweep.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000,
        '{"space": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}",
        '{"space": {"optimizer": {"type": "fixed", "value": ' + "[" * 900 + "]" * 900 + "}}}",
        "{not json",
        "[1, 2]",
        "null",
        '"text"',
        '{"max_trials": ' + "9" * 5000 + "}",
        '{"max_trials": NaN}',
    ],
)
def test_malformed_or_deep_json_bodies_are_400(alice_api, body):
    resp = alice_api.generic("POST", "/api/sweeps/", body, content_type="application/json")
    assert resp.status_code == 400, resp.content[:300]
    payload = resp.json()
    assert payload and all(isinstance(k, str) for k in payload), payload
    assert not Sweep.objects.exists()


@pytest.mark.django_db
def test_an_infinite_bound_is_400_for_its_hyperparameter(alice_api, request_body):
    body = json.dumps(request_body(space={"learning_rate": {"type": "range", "low": "INF", "high": 0.1}}))
    resp = alice_api.generic("POST", "/api/sweeps/", body.replace('"INF"', "1e400"), content_type="application/json")
    assert "low must be a number" in _message(resp, "space.learning_rate")
    assert not Sweep.objects.exists()


@pytest.mark.django_db
def test_deep_json_is_refused_on_the_runs_api_too(alice_api):
    resp = alice_api.generic("POST", "/api/runs/", "[" * 100_000, content_type="application/json")
    assert resp.status_code == 400 and "nested deeper than" in resp.json()["detail"]
    deep = json.dumps({"hyperparameters": {"optimizer": json.loads("[" * 100 + "]" * 100)}})
    resp = alice_api.generic("POST", "/api/runs/", deep, content_type="application/json")
    assert resp.status_code == 400 and "nested deeper than" in resp.json()["detail"]


@pytest.mark.django_db
def test_form_bodies_are_unsupported(alice_api, digits_dataset):
    resp = alice_api.post("/api/sweeps/", {"dataset": digits_dataset.pk})
    assert resp.status_code == 415 and "detail" in resp.json()


# ---------------------------------------------------------------- the schema


@pytest.mark.django_db
def test_the_schema_documents_the_sweep_operations(alice_api):
    doc = json.loads(alice_api.get("/api/schema/", {"format": "json"}).content)
    paths = doc["paths"]
    assert set(paths["/api/sweeps/"]) == {"get", "post"}
    assert paths["/api/sweeps/"]["post"]["operationId"] == "sweeps_create"
    assert set(paths["/api/sweeps/{id}/"]) == {"get"}
    assert "409" in paths["/api/sweeps/{id}/cancel/"]["post"]["responses"]
    assert "404" in paths["/api/sweeps/{id}/trials/"]["get"]["responses"]
    request = doc["components"]["schemas"]["SweepSubmitRequest"]["properties"]
    assert {"space", "strategy", "objective", "pruner", "max_trials", "parallel", "seed", "dataset"} <= set(request)
    assert request["max_trials"]["maximum"] == 500 and request["strategy"]["allOf"][0]["$ref"].endswith("/StrategyEnum")
    run = doc["components"]["schemas"]["RunList"]["properties"]
    assert run["sweep"]["nullable"] is True and run["trial"]["type"] == "integer"
