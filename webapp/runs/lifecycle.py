"""Submitting runs to their cluster and reconciling their status with it.

Called from the thin Celery tasks in tasks.py. Every status change goes through
Run.transition (compare-and-set), so a duplicate task or a racing reconcile cannot corrupt a run.
"""

import fcntl
import ipaddress
import json
import logging
import time
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings

from webapp.catalog.registry import get_template
from webapp.clusters import services as cluster_services
from workers import faults, supervision
from workers.backends.base import BackendError
from workers.jobs.package import build_jobs_zip

from . import bases, drivers, metrics, watchdog
from .models import Run
from .states import StaleStatus, Status

log = logging.getLogger(__name__)

REPO_ROOT = Path(settings.BASE_DIR)
JOB_PACKAGE = REPO_ROOT / "workers" / "jobs"


def backend_for(cluster):
    return cluster_services.backend_for(cluster)


def build_spec(run: Run) -> dict:
    ds = run.dataset
    cluster = run.cluster
    return {
        "run_id": run.pk,
        "app_name": f"sparkdeck-run-{run.pk}",
        "template": run.template,
        "hyperparameters": run.hyperparameters,
        "input_mode": run.input_mode,
        "cluster_size": run.num_executors,  # = spark.executor.instances: one TF worker per executor
        "gpus_per_executor": run.gpus_per_executor,
        "dataset": {
            "train": str(ds.storage_dir / "train.parquet"),
            "test": str(ds.storage_dir / "test.parquet"),
            "shape": ds.shape,
            "num_classes": ds.num_classes,
            "class_names": ds.class_names,
        },
        "artifact_dir": str(run.run_dir),
        "metrics": {
            "url": f"{settings.PUBLIC_URL}/ingest/runs/{run.pk}/metrics",
            "token": run.ingest_token,
            "every_steps": 5,
            # An executor whose ingest is down at the end retries this long, then leaves its points in
            # <artifact_dir>/metrics-pending/ for the reconciler (metrics.ingest_pending).
            "close_seconds": 20,
            **({"prune": _prune_spec(run)} if run.early_stop else {}),
        },
        "timeouts": {
            "reservation": cluster.reservation_timeout_s,
            "feed": cluster.feed_timeout_s,
            "shutdown": cluster.shutdown_timeout_s,
        },
        "bind_host": cluster.bind_host or None,
        "seed": 42,
        "base": _base_spec(run),
    }


def _prune_spec(run: Run) -> dict:
    # wait_seconds: how long a node keeps asking through a web outage before it goes on training.
    return {
        "url": f"{settings.PUBLIC_URL}/ingest/runs/{run.pk}/epoch",
        "objective": run.early_stop.get("objective", "val_accuracy"),
        "wait_seconds": 300,
    }


def _base_spec(run: Run):
    tmpl = get_template(run.template)
    refs = [p.name for p in tmpl.ref_params if run.hyperparameters.get(p.name)]
    if not refs:
        return None
    return bases.resolve(run.team, run.hyperparameters[refs[0]]).to_spec()


def submit_request(run: Run, spec_path: Path, zip_path: Path):
    from workers.backends.base import SubmitRequest

    cluster = run.cluster
    return SubmitRequest(
        run_id=run.pk,
        run_dir=run.run_dir,
        master_url=cluster.master_url,
        app_name=f"sparkdeck-run-{run.pk}",
        entry=str(JOB_PACKAGE / "driver.py"),
        entry_args=["--spec", str(spec_path)],
        py_files=[str(zip_path)],
        num_executors=run.num_executors,
        executor_cores=run.executor_cores,
        executor_memory_mb=run.executor_memory_mb,
        driver_memory_mb=1024,
        python=cluster_services.executor_python(cluster),
        spark_conf=cluster_services.extra_conf(cluster),
        env={},
        executor_env=cluster_services.executor_env(cluster),
        bind_host=cluster.bind_host or None,
        gpus_per_executor=run.gpus_per_executor,
        notify=_notify_spec(),
        java_opts=_class_archive_opts(run),
        event_log_dir=cluster.event_log_dir,
    )


