"""Monitoring tasks (thin; the logic is in services.py)."""

from workers.celery import app


@app.task(acks_late=True, ignore_result=True)
def sample_executors() -> int:
    """One resource sample of every RUNNING run's executors (Spark's REST API); an unreachable UI is skipped."""
    from . import services

    return services.sample_running()
