from pathlib import Path

from django.conf import settings
from django.db import models
from django.urls import reverse

from webapp.accounts.models import Team, TeamScopedQuerySet


class Dataset(models.Model):
    class Status(models.TextChoices):
        READY = "READY", "Ready"
        FAILED = "FAILED", "Failed"

    class Layout(models.TextChoices):
        IMAGE = "image", "Images"
        SEQUENCE = "sequence", "Sequences"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    source_format = models.CharField(max_length=10)
    original_name = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.READY)
    layout = models.CharField(max_length=10, choices=Layout.choices, default=Layout.IMAGE)
    shape = models.JSONField(default=list)  # [h, w, c] for images, [steps, features] for sequences
    num_classes = models.PositiveIntegerField(default=0)
    class_names = models.JSONField(default=list)
    class_counts = models.JSONField(default=list)
    train_rows = models.PositiveIntegerField(default=0)
    test_rows = models.PositiveIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="dataset_name_per_team")]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("dataset_detail", args=[self.pk])

    @property
    def storage_dir(self) -> Path:
        return settings.DATA_ROOT / "datasets" / str(self.pk)

    @property
    def rows(self):
        return self.train_rows + self.test_rows

    @property
    def is_sequence(self) -> bool:
        return self.layout == self.Layout.SEQUENCE

    @property
    def shape_text(self):
        return " × ".join(str(d) for d in self.shape)

    def original_path(self) -> Path:
        return self.storage_dir / f"original.{self.source_format}"
