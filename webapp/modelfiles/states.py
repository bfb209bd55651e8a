"""The model-file state machine: statuses and legal moves, declared once.

UPLOADED (the file is stored, its check queued) → CHECKING (a worker claimed it) → READY | FAILED
(with the reason; the file is removed, the row stays so the user sees why).
"""

from django.db import models

from webapp.statemachine import IllegalTransition, StaleStatus  # noqa: F401 (re-exported)


class Status(models.TextChoices):
    UPLOADED = "UPLOADED", "Uploaded"
    CHECKING = "CHECKING", "Checking"
    READY = "READY", "Ready"
    FAILED = "FAILED", "Failed"


# The check is still to come or under way: the page reloads until it is over.
ACTIVE = frozenset({Status.UPLOADED, Status.CHECKING})

# UPLOADED → FAILED: the check could not even be queued.
TRANSITIONS = {
    Status.UPLOADED: frozenset({Status.CHECKING, Status.FAILED}),
    Status.CHECKING: frozenset({Status.READY, Status.FAILED}),
    Status.READY: frozenset(),
    Status.FAILED: frozenset(),
}

# The timestamp each status stamps when entered.
STAMPS = {
    Status.CHECKING: "check_started_at",
    Status.READY: "checked_at",
    Status.FAILED: "checked_at",
}

# Runs may build only on these.
USABLE = frozenset({Status.READY})
