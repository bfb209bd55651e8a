import pytest

from webapp.runs.models import Run
from webapp.runs.states import ACTIVE, TERMINAL, TRANSITIONS, IllegalTransition, StaleStatus, Status


def test_every_status_is_active_or_terminal_never_both():
    assert ACTIVE | TERMINAL == set(Status)
    assert not ACTIVE & TERMINAL
    for s in TERMINAL:
        assert TRANSITIONS[s] == frozenset()


@pytest.fixture
def run(alice, cluster, digits_dataset):
    user, team = alice
    return Run.objects.create(team=team, created_by=user, dataset=digits_dataset, template="cnn", cluster=cluster)


@pytest.mark.django_db
def test_happy_path_stamps_times(run):
    run.transition(Status.SUBMITTED)
    run.transition(Status.RUNNING)
    run.transition(Status.SUCCEEDED, test_accuracy=0.97)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    assert run.submitted_at and run.started_at and run.finished_at
    assert run.submitted_at <= run.started_at <= run.finished_at
    assert run.test_accuracy == 0.97


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path,bad",
    [
        ([], Status.RUNNING),
        ([], Status.SUCCEEDED),
        ([Status.SUBMITTED, Status.RUNNING, Status.SUCCEEDED], Status.FAILED),
        ([Status.FAILED], Status.QUEUED),
        ([Status.CANCELLED], Status.SUBMITTED),
        ([Status.SUBMITTED, Status.RUNNING], Status.SUBMITTED),
    ],
)
def test_illegal_moves_raise_and_change_nothing(run, path, bad):
    for s in path:
        run.transition(s)
    before = Run.objects.get(pk=run.pk).status
    with pytest.raises(IllegalTransition):
        run.transition(bad)
    assert Run.objects.get(pk=run.pk).status == before


@pytest.mark.django_db
def test_failure_keeps_reason(run):
    run.transition(Status.FAILED, reason="cluster unreachable", detail="line 1\nline 2")
    run.refresh_from_db()
    assert run.status_reason == "cluster unreachable"
    assert "line 2" in run.status_detail


@pytest.mark.django_db
def test_compare_and_set_loses_to_a_concurrent_writer(run):
    other = Run.objects.get(pk=run.pk)
    other.transition(Status.CANCELLED)  # another process got there first
    with pytest.raises(StaleStatus):
        run.transition(Status.SUBMITTED)
    assert run.status == Status.CANCELLED  # refreshed from the database
    assert Run.objects.get(pk=run.pk).submitted_at is None