def _class_archive_opts(run: Run) -> dict[str, str]:
    """JVM options for class-data archives (workers/jvm_cds.py): standalone clusters only, whose
    spark-submit is this host's; the executors' too where the master is on loopback, so they run here."""
    from webapp.clusters.models import Cluster
    from workers import jvm_cds
    from workers.localcluster import spark_home

    cluster = run.cluster
    if not settings.JVM_CLASS_ARCHIVES or cluster.kind != Cluster.Kind.STANDALONE:
        return {}
    home = Path(cluster.spark_home) if cluster.spark_home else spark_home()
    here = _is_loopback(urlparse(cluster.master_url or "").hostname or "")
    return jvm_cds.java_opts(Path(settings.VAR_DIR) / "jvm-cds", home, run.pk, executors_here=here)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: executors may run anywhere
        return False


def _notify_spec() -> str:
    """What the launcher publishes when the driver exits (workers/notify.py): this app's broker."""
    from workers import notify
    from workers.celery import app

    if app.conf.task_always_eager:  # no worker to tell
        return ""
    return notify.spec(app.conf.broker_url, dict(app.conf.broker_transport_options or {}))


MAX_SUBMIT_ATTEMPTS = 3  # claims of one run whose worker died before launching anything


def submit(run_id: int) -> None:
    run = Run.objects.select_related("cluster", "dataset").filter(pk=run_id).first()
    if run is None or run.status != Status.QUEUED:
        return  # idempotent: deleted, already claimed or finished
    attempt = run.submit_attempts + 1
    try:
        # Claim first, so a duplicate task cannot launch twice; the attempt number owns the launch.
        run.transition(Status.SUBMITTED, submit_attempts=attempt)
    except StaleStatus:
        return
    faults.pause("after-claim")
    run_dir = run.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path = run_dir / "spec.json"
    try:
        spec_path.write_text(json.dumps(build_spec(run), indent=2))
    except bases.BaseRefError as exc:  # the base went away after the run was accepted
        _fail(run, f"Submission failed: {exc}", attempt=attempt)
        return
    backend = backend_for(run.cluster)
    try:
        # A per-run snapshot of the job code: reproducible, and shipped with --py-files.
        req = submit_request(run, spec_path, Path(build_jobs_zip(str(run_dir / "jobs.zip"))))
        if not _claim_current(run.pk, attempt):
            return  # cancelled, or sent again after this worker was taken for dead: launch nothing
        handle = backend.submit(req)
    except BackendError as exc:
        _fail(run, f"Submission failed: {exc}", attempt=attempt)
        return
    except Exception as exc:  # noqa: BLE001 - any launch error must end the run, not leave it hanging
        log.exception("submit of run %s failed", run.pk)
        _fail(run, f"Submission failed: {type(exc).__name__}: {exc}", attempt=attempt)
        return
    faults.pause("after-launch")
    # Compare-and-set: a cancel (or a new attempt) that came after the claim wins over this launch.
    if not Run.objects.filter(pk=run.pk, status=Status.SUBMITTED, submit_attempts=attempt).update(
        backend_handle=handle
    ):
        log.warning("run %s ended or was sent again while its driver started; stopping that driver", run.pk)
        supervision.stop_local(handle, grace=getattr(backend, "cancel_grace", 10.0))


def _claim_current(run_id: int, attempt: int) -> bool:
    return Run.objects.filter(pk=run_id, status=Status.SUBMITTED, submit_attempts=attempt).exists()


def _fail(run: Run, reason: str, detail: str = "", attempt: int | None = None) -> None:
    where = None if attempt is None else {"submit_attempts": attempt}
    try:
        run.transition(Status.FAILED, reason=reason, detail=detail, where=where)
    except StaleStatus:
        pass


