import logging
import math
import re
import secrets
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from webapp.accounts.models import Team, TeamScopedQuerySet
from webapp.clusters.models import Cluster
from webapp.datasets.models import Dataset
from webapp.statemachine import compare_and_set

from .states import ACTIVE, STAMPS, TERMINAL, TRANSITIONS, Status

log = logging.getLogger(__name__)


def new_token():
    return secrets.token_urlsafe(32)


# Hyperparameters copied into indexed Run columns when a run is created (the run table sorts and
# filters on them); a template without one leaves its column NULL.
HYPERPARAMETER_COLUMNS = {"epochs": int, "batch_size": int, "learning_rate": float}
MAX_TAGS = 20
MAX_TAG_LENGTH = 40
_TAG_SPLIT = re.compile(r"[\s,]+")
_TAG_OK = re.compile(r"[a-z0-9][a-z0-9_.:+-]*")


@dataclass(frozen=True)
class SparkUiLink:
    """Where the run page's "Spark UI" points: `kind` "live" (the driver's own UI) or "history"."""

    url: str
    kind: str
    label: str


class TagError(ValueError):
    pass


def normalize_tags(raw) -> list[str]:
    """Tags as stored: lower case, distinct, sorted; from "a, b c" or a list. Raises TagError."""
    parts = _TAG_SPLIT.split(raw) if isinstance(raw, str) else [str(t) for t in (raw or [])]
    tags = set()
    for part in parts:
        tag = part.strip().lower()
        if not tag:
            continue
        if len(tag) > MAX_TAG_LENGTH:
            raise TagError(f"a tag has at most {MAX_TAG_LENGTH} characters: {tag[:MAX_TAG_LENGTH]}…")
        if not _TAG_OK.fullmatch(tag):
            raise TagError(f"tag {tag!r}: use letters, digits and _ . : + - (starting with a letter or digit)")
        tags.add(tag)
    if len(tags) > MAX_TAGS:
        raise TagError(f"at most {MAX_TAGS} tags per run")
    return sorted(tags)


def uses_iterations(template: str, hyperparameters) -> bool:
    """A run with a Spark MLlib head trains for optimizer iterations (max_iter), not epochs: transfer
    learning with LogisticRegression (its default head), the MLP with MultilayerPerceptronClassifier."""
    from workers.jobs.templates import mllib_head

    hp = hyperparameters if isinstance(hyperparameters, dict) else {}
    return (template == "featurizer" and str(hp.get("head", "logreg")) == "logreg") or mllib_head(template, hp)


@dataclass(frozen=True)
class TrainingLength:
    """How long a run trains, in its own unit: "epochs", or "iterations" for an MLlib head."""

    count: int | None
    unit: str = "epochs"
    actual: bool = False  # iterations: the count the fit reported (result.json), not the max_iter limit

    @property
    def limit_only(self) -> bool:
        return self.unit == "iterations" and not self.actual

    def __str__(self) -> str:  # "3 epochs", "42 iterations", "at most 100 iterations", "—"
        if self.count is None:
            return "—"
        return f"{'at most ' if self.limit_only else ''}{self.count} {self.unit}"

    @property
    def short(self) -> str:  # a table cell under "Epochs": "3", "42 iter.", "≤100 iter."
        if self.count is None:
            return "—"
        return str(self.count) if self.unit == "epochs" else f"{'≤' if self.limit_only else ''}{self.count} iter."

    def as_json(self) -> dict:
        return {"count": self.count, "unit": self.unit, "actual": self.actual, "text": str(self)}


def _count(value) -> int | None:
    try:
        n = None if isinstance(value, bool) else int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return n if n is not None and n >= 0 else None


