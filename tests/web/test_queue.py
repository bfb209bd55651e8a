"""The capacity-aware queue, with a faked cluster answer and a recording submit (the real cluster
path: tests/e2e/test_queue_cancel.py)."""

import pytest

from tests.conftest import idle_workers
from webapp.clusters.models import Cluster, TeamQuota
from webapp.runs import lifecycle, scheduler
from webapp.runs.models import Run
from webapp.runs.services import create_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """lifecycle.submit claims the run (QUEUED → SUBMITTED) and records it; nothing is launched."""
    ids = []

    def fake_submit(run_id):
        Run.objects.get(pk=run_id).transition(Run.Status.SUBMITTED)
        ids.append(run_id)

    monkeypatch.setattr(lifecycle, "submit", fake_submit)
    return ids


def new_run(member, dataset, cluster, n=1, cores=1, memory=1024):
    user, team = member
    return create_run(
        team=team,
        user=user,
        dataset=dataset,
        template="cnn",
        hyperparameters={"epochs": 1},
        cluster=cluster,
        num_executors=n,
        executor_cores=cores,
        executor_memory_mb=memory,
    )


def occupy(fake_capacity, cores_free):
    for w, free in zip(fake_capacity.workers, cores_free, strict=False):
        w.cores_free = free


def refresh(*runs):
    for r in runs:
        r.refresh_from_db()


def test_runs_that_fit_go_the_third_waits_and_goes_when_one_ends(alice, digits_dataset, cluster, fake_capacity, sent):
    a, b, c = (new_run(alice, digits_dataset, cluster) for _ in range(3))
    assert scheduler.dispatch(cluster.pk) == [a.pk, b.pk]  # 2 workers × 1 core: two 1-executor runs
    refresh(a, b, c)
    assert (a.status, b.status, c.status) == ("SUBMITTED", "SUBMITTED", "QUEUED")
    assert c.queue_position() == 1
    assert "Waiting for capacity: needs 1 executor(s) × 1 core(s), 1024 MB" in c.queue_reason

    # Both run: the master counts their executors, so the live free capacity is zero.
    a.transition(Run.Status.RUNNING)
    b.transition(Run.Status.RUNNING)
    occupy(fake_capacity, [0, 0])
    assert scheduler.dispatch(cluster.pk) == []

    a.transition(Run.Status.SUCCEEDED)
    occupy(fake_capacity, [1, 0])
    assert scheduler.dispatch(cluster.pk) == [c.pk]
    c.refresh_from_db()
    assert c.status == "SUBMITTED" and c.queue_reason == "" and c.queue_position() is None


def test_order_is_kept_a_big_run_at_the_head_is_not_overtaken(alice, digits_dataset, cluster, fake_capacity, sent):
    running = new_run(alice, digits_dataset, cluster)
    scheduler.dispatch(cluster.pk)
    big = new_run(alice, digits_dataset, cluster, n=2)
    small = new_run(alice, digits_dataset, cluster, n=1)
    assert scheduler.dispatch(cluster.pk) == []  # one core is free, but the big run came first
    refresh(big, small)
    assert (big.queue_position(), small.queue_position()) == (1, 2)
    assert small.queue_reason == f"Waiting behind run {big.pk} (runs start in the order they were submitted)."
    running.refresh_from_db()
    running.transition(Run.Status.FAILED, reason="x")
    assert scheduler.dispatch(cluster.pk) == [big.pk]


def test_a_run_the_shrunken_cluster_cannot_host_does_not_block_others(
    alice, digits_dataset, cluster, fake_capacity, sent
):
    big = new_run(alice, digits_dataset, cluster, n=2)  # accepted while 2 workers were alive
    fake_capacity.workers = idle_workers(n=1)  # one worker died
    small = new_run(alice, digits_dataset, cluster, n=1)
    assert scheduler.dispatch(cluster.pk) == [small.pk]
    big.refresh_from_db()
    assert big.status == "QUEUED" and "does not fit loopback as it is now (1 live worker(s)" in big.queue_reason


def test_team_quota_holds_a_teams_run_but_not_other_teams(alice, bob, digits_dataset, cluster, fake_capacity, sent):
    from webapp.datasets.models import Dataset

    Cluster.objects.filter(pk=cluster.pk).update(max_executors=2)
    TeamQuota.objects.create(cluster=cluster, team=alice[1], max_concurrent_runs=1)
    first = new_run(alice, digits_dataset, cluster)
    second = new_run(alice, digits_dataset, cluster)
    bob_ds = Dataset.objects.get(pk=digits_dataset.pk)
    bob_ds.pk, bob_ds.team = None, bob[1]
    bob_ds.save()
    bobs = new_run(bob, bob_ds, cluster)
    assert scheduler.dispatch(cluster.pk) == [first.pk, bobs.pk]
    second.refresh_from_db()
    assert second.queue_reason == "Waiting: your team's quota allows 1 active run(s) on this cluster."


def test_unreachable_cluster_keeps_runs_queued_with_the_reason(alice, digits_dataset, cluster, fake_capacity, sent):
    run = new_run(alice, digits_dataset, cluster)
    fake_capacity.reachable, fake_capacity.error = False, "connection refused"
    assert scheduler.dispatch(cluster.pk) == []
    run.refresh_from_db()
    assert run.status == "QUEUED" and "not reachable (connection refused)" in run.queue_reason


def test_submitted_runs_not_yet_counted_by_the_master_are_reserved(alice, digits_dataset, cluster, fake_capacity, sent):
    a = new_run(alice, digits_dataset, cluster, n=2)
    assert scheduler.dispatch(cluster.pk) == [a.pk]
    b = new_run(alice, digits_dataset, cluster, n=1)
    # The master still reports both workers free (a's executors not granted yet): b must wait.
    assert scheduler.dispatch(cluster.pk) == []
    b.refresh_from_db()
    assert "free now: 0 core(s)/2048 MB, 0 core(s)/2048 MB" in b.queue_reason


def test_cancel_a_queued_run_and_it_is_never_sent(alice, digits_dataset, cluster, fake_capacity, sent):
    run = new_run(alice, digits_dataset, cluster)
    lifecycle.cancel(run, by="alice")
    assert scheduler.dispatch(cluster.pk) == [] and sent == []
    run.refresh_from_db()
    assert run.status == "CANCELLED" and run.status_reason == "Cancelled by alice."


def test_new_run_is_dispatched_by_the_submit_task_on_commit(
    alice, digits_dataset, cluster, fake_capacity, sent, eager_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = new_run(alice, digits_dataset, cluster)
    assert sent == [run.pk]


def test_reconcile_tick_dispatches_queued_runs(alice, digits_dataset, cluster, fake_capacity, sent):
    from webapp.runs.tasks import reconcile_runs

    run = new_run(alice, digits_dataset, cluster)
    reconcile_runs()
    assert sent == [run.pk]
