"""The Celery app. Broker, queues, routes and reliability settings come from Django settings (CELERY_*
keys, webapp/settings.py); the tasks live beside the services they call, in each Django app's
tasks.py, found by autodiscovery (so this package never imports webapp)."""

import os

from celery import Celery

from workers import transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
transport.install()  # before any connection: the embedded broker must never see a half-written message

app = Celery("sparkdeck")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_ignore_result = True  # tasks write their results to the database
app.conf.worker_hijack_root_logger = False

RECONCILE_TASK = "webapp.runs.tasks.reconcile_runs"


@app.on_after_finalize.connect
def _schedule(sender, **kwargs):
    from django.conf import settings

    # Status is tracked by polling, so a worker restart never loses a run.
    sender.add_periodic_task(settings.RECONCILE_SECONDS, sender.signature(RECONCILE_TASK))
    # Sweeps: new trials as earlier ones end; the state is all in the database (webapp/sweeps).
    sender.add_periodic_task(settings.RECONCILE_SECONDS, sender.signature("webapp.sweeps.tasks.advance_sweeps"))
    # Executor CPU/memory/GC of RUNNING runs from their Spark UI (webapp/monitoring, docs/monitoring.md).
    sender.add_periodic_task(
        float(settings.SPARKDECK_SAMPLE_SECONDS), sender.signature("webapp.monitoring.tasks.sample_executors")
    )
    sender.add_periodic_task(60.0, sender.signature("webapp.datasets.tasks.sweep_conversions"))
    sender.add_periodic_task(60.0, sender.signature("webapp.modelfiles.tasks.sweep_checks"))


app.autodiscover_tasks()  # every INSTALLED_APPS package's tasks.py, once Django is set up
