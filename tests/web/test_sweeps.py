"""Sweeps without a cluster: search-space validation, the state machines, Optuna's asks and the
pruner's decisions rebuilt from our rows, advancing and cancelling (the real path: tests/e2e/test_sweep_real.py)."""

import json
import math

import pytest
from django.urls import reverse

from webapp.catalog.registry import get_template
from webapp.clusters.models import TeamQuota
from webapp.runs.models import MetricPoint, Run
from webapp.statemachine import IllegalTransition, StaleStatus
from webapp.sweeps import services
from webapp.sweeps import space as search_space
from webapp.sweeps.models import Sweep, Trial, TrialEpoch

CNN = get_template("cnn")
LR = {"type": "range", "low": 0.0001, "high": 0.1, "log": True}


def refused(space, strategy="random"):
    with pytest.raises(search_space.SpaceError) as exc:
        search_space.clean(CNN, space, strategy)
    return exc.value.errors


# --- the search space --------------------------------------------------------------------------


def test_a_space_is_normalized_in_the_schemas_order():
    space = search_space.clean(
        CNN,
        {
            "optimizer": {"type": "choice", "values": ["sgd", "adam", "sgd"]},
            "filters": {"type": "range", "low": "8", "high": 32, "step": 8},
            "learning_rate": LR,
            "epochs": {"type": "fixed", "value": 4},
        },
        "random",
    )
    assert list(space) == ["epochs", "learning_rate", "filters", "optimizer"]
    assert space["optimizer"] == {"type": "choice", "values": ["sgd", "adam"]}
    assert space["filters"] == {"type": "range", "low": 8, "high": 32, "log": False, "step": 8}
    assert search_space.fixed_values(space) == {"epochs": 4}
    assert search_space.describe(space["learning_rate"]) == "0.0001 – 0.1 (log)"


@pytest.mark.parametrize(
    "space, field, words",
    [
        ({"learning_rate": {"type": "range", "low": 0.0001, "high": 2.0}}, "learning_rate", "high must be between"),
        ({"epochs": {"type": "range", "low": 0, "high": 5}}, "epochs", "low must be between"),
        ({"optimizer": {"type": "choice", "values": []}}, "optimizer", "non-empty list"),
        ({"optimizer": {"type": "choice", "values": ["adam", "lbfgs"]}}, "optimizer", "must be one of"),
        ({"optimizer": {"type": "range", "low": 1, "high": 2}}, "optimizer", "not a number"),
        ({"learning_rate": {"type": "range", "low": 0.1, "high": 0.01}}, "learning_rate", "low must be below high"),
        ({"dropout": {"type": "range", "low": 0.0, "high": 0.5, "log": True}}, "dropout", "log scale needs low > 0"),
        ({"filters": {"type": "range", "low": 8, "high": 64, "points": 3}}, "filters", "step, not points"),
        ({"learning_rate": {"type": "sometimes"}}, "learning_rate", "type must be"),
        ({"learning_rate": [0.1, 0.2]}, "learning_rate", "must be an object"),
        ({"units": {"type": "choice", "values": [1]}}, "units", "has no hyperparameter"),
        ({"epochs": {"type": "fixed", "value": 3}}, "space", "vary at least one"),
    ],
)
def test_each_bad_space_entry_is_refused_with_its_field(space, field, words):
    errors = refused(space)
    assert words in errors[field]


def test_a_grid_needs_points_over_a_float_range_and_no_more_than_a_hundred_values():
    assert "needs points" in refused({"learning_rate": LR}, "grid")["learning_rate"]
    assert "at most 100" in refused({"dense_units": {"type": "range", "low": 8, "high": 8192}}, "grid")["dense_units"]
    assert "points are for a grid" in refused({"learning_rate": {**LR, "points": 3}})["learning_rate"]
    space = search_space.clean(
        CNN, {"learning_rate": {**LR, "points": 4}, "filters": {"type": "choice", "values": [8, 16]}}, "grid"
    )
    assert search_space.grid(space) == {"learning_rate": [0.0001, 0.001, 0.01, 0.1], "filters": [8, 16]}
    assert search_space.grid_size(space) == 8


def test_an_unknown_strategy_is_refused():
    assert "strategy" in refused({"learning_rate": LR}, "bayes")


# --- the state machines ------------------------------------------------------------------------


