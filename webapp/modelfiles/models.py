from pathlib import Path

from django.conf import settings
from django.db import models
from django.urls import reverse

from webapp.accounts.models import Team, TeamScopedQuerySet
from webapp.statemachine import compare_and_set

from .states import ACTIVE, STAMPS, TRANSITIONS, USABLE, Status


class ModelFile(models.Model):
    """A Keras model file a user uploaded; a worker checks it (no Lambda, no custom objects) and
    describes it (webapp/modelfiles/tasks.py). Runs build only on READY ones."""

    Status = Status

    class Format(models.TextChoices):
        KERAS = "keras", "Keras archive (.keras)"
        H5 = "h5", "Legacy HDF5 (.h5)"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="model_files")
    name = models.CharField(max_length=200)
    original_name = models.CharField(max_length=255)
    format = models.CharField(max_length=10, choices=Format.choices)
    input_shape = models.JSONField(default=list)
    num_outputs = models.PositiveIntegerField(default=0)
    output_activation = models.CharField(max_length=50, blank=True)
    params = models.BigIntegerField(default=0)
    layer_classes = models.JSONField(default=list)
    size_bytes = models.BigIntegerField(default=0)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.UPLOADED, db_index=True)
    status_reason = models.TextField(blank=True)
    check_started_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        # A FAILED upload keeps its row (and reason) without holding its name: upload it again.
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"],
                condition=~models.Q(status="FAILED"),
                name="model_file_name_per_team",
            )
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("modelfile_detail", args=[self.pk])

    @property
    def format_ext(self) -> str:
        """The file suffix without its dot: tf_keras picks its loader by '.keras' vs '.h5'."""
        return "keras" if self.format == self.Format.KERAS else "h5"

    @property
    def storage_path(self) -> Path:
        return settings.DATA_ROOT / "models" / str(self.pk) / f"model.{self.format_ext}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def is_usable(self) -> bool:
        return self.status in USABLE

    def transition(self, target: str, reason: str = "", **fields) -> None:
        """Compare-and-set move to `target` (webapp.statemachine): IllegalTransition for a move the
        state machine forbids, StaleStatus when another writer moved the row first."""
        if reason:
            fields["status_reason"] = reason[:2000]
        compare_and_set(self, target, TRANSITIONS, STAMPS, fields)

    @property
    def input_shape_text(self):
        return " × ".join(str(d) for d in self.input_shape)
