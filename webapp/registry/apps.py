from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "webapp.registry"
    label = "registry"
    verbose_name = "Model registry"

    def ready(self):
        from . import converters  # noqa: F401 (registers the path converters the pages' and the API's URLs use)
