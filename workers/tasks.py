"""Thin Celery tasks: ids in, JSON-only arguments, idempotent; the logic is in webapp/runs/lifecycle.py
and webapp/datasets/services.py."""

from workers.celery import app


@app.task(name="workers.tasks.submit_run")
def submit_run(run_id: int) -> None:
    from webapp.runs import lifecycle

    lifecycle.submit(run_id)


@app.task(name="workers.tasks.reconcile_runs", ignore_result=True)
def reconcile_runs() -> int:
    from webapp.runs import lifecycle

    return lifecycle.reconcile_active()


@app.task(name="workers.tasks.convert_dataset")
def convert_dataset(dataset_id: int) -> None:
    """Convert an UPLOADED dataset (claimed UPLOADED → CONVERTING); any other status: nothing to do."""
    from webapp.datasets import services

    services.convert(dataset_id)


@app.task(name="workers.tasks.sweep_conversions", ignore_result=True)
def sweep_conversions() -> int:
    from webapp.datasets import services

    return services.fail_stale_conversions()
