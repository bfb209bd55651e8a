"""The dataset state machine: statuses and legal moves, declared once.

UPLOADED (the original is stored, conversion queued) → CONVERTING (a worker claimed it) → READY | FAILED;
READY → ARCHIVED (hidden, files kept for the runs that used it).
"""

from django.db import models

from webapp.statemachine import IllegalTransition, StaleStatus  # noqa: F401 (re-exported)


class Status(models.TextChoices):
    UPLOADED = "UPLOADED", "Uploaded"
    CONVERTING = "CONVERTING", "Converting"
    READY = "READY", "Ready"
    FAILED = "FAILED", "Failed"
    ARCHIVED = "ARCHIVED", "Archived"


# Conversion still to come or under way: the page polls, the dataset cannot be deleted while CONVERTING.
ACTIVE = frozenset({Status.UPLOADED, Status.CONVERTING})
# Conversion is over. READY → ARCHIVED is the one move out of this set.
TERMINAL = frozenset({Status.READY, Status.FAILED, Status.ARCHIVED})

# UPLOADED → FAILED: the conversion could not even be queued.
TRANSITIONS = {
    Status.UPLOADED: frozenset({Status.CONVERTING, Status.FAILED}),
    Status.CONVERTING: frozenset({Status.READY, Status.FAILED}),
    Status.READY: frozenset({Status.ARCHIVED}),
    Status.FAILED: frozenset(),
    Status.ARCHIVED: frozenset(),
}

# The timestamp each status stamps when entered.
STAMPS = {
    Status.CONVERTING: "conversion_started_at",
    Status.READY: "converted_at",
}

# A run may be trained only on these; ARCHIVED datasets keep their files for the runs that used them.
USABLE = frozenset({Status.READY})
# Deleting is refused while a worker writes into the dataset's directory.
DELETABLE = frozenset({Status.UPLOADED, Status.READY, Status.FAILED, Status.ARCHIVED})
