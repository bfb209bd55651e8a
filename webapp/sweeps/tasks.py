"""Sweep tasks: thin, ids in, idempotent (advance locks the sweep row and re-reads everything)."""

from workers.celery import app


@app.task(acks_late=True, ignore_result=True)
def advance_sweep(sweep_id: int) -> list[int]:
    """End trials whose runs ended, make the next ones, end the sweep once its budget is spent."""
    from . import services

    return services.advance(sweep_id)


@app.task(acks_late=True, ignore_result=True)
def advance_sweeps() -> int:
    """The periodic tick: every running sweep (a lost advance_sweep message is caught up here)."""
    from . import services

    return services.advance_all()
