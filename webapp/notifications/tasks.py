"""Notification tasks (thin; the logic is in services.py), on their own `notify` queue."""

from workers.celery import app


@app.task(bind=True, acks_late=True, ignore_result=True, max_retries=None)
def notify_run(self, run_id: int, event: str, detail: str = "") -> None:
    """Tell run `run_id`'s submitter about `event` ("succeeded", "failed", "stuck") by e-mail and/or
    webhook. Each channel is sent at most once (NotificationDelivery); transient failures retry with
    exponential backoff, bounded by SPARKDECK_NOTIFY_MAX_ATTEMPTS attempts per delivery."""
    from . import services

    retry_in = services.deliver(run_id, event, detail)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)