def test_a_sweep_moves_once_and_never_out_of_an_end(make_sweep):
    sweep = make_sweep()
    stale = Sweep.objects.get(pk=sweep.pk)
    sweep.transition(Sweep.Status.SUCCEEDED)
    assert sweep.finished_at is not None
    with pytest.raises(StaleStatus):
        stale.transition(Sweep.Status.CANCELLED)  # the row moved under it: compare-and-set lost
    assert stale.status == Sweep.Status.SUCCEEDED  # refreshed
    with pytest.raises(IllegalTransition):
        sweep.transition(Sweep.Status.RUNNING)


def test_a_trial_ends_once(make_sweep):
    sweep = make_sweep(trials=[{"status": "RUNNING", "run_status": "RUNNING"}])
    trial = sweep.trials.get()
    trial.transition(Trial.State.PRUNED, pruned_at_epoch=2)
    with pytest.raises(IllegalTransition):
        trial.transition(Trial.State.COMPLETE)


# --- creating ---------------------------------------------------------------------------------


@pytest.fixture
def request_for(alice, cluster, digits_dataset):
    user, team = alice

    def make(**fields):
        args = dict(
            team=team,
            user=user,
            dataset=digits_dataset,
            template="cnn",
            space={"learning_rate": LR},
            cluster=cluster,
            num_executors=1,
            executor_cores=1,
            executor_memory_mb=1024,
            max_trials=4,
            parallel=2,
            hyperparameters={"epochs": 2},
        )
        args.update(fields)
        return args

    return make


def refused_request(**args):
    with pytest.raises(services.SweepRequestError) as exc:
        services.create_sweep(**args)
    return exc.value.errors


