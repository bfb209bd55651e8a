from django.conf import settings
from django.db import models
from django.urls import reverse

from webapp.accounts.models import Team, TeamScopedQuerySet
from webapp.clusters.models import Cluster
from webapp.datasets.models import Dataset
from webapp.runs.models import Run
from webapp.statemachine import compare_and_set

from .states import (
    SWEEP_ACTIVE,
    SWEEP_STAMPS,
    SWEEP_TERMINAL,
    SWEEP_TRANSITIONS,
    TRIAL_STAMPS,
    TRIAL_TRANSITIONS,
    SweepStatus,
    TrialState,
)


class Sweep(models.Model):
    """Many trials of one template on one dataset: Optuna asks for each trial's hyperparameters, every
    trial is a normal Run; the state Optuna needs lives in Trial and TrialEpoch rows (services.study)."""

    class Strategy(models.TextChoices):
        GRID = "grid", "Grid"
        RANDOM = "random", "Random"
        TPE = "tpe", "TPE (Bayesian)"

    class Objective(models.TextChoices):
        VAL_ACCURACY = "val_accuracy", "Validation accuracy ↑"
        VAL_LOSS = "val_loss", "Validation loss ↓"

    class Pruner(models.TextChoices):
        NONE = "none", "None"
        MEDIAN = "median", "Median stopping"
        ASHA = "asha", "ASHA (successive halving)"

    Status = SweepStatus

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="sweeps")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    name = models.CharField(max_length=200, blank=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="sweeps")
    template = models.CharField(max_length=40)
    # The validated hyperparameters every trial starts from; the space's values replace the varied ones.
    base_hyperparameters = models.JSONField(default=dict)
    space = models.JSONField(default=dict)  # normalized by space.clean
    strategy = models.CharField(max_length=10, choices=Strategy.choices, default=Strategy.RANDOM)
    objective = models.CharField(max_length=20, choices=Objective.choices, default=Objective.VAL_ACCURACY)
    pruner = models.CharField(max_length=10, choices=Pruner.choices, default=Pruner.NONE)
    # Median stopping: trials that must finish before any is pruned, and epochs never pruned in.
    pruner_startup_trials = models.PositiveIntegerField(default=2)
    pruner_warmup_epochs = models.PositiveIntegerField(default=1)
    # ASHA: each rung keeps the best 1 in this many; rungs at warm-up × factor^k epochs.
    pruner_reduction_factor = models.PositiveIntegerField(default=3)
    max_trials = models.PositiveIntegerField(default=10)
    parallel = models.PositiveIntegerField(default=2)  # trials at once
    seed = models.PositiveIntegerField(default=42)

    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="sweeps")
    num_executors = models.PositiveIntegerField(default=2)
    executor_cores = models.PositiveIntegerField(default=1)
    executor_memory_mb = models.PositiveIntegerField(default=2048)
    gpus_per_executor = models.PositiveIntegerField(default=0)
    input_mode = models.CharField(max_length=20, choices=Run.InputMode.choices, default=Run.InputMode.TENSORFLOW)

    status = models.CharField(max_length=12, choices=SweepStatus.choices, default=SweepStatus.RUNNING, db_index=True)
    status_reason = models.TextField(blank=True)
    # Why no new trial was made on the last try (the cluster unreachable, say); "" when trials flow.
    waiting_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"], name="sweep_team_recent")]

    def __str__(self):
        return self.name or f"sweep {self.pk}"

    def get_absolute_url(self):
        return reverse("sweep_detail", args=[self.pk])

    @property
    def is_active(self):
        return self.status in SWEEP_ACTIVE

    @property
    def is_terminal(self):
        return self.status in SWEEP_TERMINAL

    @property
    def maximize(self) -> bool:
        return self.objective == self.Objective.VAL_ACCURACY

    def transition(self, target: str, reason: str = "", **fields) -> None:
        """Compare-and-set move (raises IllegalTransition / StaleStatus like Run.transition)."""
        if reason:
            fields["status_reason"] = reason[:2000]
        compare_and_set(self, target, SWEEP_TRANSITIONS, SWEEP_STAMPS, fields)


class Trial(models.Model):
    """One configuration of a sweep and the Run that trains it. `number` is Optuna's trial number."""

    State = TrialState

    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="trials")
    number = models.PositiveIntegerField()
    run = models.OneToOneField(Run, null=True, on_delete=models.SET_NULL, related_name="sweep_trial")
    params = models.JSONField(default=dict)  # the varied hyperparameters Optuna chose
    system_attrs = models.JSONField(default=dict)  # Optuna's (a grid's cell, TPE's relative params)
    status = models.CharField(max_length=10, choices=TrialState.choices, default=TrialState.RUNNING, db_index=True)
    value = models.FloatField(null=True, blank=True)  # the objective at the last epoch run
    pruned_at_epoch = models.PositiveIntegerField(null=True, blank=True)
    epochs_run = models.PositiveIntegerField(null=True, blank=True)
    status_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["sweep", "number"]
        constraints = [models.UniqueConstraint(fields=["sweep", "number"], name="trial_number_once")]

    def __str__(self):
        return f"trial {self.number} of sweep {self.sweep_id}"

    def transition(self, target: str, reason: str = "", **fields) -> None:
        if reason:
            fields["status_reason"] = reason[:2000]
        compare_and_set(self, target, TRIAL_TRANSITIONS, TRIAL_STAMPS, fields)


class TrialEpoch(models.Model):
    """A trial's objective after one epoch and the pruner's decision for it, written once: every TF node
    of the trial asks, and all must get the same answer (they stop together or not at all)."""

    class Decision(models.TextChoices):
        CONTINUE = "continue", "Continue"
        STOP = "stop", "Stop"

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="epochs")
    epoch = models.PositiveIntegerField()
    value = models.FloatField()
    decision = models.CharField(max_length=10, choices=Decision.choices)
    decided_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["trial", "epoch"], name="trial_epoch_once")]

    def __str__(self):
        return f"{self.trial} epoch {self.epoch}: {self.decision}"
