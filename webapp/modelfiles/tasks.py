"""Celery tasks of model files (routed to the ``ingest`` queue by CELERY_TASK_ROUTES in settings)."""

from workers.celery import app


@app.task(acks_late=True, ignore_result=True)
def check_modelfile(model_file_id: int) -> None:
    """Check an UPLOADED model file (claimed by compare-and-set, so a duplicate does nothing)."""
    from . import services

    services.check(model_file_id)


@app.task(acks_late=True, ignore_result=True)
def sweep_checks() -> int:
    """Queue again the checks whose task or worker was lost."""
    from . import services

    return services.sweep_checks()
