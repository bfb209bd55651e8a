"""Run control tasks: thin, ids in, idempotent (every move is a compare-and-set). The logic is in
lifecycle.py and scheduler.py. Driver-process tasks go to the driver host's own queue
(workers.supervision.host_queue): only that host can see and signal the driver."""

from workers.celery import app


@app.task(acks_late=True)
def submit_run(run_id: int) -> None:
    """A new run was saved QUEUED: send its cluster's queue (it goes when it fits, in order)."""
    from . import scheduler

    scheduler.dispatch_run(run_id)


@app.task(acks_late=True, ignore_result=True)
def reconcile_runs() -> int:
    """Bring active runs up to date, then start queued runs that fit the capacity freed."""
    from . import lifecycle, scheduler

    count = lifecycle.reconcile_active()
    scheduler.dispatch_all()
    return count


@app.task(acks_late=True, ignore_result=True)
def probe_driver(run_id: int) -> str:
    """On the driver's host: record whether the run's driver still runs (reconcilers elsewhere read it)."""
    from . import drivers

    return drivers.probe(run_id)


@app.task(acks_late=True, ignore_result=True)
def stop_driver(run_id: int) -> bool:
    """On the driver's host: stop an ended (cancelled, failed) run's driver and application."""
    from . import drivers

    return drivers.stop(run_id)
