import secrets
from pathlib import Path

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from webapp.accounts.models import Team, TeamScopedQuerySet
from webapp.clusters.models import Cluster
from webapp.datasets.models import Dataset
from webapp.statemachine import compare_and_set

from .states import ACTIVE, STAMPS, TERMINAL, TRANSITIONS, Status


def new_token():
    return secrets.token_urlsafe(32)


class Run(models.Model):
    class InputMode(models.TextChoices):
        TENSORFLOW = "tensorflow", "TENSORFLOW (executors read their Parquet shard)"
        SPARK = "spark", "SPARK (RDD fed through TFNode.DataFeed)"

    Status = Status

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="runs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    name = models.CharField(max_length=200, blank=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="runs")
    template = models.CharField(max_length=40)
    hyperparameters = models.JSONField(default=dict)
    input_mode = models.CharField(max_length=20, choices=InputMode.choices, default=InputMode.TENSORFLOW)
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="runs")
    num_executors = models.PositiveIntegerField(default=2)
    executor_cores = models.PositiveIntegerField(default=1)
    executor_memory_mb = models.PositiveIntegerField(default=2048)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    status_reason = models.TextField(blank=True)
    status_detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    spark_app_id = models.CharField(max_length=100, blank=True)
    spark_ui_url = models.CharField(max_length=300, blank=True)
    backend_handle = models.JSONField(default=dict, blank=True)
    ingest_token = models.CharField(max_length=64, default=new_token, editable=False)
    test_accuracy = models.FloatField(null=True, blank=True)
    test_rows = models.PositiveIntegerField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"], name="run_team_recent")]

    def __str__(self):
        return self.name or f"run {self.pk}"

    def get_absolute_url(self):
        return reverse("run_detail", args=[self.pk])

    @property
    def is_active(self):
        return self.status in ACTIVE

    @property
    def is_terminal(self):
        return self.status in TERMINAL

    @property
    def run_dir(self) -> Path:
        return settings.ARTIFACT_ROOT / "runs" / str(self.pk)

    @property
    def duration(self):
        if not self.started_at and not self.submitted_at:
            return None
        end = self.finished_at or timezone.now()
        return end - (self.started_at or self.submitted_at)

    def transition(self, target: str, reason: str = "", detail: str = "", **fields) -> None:
        """Move to `target` with compare-and-set on the current status.

        Raises IllegalTransition for a move the state machine forbids and StaleStatus when
        another writer changed the status first (the in-memory copy is refreshed then).
        """
        if reason:
            fields["status_reason"] = reason[:2000]
        if detail:
            fields["status_detail"] = detail[:20000]
        compare_and_set(self, target, TRANSITIONS, STAMPS, fields)


class MetricPoint(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metrics")
    name = models.CharField(max_length=64)
    executor = models.CharField(max_length=32)
    step = models.IntegerField()
    epoch = models.IntegerField(null=True)
    value = models.FloatField()
    wall_time = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["run", "id"], name="metric_run_id")]

    def __str__(self):
        return f"{self.name}@{self.step} executor {self.executor}"
