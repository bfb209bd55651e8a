"""The run state machine: statuses and legal moves, declared once."""

from django.db import models

from webapp.statemachine import IllegalTransition, StaleStatus  # noqa: F401 (re-exported)


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
# SUBMITTED → QUEUED: the claiming worker died before it launched anything; the run is sent again.
TRANSITIONS = {
    Status.QUEUED: frozenset({Status.SUBMITTED, Status.FAILED, Status.CANCELLED}),
    Status.SUBMITTED: frozenset({Status.QUEUED, Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}),
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
