"""The sweep and trial state machines: statuses and legal moves, declared once."""

from django.db import models


class SweepStatus(models.TextChoices):
    RUNNING = "RUNNING", "Running"
    SUCCEEDED = "SUCCEEDED", "Succeeded"  # the budget is spent and every trial ended
    FAILED = "FAILED", "Failed"  # every trial failed, or no trial could be made
    CANCELLED = "CANCELLED", "Cancelled"


SWEEP_ACTIVE = frozenset({SweepStatus.RUNNING})
SWEEP_TERMINAL = frozenset({SweepStatus.SUCCEEDED, SweepStatus.FAILED, SweepStatus.CANCELLED})
SWEEP_TRANSITIONS = {
    SweepStatus.RUNNING: frozenset({SweepStatus.SUCCEEDED, SweepStatus.FAILED, SweepStatus.CANCELLED}),
    SweepStatus.SUCCEEDED: frozenset(),
    SweepStatus.FAILED: frozenset(),
    SweepStatus.CANCELLED: frozenset(),
}
SWEEP_STAMPS = {s: "finished_at" for s in SWEEP_TERMINAL}


class TrialState(models.TextChoices):
    """Optuna's trial states, as far as a trial of ours can be in them."""

    RUNNING = "RUNNING", "Running"  # its run is queued, submitted or running
    COMPLETE = "COMPLETE", "Finished"
    PRUNED = "PRUNED", "Pruned"  # stopped early by the pruner; its run SUCCEEDED at that epoch
    FAIL = "FAIL", "Failed"  # its run failed or was cancelled, or it reported no objective


TRIAL_ACTIVE = frozenset({TrialState.RUNNING})
TRIAL_TERMINAL = frozenset({TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL})
TRIAL_TRANSITIONS = {
    TrialState.RUNNING: frozenset({TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}),
    TrialState.COMPLETE: frozenset(),
    TrialState.PRUNED: frozenset(),
    TrialState.FAIL: frozenset(),
}
TRIAL_STAMPS = {s: "finished_at" for s in TRIAL_TERMINAL}
