"""The run state machine: statuses and legal moves, declared once."""

from django.db import models


class Status(models.TextChoices):
    QUEUED = "QUEUED", "Queued"
    SUBMITTED = "SUBMITTED", "Submitted"
    RUNNING = "RUNNING", "Running"
    SUCCEEDED = "SUCCEEDED", "Succeeded"
    FAILED = "FAILED", "Failed"
    CANCELLED = "CANCELLED", "Cancelled"


ACTIVE = frozenset({Status.QUEUED, Status.SUBMITTED, Status.RUNNING})
TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

# SUBMITTED → SUCCEEDED: a short job can finish between two reconcile ticks.
# QUEUED → FAILED: the submission itself failed (cluster unreachable, bad request).
TRANSITIONS = {
    Status.QUEUED: frozenset({Status.SUBMITTED, Status.FAILED, Status.CANCELLED}),
    Status.SUBMITTED: frozenset({Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}),
    Status.RUNNING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}),
    Status.SUCCEEDED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
}

# The timestamp each status stamps when entered.
STAMPS = {
    Status.SUBMITTED: "submitted_at",
    Status.RUNNING: "started_at",
    Status.SUCCEEDED: "finished_at",
    Status.FAILED: "finished_at",
    Status.CANCELLED: "finished_at",
}


class IllegalTransition(Exception):
    pass


class StaleStatus(Exception):
    """Another writer moved the run first (compare-and-set lost)."""


def check_move(current: str, target: str) -> None:
    if target not in TRANSITIONS[Status(current)]:
        raise IllegalTransition(f"a run cannot go from {current} to {target}")
