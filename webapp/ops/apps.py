from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operations: management commands that seed and run the local stack. No models."""

    name = "webapp.ops"
    label = "ops"
