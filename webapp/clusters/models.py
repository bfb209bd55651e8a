from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from webapp.accounts.models import Team

from . import sparkconf

# http(s)://host[:port][/path]; single-label hosts allowed (compose service names, "rm", "spark-master").
web_address = RegexValidator(
    r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?(/[\w./~%-]*)?$",
    "Enter a web address such as http://spark-master:8080.",
)


# Where runs write Spark event logs: an absolute path, file:/path (file:///path), or hdfs://namenode[:port]/path
# (hdfs:///path: the default file system's). No spaces or shell syntax.
event_log_location = RegexValidator(
    r"^(/|file:(//)?/|hdfs://([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?)?/)(?!/)[\w./@%+=,-]+$",
    "Enter an absolute path (/var/spark-events), a file: URI (file:/var/spark-events) or an HDFS URI "
    "(hdfs://namenode:8020/spark-events).",
)


class ClusterQuerySet(models.QuerySet):
    def enabled(self):
        return self.filter(enabled=True)


class Cluster(models.Model):
    """A Spark cluster runs are submitted to. Configured by admins only (Django admin)."""

    class Kind(models.TextChoices):
        STANDALONE = "standalone", "Spark standalone"
        YARN = "yarn", "YARN"

    class DeployMode(models.TextChoices):
        CLIENT = "client", "client (driver on the Sparkdeck worker host)"
        CLUSTER = "cluster", "cluster (driver in the cluster; YARN only)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.STANDALONE)
    enabled = models.BooleanField(default=True)
    master_url = models.CharField(
        max_length=300, blank=True, help_text="Standalone: spark://host:7077. YARN: leave empty (uses 'yarn')."
    )
    rest_url = models.CharField(
        max_length=300,
        validators=[web_address],
        help_text="Standalone: the master web UI (http://host:8080, JSON at /json/). "
        "YARN: the ResourceManager web address (http://rm:8088).",
    )
    yarn_queue = models.CharField(max_length=100, blank=True, default="default", help_text="YARN queue (--queue).")
    deploy_mode = models.CharField(max_length=10, choices=DeployMode.choices, default=DeployMode.CLIENT)
    spark_home = models.CharField(
        max_length=300, blank=True, help_text="Spark installation to submit with; empty = the pyspark bundled one."
    )
    executor_python = models.CharField(
        max_length=300,
        blank=True,
        help_text="Python for driver and executors (a path on every host); empty = Sparkdeck's own venv.",
    )
    python_archive = models.CharField(
        max_length=500,
        blank=True,
        help_text="YARN: a packed Python environment shipped with --archives, as <archive>#<alias> "
        "(e.g. hdfs:///envs/sparkdeck.tar.gz#env); executors then run <alias>/bin/python.",
    )
    extra_conf = models.JSONField(
        default=dict, blank=True, help_text="Extra Spark settings (allow-listed keys, typed values), as a JSON object."
    )
    executor_env = models.JSONField(
        default=dict, blank=True, help_text="Environment variables for executors, as a JSON object."
    )
    bind_host = models.CharField(
        max_length=100,
        blank=True,
        help_text="Force Spark and TFoS to bind this address (127.0.0.1 for a loopback cluster). "
        "Leave empty on real clusters.",
    )
    collect_executor_logs = models.BooleanField(
        default=True,
        help_text="Copy executor stdout/stderr into the run's files (standalone: worker log pages; "
        "YARN: `yarn logs` once the application ends).",
    )
    event_log_dir = models.CharField(
        max_length=300,
        blank=True,
        validators=[event_log_location],
        help_text="Runs write Spark event logs here (spark.eventLog.dir), which a Spark History Server reads: "
        "an absolute path or file: URI on the driver's host (created when missing), or an hdfs:// URI "
        "(must exist). Empty = no event logs.",
    )
    history_url = models.CharField(
        max_length=300,
        blank=True,
        validators=[web_address],
        help_text="The Spark History Server's web address (http://host:18080): a finished run's page links to "
        "its application there. Empty = no link once the driver's live UI is gone.",
    )
    log_fetch_timeout_s = models.PositiveIntegerField(
        default=5, help_text="HTTP timeout for the master/worker/ResourceManager APIs."
    )
    yarn_logs_timeout_s = models.PositiveIntegerField(default=120, help_text="Time limit for one `yarn logs` call.")

    # Limits: a run asking more is refused before submit.
    max_executors = models.PositiveIntegerField(default=2)
    max_executor_cores = models.PositiveIntegerField(default=1)
    max_executor_memory_mb = models.PositiveIntegerField(default=4096)
    max_gpus_per_executor = models.PositiveIntegerField(default=0)

    # GPUs: what each worker has, and how Spark finds their addresses.
    gpus_per_worker = models.PositiveIntegerField(
        default=0, help_text="GPUs each worker declares (spark.worker.resource.gpu.amount)."
    )
    gpu_discovery_script = models.CharField(
        max_length=300,
        blank=True,
        help_text="Path (on the worker hosts) of the script that prints the GPU addresses as JSON; "
        "Sparkdeck ships workers/gpu/discover_gpus.sh.",
    )

    # TFoS timeouts (TFoS's own 600 s defaults turn every executor error into a 10-minute hang).
    reservation_timeout_s = models.PositiveIntegerField(default=120)
    feed_timeout_s = models.PositiveIntegerField(default=120)
    shutdown_timeout_s = models.PositiveIntegerField(default=60)

    objects = ClusterQuerySet.as_manager()

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.kind == self.Kind.STANDALONE:
            if not self.master_url.startswith("spark://"):
                errors["master_url"] = "A standalone master URL starts with spark://"
            if self.deploy_mode == self.DeployMode.CLUSTER:
                errors["deploy_mode"] = (
                    "Sparkdeck runs standalone drivers in client mode (PySpark has no cluster mode there)."
                )
            if self.python_archive:
                errors["python_archive"] = "Archives are shipped on YARN only; give the executors' Python path instead."
        if self.kind == self.Kind.YARN and self.master_url not in ("", "yarn"):
            errors["master_url"] = "A YARN cluster has no master URL; leave it empty."
        if self.python_archive and "#" not in self.python_archive:
            errors["python_archive"] = "Give the archive as <archive>#<alias>, e.g. hdfs:///envs/venv.tar.gz#env."
        problems = sparkconf.check_conf(self.extra_conf)
        if problems:
            errors["extra_conf"] = problems
        elif self.event_log_dir and isinstance(self.extra_conf, dict):
            both = sorted(k for k in self.extra_conf if k.startswith("spark.eventLog."))
            if both:
                errors["extra_conf"] = f"{', '.join(both)}: set by the event log directory; remove it here."
        problems = sparkconf.check_env(self.executor_env)
        if problems:
            errors["executor_env"] = problems
        if self.max_gpus_per_executor and not self.gpus_per_worker:
            errors["max_gpus_per_executor"] = "The workers declare no GPUs (set GPUs per worker first)."
        if self.max_gpus_per_executor > self.gpus_per_worker:
            most = self.gpus_per_worker
            errors.setdefault("max_gpus_per_executor", f"An executor cannot have more GPUs than a worker has ({most}).")
        if self.gpus_per_worker and not self.gpu_discovery_script:
            errors["gpu_discovery_script"] = "Spark needs a discovery script to find the GPUs' addresses."
        if errors:
            raise ValidationError(errors)

    @property
    def python_archive_alias(self) -> str:
        return self.python_archive.rsplit("#", 1)[1] if "#" in self.python_archive else ""

    def limits_text(self):
        gpu = f", up to {self.max_gpus_per_executor} GPU(s) each" if self.max_gpus_per_executor else ""
        return (
            f"up to {self.max_executors} executors × {self.max_executor_cores} cores, "
            f"{self.max_executor_memory_mb} MB each{gpu}"
        )

    def quota_for(self, team):
        """The team's quota on this cluster, or None (no limit beyond the cluster's)."""
        return self.quotas.filter(team=team).first()


class TeamQuota(models.Model):
    """What one team may hold on one cluster at a time (0 = no limit on that measure)."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="quotas")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="cluster_quotas")
    max_concurrent_runs = models.PositiveIntegerField(default=0, help_text="Runs submitted or running at once.")
    max_total_cores = models.PositiveIntegerField(default=0, help_text="Executor cores over all its active runs.")
    max_total_gpus = models.PositiveIntegerField(default=0, help_text="GPUs over all its active runs.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cluster", "team"], name="one_quota_per_team_cluster")]

    def __str__(self):
        return f"{self.team} on {self.cluster}"

    def text(self):
        parts = [
            f"{self.max_concurrent_runs} runs at once" if self.max_concurrent_runs else "",
            f"{self.max_total_cores} cores" if self.max_total_cores else "",
            f"{self.max_total_gpus} GPUs" if self.max_total_gpus else "",
        ]
        parts = [p for p in parts if p]
        return "team quota: " + ", ".join(parts) if parts else "no team quota"
