from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Executor resource samples from Spark's REST API, progress/ETA, TensorBoard and log search views."""

    name = "webapp.monitoring"
    label = "monitoring"