def training_length(template: str, hyperparameters, result, epochs: int | None = None) -> TrainingLength:
    """A run's length: its epochs (the `epochs` column, else the hyperparameter), or for an MLlib head
    its iterations: the count the fit reported (result.json's `iterations`) once there, else max_iter."""
    hp = hyperparameters if isinstance(hyperparameters, dict) else {}
    if uses_iterations(template, hp):
        done = _count((result if isinstance(result, dict) else {}).get("iterations"))
        if done is not None:
            return TrainingLength(done, "iterations", actual=True)
        return TrainingLength(_count(hp.get("max_iter")), "iterations")
    return TrainingLength(epochs if epochs is not None else _count(hp.get("epochs")))


def hyperparameter_columns(hyperparameters, template: str = "") -> dict:
    """{"epochs": 5, "batch_size": 32, "learning_rate": 0.001} from a run's hyperparameters (None where
    absent, and `epochs` None for a run that trains for iterations: see uses_iterations)."""
    hp = hyperparameters if isinstance(hyperparameters, dict) else {}
    out = {}
    for key, kind in HYPERPARAMETER_COLUMNS.items():
        value = hp.get(key)
        try:
            value = None if value is None or isinstance(value, bool) else kind(value)
        except (TypeError, ValueError, OverflowError):
            value = None
        if value is not None and (not math.isfinite(value) or value < 0 or value > 2**31 - 1):
            value = None
        out[key] = value
    if uses_iterations(template, hp):
        out["epochs"] = None
    return out


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
    gpus_per_executor = models.PositiveIntegerField(default=0)
    # Early stopping of a sweep's trial: {"objective": "val_accuracy" | "val_loss"}; {} = none. The
    # executors ask /ingest/runs/<id>/epoch after each epoch (webapp/sweeps decides).
    early_stop = models.JSONField(default=dict, blank=True)

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    status_reason = models.TextField(blank=True)
    status_detail = models.TextField(blank=True)
    # Why a QUEUED run still waits (capacity, team quota, cluster unreachable); set by the scheduler.
    queue_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    spark_app_id = models.CharField(max_length=100, blank=True)
    spark_ui_url = models.CharField(max_length=300, blank=True)
    backend_handle = models.JSONField(default=dict, blank=True)
    # Claims of this run by a submitting worker; a claim whose worker died before launching anything is
    # queued again, up to lifecycle.MAX_SUBMIT_ATTEMPTS. The handle is recorded only for the current claim.
    submit_attempts = models.PositiveSmallIntegerField(default=0)
    # The driver's host's last answer about its processes (workers.supervision): {"state", "at", "host"};
    # "stopped" once an ended run's driver is known to be gone.
    driver_seen = models.JSONField(default=dict, blank=True)
    ingest_token = models.CharField(max_length=64, default=new_token, editable=False)
    test_accuracy = models.FloatField(null=True, blank=True)
    test_rows = models.PositiveIntegerField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    # The watchdog's finding (webapp/runs/watchdog.py): code, title, cause, evidence, advice, fatal,
    # first_seen, fail_at, ...; {} while nothing is wrong.
    diagnosis = models.JSONField(default=dict, blank=True)

    # Denormalized for the run table (webapp/history), which sorts and filters on them with indexes.
    # Filled by webapp/runs/summary.py: hyperparameters at create (save()), metrics as they arrive,
    # the rest when the run ends (transition() into a terminal status).
    test_loss = models.FloatField(null=True, blank=True)  # held-out loss, when result.json has one
    best_accuracy = models.FloatField(null=True, blank=True)  # highest epoch_accuracy any executor reported
    final_loss = models.FloatField(null=True, blank=True)  # epoch_loss of the last epoch, mean over executors
    duration_s = models.FloatField(null=True, blank=True)  # start (or submission) to end; set once terminal
    epochs = models.IntegerField(null=True, blank=True)
    batch_size = models.IntegerField(null=True, blank=True)
    learning_rate = models.FloatField(null=True, blank=True)
    # Editable by the team (webapp/history/services.py). `tags` is the normalized, sorted, space-separated
    # display/search copy; RunTag rows are what the tag filter looks up (indexed on every database).
    tags = models.CharField(max_length=1000, blank=True)
    notes = models.TextField(blank=True)
    starred = models.BooleanField(default=False)
    archived = models.BooleanField(default=False)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="run_team_recent"),
            models.Index(fields=["cluster", "status", "created_at"], name="run_cluster_queue"),
            # The run table: its default page, and every indexed sort column (keyset paging walks them).
            models.Index(fields=["team", "archived", "-created_at", "-id"], name="run_table_recent"),
            models.Index(fields=["team", "archived", "name", "id"], name="run_table_name"),
            models.Index(fields=["team", "archived", "status", "id"], name="run_table_status"),
            models.Index(fields=["team", "archived", "test_accuracy", "id"], name="run_table_test_acc"),
            models.Index(fields=["team", "archived", "test_loss", "id"], name="run_table_test_loss"),
            models.Index(fields=["team", "archived", "best_accuracy", "id"], name="run_table_best_acc"),
            models.Index(fields=["team", "archived", "final_loss", "id"], name="run_table_final_loss"),
            models.Index(fields=["team", "archived", "duration_s", "id"], name="run_table_duration"),
            models.Index(fields=["team", "archived", "epochs", "id"], name="run_table_epochs"),
            models.Index(fields=["team", "archived", "batch_size", "id"], name="run_table_batch"),
            models.Index(fields=["team", "archived", "learning_rate", "id"], name="run_table_lr"),
        ]

    def __str__(self):
        return self.name or f"run {self.pk}"

    def save(self, *args, **kwargs):
        if self._state.adding:
            for key, value in hyperparameter_columns(self.hyperparameters, self.template).items():
                if getattr(self, key) is None:
                    setattr(self, key, value)
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return reverse("run_detail", args=[self.pk])

    @property
    def tag_list(self) -> list[str]:
        return self.tags.split()

    def set_tags(self, raw) -> None:
        """Store normalized tags in both places (the `tags` column and RunTag rows). Raises TagError."""
        tags = normalize_tags(raw)
        self.tags = " ".join(tags)
        with transaction.atomic():
            Run.objects.filter(pk=self.pk).update(tags=self.tags)
            RunTag.objects.filter(run=self).exclude(tag__in=tags).delete()
            have = set(RunTag.objects.filter(run=self).values_list("tag", flat=True))
            RunTag.objects.bulk_create([RunTag(run=self, tag=t) for t in tags if t not in have], ignore_conflicts=True)

    def spark_ui_link(self) -> SparkUiLink | None:
        """The Spark UI of this run's application, for the page and the API: the driver's live UI only
        while the driver runs (once it ends, its port goes to the next driver, whose UI an old link
        would open), then the application's page on the cluster's History Server; None when neither
        exists (no UI recorded yet, no app id, or no History Server configured)."""
        if self.status in (Status.SUBMITTED, Status.RUNNING):
            if self.spark_ui_url:
                return SparkUiLink(self.spark_ui_url, "live", "live, while the run is active")
            return None
        history = self.cluster.history_url if self.is_terminal else ""
        if history and self.spark_app_id:
            app = urllib.parse.quote(self.spark_app_id, safe="")
            return SparkUiLink(f"{history.rstrip('/')}/history/{app}/", "history", "History Server")
        return None

    @property
    def is_active(self):
        return self.status in ACTIVE

    @property
    def is_terminal(self):
        return self.status in TERMINAL

    @property
    def never_submitted(self) -> bool:
        """Waiting for its first submission: no executor has run, so the run has no metric points
        (the pages skip their queries)."""
        return self.status == Status.QUEUED and self.submitted_at is None

    @property
    def total_cores(self) -> int:
        return self.num_executors * self.executor_cores

    @property
    def total_gpus(self) -> int:
        return self.num_executors * self.gpus_per_executor

    def queue_position(self) -> int | None:
        """1-based place among the cluster's QUEUED runs (submission order), None if not queued."""
        if self.status != Status.QUEUED:
            return None
        ahead = Run.objects.filter(cluster_id=self.cluster_id, status=Status.QUEUED).filter(
            models.Q(created_at__lt=self.created_at) | models.Q(created_at=self.created_at, pk__lt=self.pk)
        )
        return ahead.count() + 1

    @property
    def run_dir(self) -> Path:
        return settings.ARTIFACT_ROOT / "runs" / str(self.pk)

    @property
    def training_length(self) -> TrainingLength:
        """What every page shows as the run's length (see training_length)."""
        return training_length(self.template, self.hyperparameters, self.result, self.epochs)

    @property
    def spark_master_app_url(self) -> str:
        """The application's page on the standalone master's UI (it outlives the driver's UI); '' before
        the run has an application id."""
        return f"{self.cluster.rest_url}/app/?appId={self.spark_app_id}" if self.spark_app_id else ""

    @property
    def duration(self):
        if not self.started_at and not self.submitted_at:
            return None
        end = self.finished_at or timezone.now()
        return end - (self.started_at or self.submitted_at)

    def transition(self, target: str, reason: str = "", detail: str = "", where: dict | None = None, **fields) -> None:
        """Move to `target` with compare-and-set on the current status (and the column values in
        `where`, e.g. the submission attempt that owns the move).

        Raises IllegalTransition for a move the state machine forbids and StaleStatus when
        another writer changed the status first (the in-memory copy is refreshed then).
        """
        if reason:
            fields["status_reason"] = reason[:2000]
        if detail:
            fields["status_detail"] = detail[:20000]
        compare_and_set(self, target, TRANSITIONS, STAMPS, fields, where=where)
        if target in TERMINAL:  # the run table's columns for the finished run (webapp/runs/summary.py)
            from .summary import summarize

            try:
                summarize(self)
            except Exception:  # noqa: BLE001 - the move is stored; a summary failure must not undo its caller
                log.exception("summary of run %s failed", self.pk)
            from .metrics import warm_series

            try:
                warm_series(self)  # the chart data of a finished run, stored once: the first view reads a file
            except Exception:  # noqa: BLE001 - the page computes it on demand instead
                log.exception("storing the chart series of run %s failed", self.pk)
            from .signals import run_finished

            try:
                run_finished.send(sender=Run, run=self)
            except Exception:  # noqa: BLE001 - a listener's problem never breaks the move
                log.exception("a run_finished listener failed for run %s", self.pk)
            from webapp.notifications.services import on_run_finished

            try:
                on_run_finished(self)  # e-mail / webhook to the submitter, queued on commit
            except Exception:  # noqa: BLE001 - a notification problem never breaks the move
                log.exception("queueing the notifications of run %s failed", self.pk)


class MetricPoint(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metrics")
    name = models.CharField(max_length=64)
    executor = models.CharField(max_length=32)
    step = models.IntegerField()
    epoch = models.IntegerField(null=True)
    value = models.FloatField()
    wall_time = models.FloatField()

    class Meta:
        constraints = [
            # One point per (run, metric, step, executor): a batch sent again (its answer was lost)
            # is not stored twice. Step before executor, so this index also serves metrics.series():
            # a step range of one metric, and each metric's first/last step.
            models.UniqueConstraint(fields=["run", "name", "step", "executor"], name="metric_one_point"),
        ]
        indexes = [models.Index(fields=["run", "id"], name="metric_run_id")]

    def __str__(self):
        return f"{self.name}@{self.step} executor {self.executor}"


class RunTag(models.Model):
    """One tag of one run: what the run table's tag filter looks up (index on tag, run)."""

    # No index of its own on run: the unique (run, tag) constraint's index serves lookups by run.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tag_rows", db_index=False)
    tag = models.CharField(max_length=MAX_TAG_LENGTH)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "tag"], name="one_tag_per_run")]
        indexes = [models.Index(fields=["tag", "run"], name="runtag_tag_run")]

    def __str__(self):
        return f"{self.tag} on run {self.run_id}"
