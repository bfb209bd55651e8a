from pathlib import Path

from django.conf import settings
from django.db import models
from django.urls import reverse

from webapp.accounts.models import Team, TeamScopedQuerySet
from webapp.statemachine import compare_and_set

from .states import ACTIVE, STAMPS, TERMINAL, TRANSITIONS, USABLE, Status

UPLOAD_DIR = "upload"  # <storage_dir>/upload/original.<ext> (and test.<ext>): the files as uploaded


class Dataset(models.Model):
    Status = Status

    class Layout(models.TextChoices):
        IMAGE = "image", "Images"
        SEQUENCE = "sequence", "Sequences"
        TABLE = "table", "Table"

    # What an upload may ask for: a layout, or "auto" (ingest.shapes.resolve_layout picks one).
    UPLOAD_LAYOUTS = [("auto", "Automatic"), *Layout.choices]

    class SplitMode(models.TextChoices):  # the values of ingest's DatasetInfo.split_mode
        FRACTION = "fraction", "Stratified random split"
        TEST_FILE = "uploaded", "Separate test file"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    source_format = models.CharField(max_length=10)
    original_name = models.CharField(max_length=255)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.UPLOADED, db_index=True)
    status_reason = models.TextField(blank=True)
    layout = models.CharField(max_length=10, choices=Layout.choices, default=Layout.IMAGE)
    shape = models.JSONField(
        default=list
    )  # [h, w, c] for images, [steps, features] for sequences, [features] for tables
    num_classes = models.PositiveIntegerField(default=0)
    class_names = models.JSONField(default=list)
    class_counts = models.JSONField(default=list)
    train_rows = models.PositiveIntegerField(default=0)
    test_rows = models.PositiveIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)  # the uploaded file(s), as uploaded
    size_on_disk = models.BigIntegerField(default=0)  # everything under storage_dir: converted files + uploads
    dtype = models.CharField(max_length=20, blank=True)  # the values' type in the uploaded file
    split_mode = models.CharField(max_length=10, choices=SplitMode.choices, default=SplitMode.FRACTION)
    # What the uploader chose, kept for the conversion task: label_column, layout, shape, x_key, y_key,
    # image_size, test_fraction, seed, test_format (see services.create_dataset).
    options = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    conversion_started_at = models.DateTimeField(null=True, blank=True)
    # When the conversion task was last queued: an UPLOADED dataset whose task was lost is queued again.
    conversion_queued_at = models.DateTimeField(null=True, blank=True)
    # sha256 of the converted files (services.content_hash), computed when first asked for: a registered
    # model records what it was trained on.
    content_hash = models.CharField(max_length=64, blank=True)

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
    def is_table(self) -> bool:
        return self.layout == self.Layout.TABLE

    @property
    def shape_text(self):
        return " × ".join(str(d) for d in self.shape)

    @property
    def upload_dir(self) -> Path:
        return self.storage_dir / UPLOAD_DIR

    def original_path(self) -> Path:
        path = self.upload_dir / f"original.{self.source_format}"
        legacy = self.storage_dir / f"original.{self.source_format}"  # datasets stored before upload/
        return legacy if not path.exists() and legacy.exists() else path

    def test_upload_path(self) -> Path | None:
        fmt = self.options.get("test_format")
        return self.upload_dir / f"test.{fmt}" if fmt else None

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def is_usable(self) -> bool:
        """Runs may train on it."""
        return self.status in USABLE

    @property
    def has_files(self) -> bool:
        """The converted files exist (READY, or ARCHIVED after being READY)."""
        return self.status in (Status.READY, Status.ARCHIVED)

    @property
    def split_text(self) -> str:
        if self.split_mode == self.SplitMode.TEST_FILE:
            return self.options.get("test_name") or "uploaded test file"
        fraction = self.options.get("test_fraction", 0.2)
        return f"{fraction:.0%} of each class held out for testing, seed {self.options.get('seed', 42)}"

    def transition(self, target: str, reason: str = "", **fields) -> None:
        """Move to `target` with compare-and-set on the current status.

        Raises IllegalTransition for a move the state machine forbids and StaleStatus when
        another writer changed the status (or deleted the row) first; the in-memory copy is
        refreshed then, where the row still exists.
        """
        if reason:
            fields["status_reason"] = reason[:2000]
        compare_and_set(self, target, TRANSITIONS, STAMPS, fields)