def _recover_submission(run: Run) -> None:
    """A SUBMITTED run without a handle whose claim is old: its worker died. If the launcher had
    started, take its driver over; if nothing was launched, send the run again (bounded)."""
    age = time.time() - run.submitted_at.timestamp() if run.submitted_at else 0
    if age <= settings.LOST_SUBMISSION_SECONDS:
        return
    mine = {"status": Status.SUBMITTED, "submit_attempts": run.submit_attempts, "backend_handle": {}}
    handle = supervision.adopt(run.run_dir)
    if handle is not None:
        if Run.objects.filter(pk=run.pk, **mine).update(backend_handle=handle):
            log.warning("run %s: its submitting worker died after the launch; driver adopted", run.pk)
            _note(run, f"the worker that launched the driver on {handle.get('host')} stopped before recording it; "
                       "the driver was taken over")  # fmt: skip
        return
    if run.submit_attempts >= MAX_SUBMIT_ATTEMPTS:
        _fail(
            run,
            f"The submission was lost {run.submit_attempts} times (the worker stopped before spark-submit "
            "started each time).",
            attempt=run.submit_attempts,
        )
        return
    try:
        run.transition(
            Status.QUEUED,
            where={"submit_attempts": run.submit_attempts, "backend_handle": {}},
            queue_reason=f"Sent again: the worker that claimed it stopped before launching anything "
            f"(attempt {run.submit_attempts} of {MAX_SUBMIT_ATTEMPTS}).",
        )
    except StaleStatus:
        return
    log.warning("run %s: its submission was lost before anything launched; queued again", run.pk)
    _note(run, f"attempt {run.submit_attempts}: the worker that claimed the run stopped before launching anything; "
               "sent again")  # fmt: skip


def _note(run: Run, text: str) -> None:
    """A line in the run's driver log, which the run page shows: what Sparkdeck did to the run."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    with open(run.run_dir / "driver.log", "a") as f:
        f.write(f"[sparkdeck {time.strftime('%Y-%m-%d %H:%M:%S')}] {text}\n")


def reconcile(run: Run) -> None:
    """Bring one active run's status, logs and results up to date with its cluster."""
    if not run.backend_handle:
        if run.status == Status.SUBMITTED:
            _recover_submission(run)
        return
    backend = backend_for(run.cluster)
    handle = dict(run.backend_handle)
    driver = drivers.state(run, handle)
    state = backend.status(handle, driver)  # may note app id / last state in the handle
    try:
        # Once the run is over: every executor the application ever had, to the end (or marked incomplete).
        backend.logs(handle, final=state.is_final)
    except BackendError as exc:
        log.warning("log collection for run %s: %s", run.pk, exc)
    fields = {}
    if handle != run.backend_handle:
        fields["backend_handle"] = handle
    if state.app_id and state.app_id != run.spark_app_id:
        fields["spark_app_id"] = state.app_id
    if state.ui_url and state.ui_url != run.spark_ui_url:
        fields["spark_ui_url"] = state.ui_url
    if fields:
        Run.objects.filter(pk=run.pk).update(**fields)
        for k, v in fields.items():
            setattr(run, k, v)
    if state.host_silent_since and time.time() - state.host_silent_since > settings.DRIVER_HOST_GRACE_SECONDS:
        _fail_silent_host(run, driver, state)
        return
    _show_host_silence(run, driver, state)
    if state.is_final:
        # Points an executor could not post (the web was down as the run ended) are stored before the
        # run is marked done; once more after, for files that appeared meanwhile.
        _ingest_pending(run)
    if state.state != run.status:
        _move(run, state)
        if run.is_terminal:
            _ingest_pending(run)
        if run.is_terminal and driver.state == supervision.EXITED:
            drivers.record(run.pk, supervision.DriverState(drivers.STOPPED, host=driver.host))
    try:
        watchdog.check(run, backend=backend, state=state)  # after the move: it knows if Spark failed the run
    except Exception:  # noqa: BLE001 - a watchdog problem must never break reconciling
        log.exception("watchdog of run %s failed", run.pk)


def _ingest_pending(run: Run) -> None:
    try:
        metrics.ingest_pending(run)
    except Exception:  # noqa: BLE001 - kept on disk for the next try; never blocks the move
        log.exception("storing the pending metrics of run %s failed", run.pk)


SILENT_NOTICE = "Not answering: "  # an active run's status_reason while its driver's host is silent


