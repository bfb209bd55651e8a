"""Celery tasks of model files (routed to the ``ingest`` queue by workers/celery.py)."""

from workers.celery import app


@app.task(acks_late=True, ignore_result=True)
def check_modelfile(model_file_id: int) -> None:
    """Check an UPLOADED model file (claimed by compare-and-set, so a duplicate does nothing)."""
    from . import services

    services.check(model_file_id)