def test_a_sweep_is_saved_and_its_first_trials_are_made_on_commit(request_for, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        sweep = services.create_sweep(**request_for(name="lr sweep"))
    assert sweep.status == Sweep.Status.RUNNING and not sweep.trials.exists()  # nothing before commit
    assert len(callbacks) == 1
    assert sweep.base_hyperparameters["epochs"] == 2 and sweep.base_hyperparameters["validation_split"] == 0.1
    made = services.advance(sweep.pk)
    assert len(made) == 2  # trials at once
    runs = Run.objects.filter(pk__in=made)
    assert {r.status for r in runs} == {"QUEUED"}
    assert all(r.early_stop == {} for r in runs)  # no pruner: the executors never ask
    lrs = [r.hyperparameters["learning_rate"] for r in runs]
    assert len(set(lrs)) == 2 and all(0.0001 <= lr <= 0.1 for lr in lrs)
    assert services.advance(sweep.pk) == []  # idempotent: still two running


def test_each_refused_request_names_its_field(request_for, alice, cluster):
    assert "max_trials" in refused_request(**request_for(max_trials=501))
    # The fake cluster has 2 workers x 1 core: two 1-executor trials at once, not three.
    errors = refused_request(**request_for(parallel=3))
    assert "at most 2 trial(s) at once" in errors["parallel"] and "loopback holds 2" in errors["parallel"]
    TeamQuota.objects.create(cluster=cluster, team=alice[1], max_concurrent_runs=1)
    assert "quota allows 1 run" in refused_request(**request_for(parallel=2))["parallel"]
    assert (
        "validation split"
        in refused_request(**request_for(hyperparameters={"validation_split": 0}))["hyperparameters.validation_split"]
    )
    no_validation = {"validation_split": {"type": "range", "low": 0.0, "high": 0.3}}
    assert "hyperparameters.validation_split" in refused_request(**request_for(space=no_validation))
    assert "space.learning_rate" in refused_request(
        **request_for(space={"learning_rate": {"type": "choice", "values": []}})
    )
    assert "objective" in refused_request(**request_for(objective="test_accuracy"))
    assert "num_executors" in refused_request(**request_for(num_executors=3))
    assert "parallel" in refused_request(**request_for(parallel="3¹"))
    for factor in (1, 9, "4²"):  # ASHA keeps 1 in 2 to 1 in 8
        errors = refused_request(**request_for(pruner="asha", pruner_reduction_factor=factor))
        assert "pruner_reduction_factor" in errors
    assert not Sweep.objects.exists()


# --- advancing ---------------------------------------------------------------------------------


def finish(run, status="SUCCEEDED", val=None, result=None, objective="val_accuracy"):
    if val is not None:
        MetricPoint.objects.create(run=run, name=objective, executor="0", step=10, epoch=2, value=val, wall_time=0)
        MetricPoint.objects.create(run=run, name=objective, executor="0", step=5, epoch=1, value=0.01, wall_time=0)
    Run.objects.filter(pk=run.pk).update(status=status, result=result or {"epochs_run": 2})


def test_trials_are_made_as_earlier_ones_end_until_the_budget_is_spent(request_for):
    sweep = services.create_sweep(**request_for(max_trials=3, parallel=2))
    first = services.advance(sweep.pk)
    finish(Run.objects.get(pk=first[0]), val=0.8)
    third = services.advance(sweep.pk)
    assert len(third) == 1
    t0 = sweep.trials.get(number=0)
    assert (t0.status, t0.value, t0.epochs_run) == ("COMPLETE", 0.8, 2)  # the last epoch's, not the first's
    finish(Run.objects.get(pk=first[1]), val=0.6, result={"epochs_run": 1, "pruned_at_epoch": 1})
    finish(Run.objects.get(pk=third[0]), status="FAILED")
    assert services.advance(sweep.pk) == []
    sweep.refresh_from_db()
    states = dict(sweep.trials.values_list("number", "status"))
    assert states == {0: "COMPLETE", 1: "PRUNED", 2: "FAIL"}
    assert sweep.trials.get(number=1).pruned_at_epoch == 1
    assert sweep.status == Sweep.Status.SUCCEEDED
    assert services.best_trial(sweep).number == 0


def test_a_sweep_whose_trials_all_fail_fails(request_for):
    sweep = services.create_sweep(**request_for(max_trials=1, parallel=1))
    (run_id,) = services.advance(sweep.pk)
    finish(Run.objects.get(pk=run_id))  # succeeded but no validation point: nothing to select on
    services.advance(sweep.pk)
    sweep.refresh_from_db()
    assert sweep.trials.get().status == "FAIL" and "no val_accuracy" in sweep.trials.get().status_reason
    assert sweep.status == Sweep.Status.FAILED


def test_a_grid_makes_each_cell_once_and_stops_at_its_size(request_for):
    space = {
        "learning_rate": {"type": "choice", "values": [0.01, 0.001]},
        "optimizer": {"type": "choice", "values": ["adam", "sgd"]},
    }
    sweep = services.create_sweep(**request_for(space=space, strategy="grid", max_trials=10, parallel=2))
    seen = []
    for _ in range(3):
        for run_id in services.advance(sweep.pk):
            run = Run.objects.get(pk=run_id)
            seen.append((run.hyperparameters["learning_rate"], run.hyperparameters["optimizer"]))
            finish(run, val=0.5)
    assert sorted(seen) == sorted([(0.01, "adam"), (0.01, "sgd"), (0.001, "adam"), (0.001, "sgd")])
    services.advance(sweep.pk)
    sweep.refresh_from_db()
    assert sweep.status == Sweep.Status.SUCCEEDED and sweep.trials.count() == 4


def test_tpe_and_random_asks_do_not_repeat_after_a_rebuild(make_sweep):
    for strategy in ("random", "tpe"):
        sweep = make_sweep(strategy=strategy, max_trials=20)
        drawn = []
        for number in range(12):
            params, attrs = services.ask_params(sweep, number)
            Trial.objects.create(
                sweep=sweep, number=number, params=params, system_attrs=attrs, status="COMPLETE", value=number / 20
            )
            drawn.append(params["learning_rate"])
        assert len(set(drawn)) == 12, strategy


# --- early stopping ----------------------------------------------------------------------------


def median_sweep(make_sweep, warmup=0):
    return make_sweep(
        pruner="median",
        pruner_startup_trials=2,
        pruner_warmup_epochs=warmup,
        trials=[
            {"value": 0.9, "epochs": {1: 0.6, 2: 0.9}},
            {"value": 0.8, "epochs": {1: 0.5, 2: 0.8}},
            {"status": "RUNNING", "run_status": "RUNNING"},
        ],
    )


def test_the_median_pruner_stops_a_trial_below_the_median_and_the_answer_is_written_once(make_sweep):
    sweep = median_sweep(make_sweep)
    run = sweep.trials.get(number=2).run
    assert services.report_epoch(run, 1, 0.55) == "continue"  # the median at epoch 1 is 0.55
    assert services.report_epoch(run, 2, 0.1) == "stop"
    # Every other node asking about epoch 2 gets the same word, whatever value it reports.
    assert services.report_epoch(run, 2, 0.99) == "stop"
    assert list(TrialEpoch.objects.filter(trial__run=run).values_list("epoch", "decision")) == [
        (1, "continue"),
        (2, "stop"),
    ]


def test_warm_up_epochs_are_never_judged(make_sweep):
    run = median_sweep(make_sweep, warmup=1).trials.get(number=2).run
    assert services.report_epoch(run, 1, 0.01) == "continue"  # far below the median, but warming up
    assert services.report_epoch(run, 2, 0.01) == "stop"  # the first epoch judged


def test_no_pruner_and_a_diverged_value(make_sweep):
    sweep = make_sweep(trials=[{"status": "RUNNING", "run_status": "RUNNING"}])
    run = sweep.trials.get().run
    assert services.report_epoch(run, 1, 0.0) == "continue"
    pruning = median_sweep(make_sweep)
    diverged = pruning.trials.get(number=2).run
    assert services.report_epoch(diverged, 1, math.nan) == "stop"
    assert TrialEpoch.objects.get(trial__run=diverged).value == -1e300  # stored: SQL takes no NaN


def test_asha_decides_through_optuna_and_keeps_its_rungs_between_rebuilds(make_sweep):
    sweep = make_sweep(
        pruner="asha",
        pruner_warmup_epochs=1,
        trials=[{"status": "RUNNING", "run_status": "RUNNING"} for _ in range(3)],
    )
    runs = [t.run for t in sweep.trials.order_by("number")]
    assert services.report_epoch(runs[0], 1, 0.9) == "continue"  # alone in rung 0
    assert sweep.trials.get(number=0).system_attrs == {"completed_rung_0": 0.9}
    assert services.report_epoch(runs[1], 1, 0.95) == "continue"  # the best of rung 0
    assert services.report_epoch(runs[2], 1, 0.1) == "stop"  # not in the top quarter of 0.9, 0.95, 0.1


@pytest.mark.parametrize("factor, decision", [(2, "continue"), (4, "stop")])
def test_asha_keeps_one_in_its_reduction_factor_at_each_rung(make_sweep, factor, decision):
    sweep = make_sweep(
        pruner="asha",
        pruner_warmup_epochs=1,
        pruner_reduction_factor=factor,
        trials=[{"status": "RUNNING", "run_status": "RUNNING"} for _ in range(4)],
    )
    runs = [t.run for t in sweep.trials.order_by("number")]
    for run, value in zip(runs[:3], (0.9, 0.95, 0.5), strict=True):
        services.report_epoch(run, 1, value)
    # The second best of four at rung 0 (epoch 1): in the top half, not in the top quarter.
    assert services.report_epoch(runs[3], 1, 0.92) == decision
    # With a factor of 2, rung 1 is at epoch 2 (1 × 2): there the trial must be the best of two.
    if decision == "continue":
        services.report_epoch(runs[1], 2, 0.97)
        assert services.report_epoch(runs[3], 2, 0.5) == "stop"


@pytest.mark.parametrize("epoch, value", [(0, 0.5), (True, 0.5), ("1", 0.5), (1, "0.5"), (1, None), (10**9, 0.5)])
def test_a_bad_epoch_report_is_refused(make_sweep, epoch, value):
    sweep = make_sweep(trials=[{"status": "RUNNING", "run_status": "RUNNING"}])
    with pytest.raises(services.EpochReportError):
        services.report_epoch(sweep.trials.get().run, epoch, value)


def test_the_epoch_endpoint_answers_the_runs_nodes_only(make_sweep, client):
    sweep = median_sweep(make_sweep)
    run = sweep.trials.get(number=2).run
    url = f"/ingest/runs/{run.pk}/epoch"
    auth = {"HTTP_AUTHORIZATION": f"Bearer {run.ingest_token}"}
    r = client.post(url, {"epoch": 2, "value": 0.1, "executor": "1"}, content_type="application/json", **auth)
    assert r.status_code == 200 and r.json()["decision"] == "stop"
    assert client.post(url, {"epoch": 2, "value": 0.1}, content_type="application/json").status_code == 403
    bad = client.post(url, "[" * 100_000, content_type="application/json", **auth)
    assert bad.status_code == 400
    assert client.post(url, {"epoch": "x"}, content_type="application/json", **auth).status_code == 400
    plain = Run.objects.get(name="seed-run")  # not a trial
    r = client.post(
        f"/ingest/runs/{plain.pk}/epoch",
        {"epoch": 1, "value": 0.1},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {plain.ingest_token}",
    )
    assert r.status_code == 400 and "not a sweep's trial" in r.json()["error"]


def test_a_trial_run_asks_the_epoch_endpoint_when_its_sweep_prunes(request_for):
    from webapp.runs.lifecycle import build_spec

    sweep = services.create_sweep(**request_for(pruner="median", objective="val_loss"))
    (run_id, _) = services.advance(sweep.pk)
    spec = build_spec(Run.objects.get(pk=run_id))
    assert spec["metrics"]["prune"]["url"].endswith(f"/ingest/runs/{run_id}/epoch")
    assert spec["metrics"]["prune"]["objective"] == "val_loss"


def test_cancelling_a_sweep_cancels_its_runs_and_makes_no_more(request_for):
    sweep = services.create_sweep(**request_for(max_trials=4, parallel=2))
    made = services.advance(sweep.pk)
    services.cancel(sweep, by="alice")
    assert set(Run.objects.filter(pk__in=made).values_list("status", flat=True)) == {"CANCELLED"}
    assert set(sweep.trials.values_list("status", flat=True)) == {"FAIL"}
    assert services.advance(sweep.pk) == []
    assert Sweep.objects.get(pk=sweep.pk).status == "CANCELLED"


def test_importance_needs_two_different_finished_trials(make_sweep):
    sweep = make_sweep(space={"learning_rate": LR, "dropout": {"type": "range", "low": 0.0, "high": 0.5, "log": False}})
    assert services.importance(sweep) == {}
    for i, (lr, dropout, value) in enumerate(
        [(0.001, 0.1, 0.9), (0.01, 0.4, 0.5), (0.05, 0.2, 0.3), (0.0005, 0.3, 0.95)]
    ):
        Trial.objects.create(
            sweep=sweep, number=i, params={"learning_rate": lr, "dropout": dropout}, status="COMPLETE", value=value
        )
    got = services.importance(sweep)
    assert set(got) == {"learning_rate", "dropout"} and math.isclose(sum(got.values()), 1.0)


def test_the_epoch_endpoint_answers_nodes_by_the_run_s_token(make_sweep, client):
    sweep = median_sweep(make_sweep)
    run = sweep.trials.get(number=2).run
    url = reverse("ingest_epoch", args=[run.pk])

    def post(body, token=run.ingest_token, raw=None):
        return client.post(
            url, raw if raw is not None else json.dumps(body), "application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
        )

    answer = post({"epoch": 1, "value": 0.55, "diverged": False, "executor": "0"})
    assert answer.status_code == 200 and answer.json() == {"decision": "continue", "epoch": 1}
    # A diverged node sends null (JSON has no NaN): stopped, stored as the worst value.
    assert post({"epoch": 2, "value": None, "diverged": True, "executor": "1"}).json()["decision"] == "stop"
    assert TrialEpoch.objects.get(trial__run=run, epoch=2).value == -1e300
    assert post({"epoch": 3, "value": 0.9}, token="wrong").status_code == 403
    other = sweep.trials.get(number=0).run  # another run's token is not this run's
    assert post({"epoch": 3, "value": 0.9}, token=other.ingest_token).status_code == 403
    for body, message in [
        ({"epoch": 3, "value": None}, "value must be a number"),
        ({"epoch": "3", "value": 0.5}, "epoch must be a whole number"),
        ({"epoch": 10**30, "value": 0.5}, "epoch must be a whole number"),
        ([1, 2], "JSON object"),
    ]:
        bad = post(body)
        assert bad.status_code == 400 and message in bad.json()["error"], body
    assert post(None, raw="[" * 100_000).status_code == 400
    assert post(None, raw="\x00{").status_code == 400
    assert client.get(url).status_code == 405
    assert not TrialEpoch.objects.filter(trial__run=run, epoch=3).exists()
