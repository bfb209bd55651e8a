from django.apps import AppConfig


class ModelFilesConfig(AppConfig):
    name = "webapp.modelfiles"
    label = "modelfiles"
    verbose_name = "Model files"
