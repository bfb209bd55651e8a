"""Dataset tasks (thin; the logic is in services.py). Routed to the `ingest` queue, so a long
conversion never holds up run control."""

from django.conf import settings

from workers.celery import app


@app.task(
    acks_late=True,
    soft_time_limit=settings.CONVERSION_TIMEOUT_SECONDS,
    time_limit=settings.CONVERSION_TIMEOUT_SECONDS + 60,
)
def convert_dataset(dataset_id: int) -> None:
    """Convert an UPLOADED dataset (claimed UPLOADED → CONVERTING); any other status: nothing to do."""
    from . import services

    services.convert(dataset_id)


@app.task(acks_late=True, ignore_result=True)
def sweep_conversions() -> int:
    """Re-queue conversions whose task was lost; fail conversions whose worker died."""
    from . import services

    return services.sweep_conversions()
