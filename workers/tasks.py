"""Thin Celery tasks: ids in, JSON-only arguments, idempotent; the logic is in webapp/runs/lifecycle.py
and webapp/datasets/services.py."""

from workers.celery import app


@app.task(name="workers.tasks.submit_run")
def submit_run(run_id: int) -> None:
    """A new run was saved QUEUED: send its cluster's queue (it goes when it fits, in order)."""
    from webapp.runs import scheduler

    scheduler.dispatch_run(run_id)


@app.task(name="workers.tasks.reconcile_runs", ignore_result=True)
def reconcile_runs() -> int:
    """Bring active runs up to date, then start queued runs that fit the capacity freed."""
    from webapp.runs import lifecycle, scheduler

    count = lifecycle.reconcile_active()
    scheduler.dispatch_all()
    return count


@app.task(name="workers.tasks.sample_executors", ignore_result=True)
def sample_executors() -> int:
    """One resource sample of every RUNNING run's executors (Spark's REST API); an unreachable UI is skipped."""
    from webapp.monitoring import services

    return services.sample_running()


@app.task(name="workers.tasks.convert_dataset")
def convert_dataset(dataset_id: int) -> None:
    """Convert an UPLOADED dataset (claimed UPLOADED → CONVERTING); any other status: nothing to do."""
    from webapp.datasets import services

    services.convert(dataset_id)


@app.task(name="workers.tasks.sweep_conversions", ignore_result=True)
def sweep_conversions() -> int:
    from webapp.datasets import services

    return services.fail_stale_conversions()


@app.task(name="workers.tasks.notify_run", bind=True, ignore_result=True, max_retries=None)
def notify_run(self, run_id: int, event: str, detail: str = "") -> None:
    """Tell run `run_id`'s submitter about `event` ("succeeded", "failed", "stuck") by e-mail and/or
    webhook. Each channel is sent at most once (NotificationDelivery); transient failures retry with
    exponential backoff, bounded by SPARKDECK_NOTIFY_MAX_ATTEMPTS attempts per delivery."""
    from webapp.notifications import services

    retry_in = services.deliver(run_id, event, detail)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)