def _show_host_silence(run: Run, driver, state) -> None:
    """While the driver's host is silent, the run page says so (and until when it waits); the notice
    goes once the host answers again."""
    notice = ""
    if state.host_silent_since:
        since = time.strftime("%H:%M:%S", time.localtime(state.host_silent_since))
        until = time.strftime("%H:%M:%S", time.localtime(state.host_silent_since + settings.DRIVER_HOST_GRACE_SECONDS))
        notice = (f"{SILENT_NOTICE}the driver's host {driver.host} has not answered since {since}; the run is "
                  f"failed at {until} unless it answers again.")  # fmt: skip
    elif not run.status_reason.startswith(SILENT_NOTICE):
        return
    if run.status_reason != notice:
        Run.objects.filter(pk=run.pk, status=run.status).update(status_reason=notice)
        run.status_reason = notice


def _fail_silent_host(run: Run, driver, state) -> None:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.host_silent_since))
    grace = settings.DRIVER_HOST_GRACE_SECONDS
    try:
        run.transition(
            Status.FAILED,
            reason=f"The driver's host {driver.host} stopped answering at {since} and did not come back "
            f"within {grace} s; the run's state there is unknown.",
            detail=state.detail or "",
        )
    except StaleStatus:
        return
    drivers.request_stop(run.pk)  # if the host comes back, its worker stops what is left


def _move(run: Run, state) -> None:
    target = state.state
    try:
        if target == Status.SUCCEEDED:
            result = _read_result(run)
            run.transition(
                Status.SUCCEEDED,
                result=result,
                test_accuracy=result.get("test_accuracy"),
                test_rows=result.get("test_rows"),
            )
        elif target == Status.FAILED:
            run.transition(Status.FAILED, reason=state.reason or "The Spark job failed.", detail=state.detail or "")
        elif target == Status.RUNNING and run.status == Status.SUBMITTED:
            run.transition(Status.RUNNING)
        elif target == Status.CANCELLED:
            run.transition(Status.CANCELLED, reason=state.reason or "")
    except StaleStatus:
        pass


def _read_result(run: Run) -> dict:
    try:
        return json.loads((run.run_dir / "result.json").read_text())
    except (OSError, ValueError):
        return {}


def reconcile_active() -> int:
    """Reconcile every active run; ticks that overlap a slow one are skipped, not stacked."""
    lock_path = settings.VAR_DIR / "run" / "reconcile.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        runs = Run.objects.filter(status__in=[Status.SUBMITTED, Status.RUNNING]).select_related("cluster")
        count = 0
        for run in runs:
            try:
                reconcile(run)
            except Exception:  # noqa: BLE001 - one broken run must not stop the others
                log.exception("reconcile of run %s failed", run.pk)
            count += 1
        try:
            drivers.sweep_unstopped()
        except Exception:  # noqa: BLE001 - retried on the next tick
            log.exception("sweeping the drivers of ended runs failed")
        return count


def follow_log(run: Run, source: str, stream: str) -> None:
    """Fetch what an active run's executor log gained since the last copy, for the run page's live
    tail (docs/monitoring.md); the periodic reconcile copies every log in any case."""
    if source == "driver" or run.is_terminal or not run.backend_handle:
        return  # the driver log is written into the run dir directly
    try:
        backend_for(run.cluster).follow_log(dict(run.backend_handle), source, stream)
    except (BackendError, OSError) as exc:
        log.warning("live log for run %s: %s", run.pk, exc)


def cancel(run: Run, by: str = "") -> None:
    """Cancel a run: QUEUED at once; a submitted one is recorded CANCELLED first (compare-and-set),
    then its cancel mark is written (a launcher that has not started spark-submit yet starts nothing)
    and its driver's host is asked to stop the driver and the application, logs kept. Nothing here
    touches a process: that happens on the driver's host. Raises StaleStatus if the run ended first."""
    reason = f"Cancelled by {by}." if by else "Cancelled."
    before = run.status
    try:
        run.transition(Status.CANCELLED, reason=reason)
    except StaleStatus:
        if run.status == Status.CANCELLED:
            return  # cancelled by someone else meanwhile: the same outcome
        if run.is_terminal:
            raise
        before = run.status
        run.transition(Status.CANCELLED, reason=reason)  # it was claimed meanwhile: once more
    if before != Status.QUEUED or run.submit_attempts:
        supervision.mark_cancelled(run.run_dir, reason)
        drivers.request_stop(run.pk)  # reads the handle after the move: a launch recorded before it is seen
