from django.db import models

from webapp.runs.models import Run


class ExecutorSample(models.Model):
    """One executor's counters from ``<spark UI>/api/v1/applications/<app id>/executors`` at one moment.

    Spark's totals (task time, GC time, tasks) are cumulative since the executor started: a rate is
    the difference between two samples over the wall time between them, so thinning old samples
    (services.thin) keeps the rates right, only coarser.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="executor_samples")
    executor_id = models.CharField(max_length=40)  # Spark's id: "0", "1", … or "driver"
    is_driver = models.BooleanField(default=False)
    sampled_at = models.DateTimeField()
    is_active = models.BooleanField(default=True)
    total_cores = models.IntegerField(default=0)
    max_tasks = models.IntegerField(default=0)
    active_tasks = models.IntegerField(default=0)
    memory_used = models.BigIntegerField(default=0)  # storage memory (block manager) in use, bytes
    max_memory = models.BigIntegerField(default=0)  # storage memory available, bytes
    disk_used = models.BigIntegerField(default=0)
    rdd_blocks = models.IntegerField(default=0)
    total_gc_time_ms = models.BigIntegerField(default=0)  # JVM GC time of finished tasks
    total_duration_ms = models.BigIntegerField(default=0)  # task time of finished tasks
    total_tasks = models.IntegerField(default=0)
    failed_tasks = models.IntegerField(default=0)
    # From peakMemoryMetrics (heartbeats, so live while tasks run): peaks since the executor started.
    peak_jvm_heap = models.BigIntegerField(null=True, blank=True)
    peak_jvm_offheap = models.BigIntegerField(null=True, blank=True)
    jvm_gc_time_ms = models.BigIntegerField(null=True, blank=True)  # peakMemoryMetrics.TotalGCTime (cumulative)
    raw = models.JSONField(default=dict, blank=True)  # the few other fields kept as Spark sent them

    class Meta:
        indexes = [models.Index(fields=["run", "executor_id", "sampled_at"], name="execsample_run_exec_time")]

    def __str__(self):
        return f"run {self.run_id} executor {self.executor_id} @ {self.sampled_at:%H:%M:%S}"
