"""A driver's exit, told to the Celery worker at once.

Run status is tracked by the periodic reconcile (webapp.runs.tasks.reconcile_runs), so a worker
restart never loses a run. That poll alone makes every run's end visible up to one beat period
late (2 s by default, plus the broker's own polling). So the launcher, once it has written
driver.rc, also publishes one reconcile task itself. The beat stays the guarantee; this only
makes the common case prompt. Failing to publish is logged and otherwise ignored.

The spec travels to the launcher in the environment variable ``ENV`` (JSON: broker URL,
transport options, task name, queue), not on its command line, where `ps` would show a broker password.
"""

from __future__ import annotations

import json
import uuid

ENV = "SPARKDECK_LAUNCHER_NOTIFY"
TASK = "webapp.runs.tasks.reconcile_runs"  # by name: workers never imports webapp
QUEUE = "control"
TASK_ID_PREFIX = "driver-exit-"
CONNECT_TIMEOUT = 3.0  # seconds; the launcher must not hang on a dead broker


def spec(broker_url: str, transport_options: dict | None = None, task: str = TASK, queue: str = QUEUE) -> str:
    opts = transport_options or {}
    return json.dumps({"broker_url": broker_url, "transport_options": opts, "task": task, "queue": queue})


def send(value: str) -> str:
    """Publish the task `value` (a `spec()`) names, once, no retries; its task id (prefixed
    TASK_ID_PREFIX, so the worker's log tells it from a beat tick). Raises on failure."""
    cfg = json.loads(value)
    from celery import Celery

    from workers import transport

    transport.install()  # filesystem:// must write atomically here too
    app = Celery("sparkdeck-launcher", broker=cfg["broker_url"], set_as_current=False)
    app.conf.broker_transport_options = cfg.get("transport_options") or {}
    app.conf.broker_connection_timeout = CONNECT_TIMEOUT
    # The URL explicitly: Celery prefers a CELERY_BROKER_URL in the environment to its own config.
    with app.connection_for_write(url=cfg["broker_url"]) as conn:
        conn.ensure_connection(max_retries=0, timeout=CONNECT_TIMEOUT)
        task_id = f"{TASK_ID_PREFIX}{uuid.uuid4()}"
        queue = cfg.get("queue") or QUEUE
        app.send_task(cfg["task"], task_id=task_id, connection=conn, retry=False, ignore_result=True, queue=queue)
    return task_id
