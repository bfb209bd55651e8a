"""A hyperparameter sweep on the real stack: PostgreSQL, gunicorn (the executors' epoch reports), the
Celery worker and beat on Redis (trials made as earlier ones end), the loopback Spark cluster (2 workers
× 1 core) running each trial as a real TFoS run; the worker is SIGKILLed mid-sweep and restarted."""

import time

import pytest
import requests
from django.test import Client
from django.urls import reverse

from tests.e2e.conftest import kill_group
from tests.e2e.runs import descendants, wait_for, worker_daemons
from webapp.runs.models import Run
from webapp.sweeps import services
from webapp.sweeps.models import Sweep, TrialEpoch

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.django_db(transaction=True)]

EPOCHS = 4
# Adam at 1.0 (the schema's highest rate) diverges; Optuna's RandomSampler with seed 29 (+ the trial
# number, see services._sampler) draws 0.003, 0.003, 1.0, 0.003: two good trials run first, then the
# diverging one meets their median after its warm-up epoch.
SEED = 29
DRAWS = [0.003, 0.003, 1.0, 0.003]


def test_a_random_sweep_prunes_the_diverging_trial_and_survives_a_worker_kill(
    stack, owner, alice, bob, digits_dataset, loopback_cluster, spark_cluster
):
    wait_for(lambda: not descendants(worker_daemons(spark_cluster)), 60, "an idle cluster")
    user, team = alice
    sweep = services.create_sweep(
        team=team,
        user=user,
        dataset=digits_dataset,
        template="cnn",
        space={"learning_rate": {"type": "choice", "values": [0.003, 1.0]}},
        hyperparameters={"epochs": EPOCHS, "filters": 8, "dense_units": 64, "batch_size": 64},
        cluster=loopback_cluster,
        strategy="random",
        objective="val_accuracy",
        pruner="median",
        pruner_startup_trials=1,
        pruner_warmup_epochs=1,
        max_trials=4,
        parallel=2,
        seed=SEED,
        num_executors=1,
        executor_cores=1,
        executor_memory_mb=1536,
    )

    def two_running():
        runs = Run.objects.filter(sweep_trial__sweep=sweep, status=Run.Status.RUNNING)
        return runs.count() == 2

    wait_for(two_running, 180, "the first two trials to be RUNNING")
    assert Run.objects.filter(sweep_trial__sweep=sweep).count() == 2  # no more than trials-at-once
    # The worker dies mid-sweep (SIGKILL, its whole group); the sweep's state is all in the database.
    kill_group(stack.worker)
    time.sleep(3)
    stack.start_worker()

    def ended():
        s = Sweep.objects.get(pk=sweep.pk)
        return s if s.is_terminal else None

    sweep = wait_for(ended, 600, "the sweep to end")
    assert sweep.status == Sweep.Status.SUCCEEDED, sweep.status_reason
    trials = list(sweep.trials.select_related("run").order_by("number"))
    assert len(trials) == 4 and all(t.status != "RUNNING" for t in trials)  # the budget is spent
    assert [t.params["learning_rate"] for t in trials] == DRAWS

    diverged = trials[2]
    assert diverged.status == "PRUNED", [(t.number, t.status, t.value, t.status_reason) for t in trials]
    assert diverged.pruned_at_epoch is not None and 1 < diverged.pruned_at_epoch < EPOCHS
    assert diverged.epochs_run == diverged.pruned_at_epoch
    stop = TrialEpoch.objects.get(trial=diverged, epoch=diverged.pruned_at_epoch)
    assert stop.decision == "stop"
    # Its run ended at that epoch boundary, not as a failure, and gave its executors back within seconds.
    run = diverged.run
    assert run.status == Run.Status.SUCCEEDED and run.result["pruned_at_epoch"] == diverged.pruned_at_epoch
    assert (run.finished_at - stop.decided_at).total_seconds() < 45
    apps = requests.get(f"{spark_cluster.rest_url}/json/", timeout=10).json()
    assert run.spark_app_id in {a["id"] for a in apps["completedapps"]}
    assert run.spark_app_id not in {a["id"] for a in apps["activeapps"]}
    epoch_points = run.metrics.filter(name="epoch_loss").values_list("epoch", flat=True)
    assert max(epoch_points) == diverged.pruned_at_epoch  # its metrics are kept, up to that epoch
    assert (run.run_dir / "driver.log").stat().st_size > 0

    finished = [t for t in trials if t.status == "COMPLETE"]
    assert len(finished) >= 2
    best = services.best_trial(sweep)
    assert best.value == max(t.value for t in finished) and best.value > 0.5
    assert best.run.test_accuracy is not None and best.run.test_accuracy > 0.5
    for t in finished:
        assert t.epochs_run == EPOCHS
        last = t.run.metrics.filter(name="val_accuracy").order_by("-step").first()
        assert t.value == last.value  # the validation split's, never the test split's

    # The pages and the API, for the team; another team gets 404 everywhere.
    page = owner.get(reverse("sweep_detail", args=[sweep.pk]))
    assert page.status_code == 200 and "pruned at epoch" in page.content.decode()
    live = owner.get(reverse("sweep_live", args=[sweep.pk])).json()
    assert len(live["trials"]) == 4
    api = owner.get(f"/api/sweeps/{sweep.pk}/")
    assert api.status_code == 200 and api.json()["status"] == "SUCCEEDED"
    assert len(owner.get(f"/api/sweeps/{sweep.pk}/trials/").json()["results"]) == 4
    other = Client()
    other.force_login(bob[0])
    for url in (
        reverse("sweep_detail", args=[sweep.pk]),
        reverse("sweep_live", args=[sweep.pk]),
        f"/api/sweeps/{sweep.pk}/",
        f"/api/sweeps/{sweep.pk}/trials/",
    ):
        assert other.get(url).status_code == 404, url
    wait_for(lambda: not descendants(worker_daemons(spark_cluster)), 60, "no executor left")
