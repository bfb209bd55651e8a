"""The model registry: a team's named models, their numbered versions (each with its own copy of the
model files), aliases pointing at versions, and the record of every alias move (docs/registry.md)."""

import re
from pathlib import Path

from django.conf import settings
from django.db import models
from django.urls import reverse

from webapp.accounts.models import Team, TeamScopedQuerySet
from webapp.datasets.models import Dataset
from webapp.modelfiles.models import ModelFile
from webapp.runs.models import Run

# Letters, digits and . _ - (the first a letter or digit): safe in a URL path and a file name, and never
# containing the "@" or "/" of a reference (services.resolve).
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
# Lower case, starting with a letter: an alias is never mistaken for a version number.
ALIAS_PATTERN = r"[a-z][a-z0-9_-]{0,39}"
NAME_RE = re.compile(NAME_PATTERN)
ALIAS_RE = re.compile(ALIAS_PATTERN)
# Words of the pages' own URLs under /models/: no model may be called that.
RESERVED_NAMES = frozenset({"files", "register"})


def registry_root() -> Path:
    return settings.VAR_DIR / "registry"


class RegisteredModel(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="registered_models")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped by every registration, alias move and archive: the list's "updated".
    updated_at = models.DateTimeField(auto_now_add=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="registered_model_name_per_team")]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("registry_model", args=[self.name])

    @property
    def storage_dir(self) -> Path:
        return registry_root() / str(self.team_id) / str(self.pk)


class ModelVersion(models.Model):
    """One registered model, immutable once made (only `archived` changes): where it came from, what it
    was trained on, and the relative path of its own copy of the files, kept when the source is deleted."""

    class Source(models.TextChoices):
        RUN = "run", "Run"
        FILE = "file", "Uploaded model file"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    source_run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="registered_versions"
    )
    source_modelfile = models.ForeignKey(
        ModelFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="registered_versions"
    )
    # "run 12 · name" / "model file 3 · name": what the source was, once it is deleted.
    source_label = models.CharField(max_length=300, blank=True)
    template = models.CharField(max_length=40, blank=True)  # "" for an uploaded model file
    hyperparameters = models.JSONField(default=dict, blank=True)
    # test_accuracy, test_loss, test_rows, val_accuracy (best), val_loss (lowest), ... from the run.
    metrics = models.JSONField(default=dict, blank=True)
    dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="registered_versions"
    )
    dataset_name = models.CharField(max_length=200, blank=True)
    dataset_hash = models.CharField(max_length=64, blank=True)  # sha256 hex (datasets.services.content_hash)
    layout = models.CharField(max_length=10, blank=True)  # image | sequence | table
    input_shape = models.JSONField(default=list, blank=True)
    class_names = models.JSONField(default=list, blank=True)
    # What scoring applies to raw rows as training did: scale/offset, and a table's standardize and columns.
    preprocessing = models.JSONField(default=dict, blank=True)
    # The copy: <registry root>/<files_path>/, and in it `entry` (the file to load or download).
    files_path = models.CharField(max_length=300)
    entry = models.CharField(max_length=200)
    size_bytes = models.BigIntegerField(default=0)
    archived = models.BooleanField(default=False)
    archived_at = models.DateTimeField(null=True, blank=True)
    archived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-version"]
        # The backstop of services._next_version: two registrations never share a number.
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="model_version_once")]

    def __str__(self):
        return f"{self.model.name}/{self.version}"

    def get_absolute_url(self):
        return reverse("registry_version", args=[self.model.name, self.version])

    @property
    def storage_dir(self) -> Path:
        return registry_root() / self.files_path

    @property
    def entry_path(self) -> Path:
        return self.storage_dir / self.entry

    @property
    def input_shape_text(self) -> str:
        return " × ".join(str(d) for d in self.input_shape)


class Alias(models.Model):
    """A name (production, candidate, ...) pointing at one version of a model; moved by set_alias."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=40)
    # RESTRICT, not PROTECT: deleting the whole model (or team) deletes its aliases with it.
    version = models.ForeignKey(ModelVersion, on_delete=models.RESTRICT, related_name="aliases")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="alias_once_per_model")]

    def __str__(self):
        return f"{self.model.name}@{self.name}"


class AliasMove(models.Model):
    """One change of an alias: set (from_version null), moved, or removed (to_version null)."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="alias_moves")
    alias = models.CharField(max_length=40)
    from_version = models.ForeignKey(ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+")
    to_version = models.ForeignKey(ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.model.name}@{self.alias}: {self.from_version_id} → {self.to_version_id}"
