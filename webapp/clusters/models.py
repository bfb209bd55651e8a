from django.core.exceptions import ValidationError
from django.db import models


class ClusterQuerySet(models.QuerySet):
    def enabled(self):
        return self.filter(enabled=True)


class Cluster(models.Model):
    """A Spark cluster runs are submitted to. Configured by admins only."""

    class Kind(models.TextChoices):
        STANDALONE = "standalone", "Spark standalone"
        YARN = "yarn", "YARN"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.STANDALONE)
    master_url = models.CharField(max_length=300, help_text="e.g. spark://127.0.0.1:7077")
    rest_url = models.URLField(help_text="Master web UI, e.g. http://127.0.0.1:8080 (JSON API at /json/)")
    enabled = models.BooleanField(default=True)
    bind_host = models.CharField(
        max_length=100,
        blank=True,
        help_text="Force Spark and TFoS to bind this address (127.0.0.1 for a loopback cluster). "
        "Leave empty on real clusters.",
    )
    max_executors = models.PositiveIntegerField(default=2)
    max_executor_cores = models.PositiveIntegerField(default=1)
    max_executor_memory_mb = models.PositiveIntegerField(default=4096)
    reservation_timeout_s = models.PositiveIntegerField(default=120)
    feed_timeout_s = models.PositiveIntegerField(default=120)
    shutdown_timeout_s = models.PositiveIntegerField(default=60)

    objects = ClusterQuerySet.as_manager()

    def __str__(self):
        return self.name

    def clean(self):
        if self.kind == self.Kind.STANDALONE and not self.master_url.startswith("spark://"):
            raise ValidationError({"master_url": "A standalone master URL starts with spark://"})

    def limits_text(self):
        return (
            f"up to {self.max_executors} executors × {self.max_executor_cores} cores, "
            f"{self.max_executor_memory_mb} MB each"
        )
