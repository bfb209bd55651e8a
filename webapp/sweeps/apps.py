from django.apps import AppConfig


class SweepsConfig(AppConfig):
    name = "webapp.sweeps"
    label = "sweeps"

    def ready(self):
        from webapp.runs.signals import run_finished

        from . import receivers

        run_finished.connect(receivers.trial_run_finished, dispatch_uid="sweeps.trial_run_finished")
