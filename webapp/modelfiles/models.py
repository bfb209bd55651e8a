from pathlib import Path

from django.conf import settings
from django.db import models
from django.urls import reverse

from webapp.accounts.models import Team, TeamScopedQuerySet


class ModelFile(models.Model):
    """A Keras model file a user uploaded, checked (no Lambda, no custom objects) and described."""

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
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="model_file_name_per_team")]

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
    def input_shape_text(self):
        return " × ".join(str(d) for d in self.input_shape)
