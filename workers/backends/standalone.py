"""Spark standalone backend: spark-submit in client mode, wrapped by workers.launcher.

Endpoints used (verified on pyspark 4.3.0's Master/Worker):
- master state:   GET  <rest_url>/json/   -> {"workers": [{"id", "webuiaddress", "state", "cores",
                  "memory", "resources": {"gpu": {"addresses": [...]}}...}], "activeapps": [{"id",
                  "state": "RUNNING"|"WAITING", ...}], "completedapps": [...]}
- kill an app:    POST <rest_url>/app/kill/  form id=<app id>&terminate=true&csrfToken=<t>  (302 to "/");
                  <t> is rendered in the master page's kill forms (GET <rest_url>/); without it: 403
- worker state:   GET  <worker webuiaddress>/json/ -> {"executors": [...], "finishedexecutors": [...]},
                  each executor {"id": 0, "appid": "app-...", ...}
- executor log:   GET  <worker webuiaddress>/log/?appId=..&executorId=..&logType=stderr&offset=N&byteLength=M
                  -> "==== Bytes <start>-<end> of <total> of <path> ====\\n" + raw text
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import requests

from workers import notify, supervision
from workers.backends import executor_logs
from workers.backends.base import (
    MANAGED_ENV,
    Backend,
    BackendError,
    BackendStatus,
    ClusterUnreachable,
    Handle,
    SubmitRequest,
    event_log_conf,
    prepare_event_log_dir,
)
from workers.jobs import jvm_opts
from workers.launcher import LOG_NAME
from workers.localcluster import spark_home
from workers.supervision import EXITED, GONE, RESULT_NAME, SILENT, DriverState, cancel_reason, failure_reason

# Keys Sparkdeck sets itself; extra spark_conf may never touch them (TFoS needs one TF process per
# executor, a fixed executor count, and legacy Keras everywhere).
PROTECTED_CONF = {
    "spark.master",
    "spark.submit.deployMode",
    "spark.app.name",
    "spark.executor.cores",
    "spark.executor.memory",
    "spark.driver.memory",
    "spark.cores.max",
    "spark.executor.instances",
    "spark.task.cpus",
    "spark.dynamicAllocation.enabled",
    "spark.pyspark.python",
    "spark.pyspark.driver.python",
    "spark.executorEnv.TF_USE_LEGACY_KERAS",
    "spark.executorEnv.SPARKDECK_BIND_HOST",
    "spark.driver.host",
    "spark.driver.bindAddress",
    "spark.executor.resource.gpu.amount",
    "spark.task.resource.gpu.amount",
    "spark.submit.pyFiles",
    jvm_opts.EXECUTOR_OPTS_CONF,
}
# spark-submit's own environment: what build_env() sets, which a request's env may not.
PROTECTED_ENV = MANAGED_ENV | {notify.ENV}

CSRF_RE = re.compile(r'name="csrfToken" value="([^"]*)"')


def host_silent(handle: Handle, driver: DriverState) -> BackendStatus:
    """A run whose driver's host stopped answering: its last known state, and since when."""
    since = time.strftime("%H:%M:%S", time.localtime(driver.seen_at)) if driver.seen_at else "its launch"
    return BackendStatus(
        handle.get("last_state") or "SUBMITTED",
        detail=f"the driver's host {driver.host} has not answered since {since}",
        host_silent_since=driver.seen_at or time.time(),
    )


def check_capacity(master_state: dict, req: SubmitRequest) -> None:
    """Refuse runs no live worker set can ever host: Spark would wait for them forever."""
    alive = [w for w in master_state.get("workers", []) if w.get("state") == "ALIVE"]
    if not alive:
        raise BackendError("The Spark cluster has no live workers.")
    slots = 0
    for w in alive:
        fit = min(w.get("cores", 0) // req.executor_cores, w.get("memory", 0) // req.executor_memory_mb)
        if req.gpus_per_executor:
            gpus = len(((w.get("resources") or {}).get("gpu") or {}).get("addresses", []))
            fit = min(fit, gpus // req.gpus_per_executor)
        slots += fit
    if slots < req.num_executors:
        gpu = f", {req.gpus_per_executor} GPU(s)" if req.gpus_per_executor else ""
        raise BackendError(
            f"The cluster can host at most {slots} executor(s) of {req.executor_cores} core(s), "
            f"{req.executor_memory_mb} MB{gpu}; this run needs {req.num_executors}."
        )


class StandaloneBackend(Backend):
    kind = "standalone"

    def __init__(
        self,
        master_url: str | None = None,
        rest_url: str | None = None,
        spark_submit: str | None = None,
        http_timeout: float = 3.0,
        cancel_grace: float = 10.0,
        spark_home: str | os.PathLike | None = None,
        collect_logs: bool = True,
        **_other_settings,  # other cluster fields (name, bind_host, ...) are not ours to use
    ):
        if spark_home and not spark_submit:
            spark_submit = str(Path(spark_home) / "bin" / "spark-submit")
        self.master_url = master_url
        self.rest_url = (rest_url or "").rstrip("/") or None
        self.spark_submit = spark_submit
        self.spark_home = Path(spark_home) if spark_home else None
        self.collect_logs = collect_logs
        self.http_timeout = http_timeout
        self.cancel_grace = cancel_grace

    # -- argv and env ----------------------------------------------------------------------------

    def spark_submit_path(self) -> str:
        if self.spark_submit:
            return self.spark_submit
        venv_bin = Path(sys.executable).parent / "spark-submit"  # pip puts it next to python
        return str(venv_bin if venv_bin.exists() else spark_home() / "bin" / "spark-submit")

    @staticmethod
    def check_request(req: SubmitRequest) -> None:
        for name in ("num_executors", "executor_cores", "executor_memory_mb", "driver_memory_mb"):
            if int(getattr(req, name)) < 1:
                raise BackendError(f"{name} must be at least 1.")
        if req.gpus_per_executor < 0:
            raise BackendError("gpus_per_executor must not be negative.")

    @staticmethod
    def run_conf(req: SubmitRequest, protected: set[str], exec_python: str, driver_python: str) -> dict[str, str]:
        """The conf every backend submits a run with: one TF process per executor, a fixed executor
        count, the run's interpreters, legacy Keras, the cluster's executor env (never a `protected` key)."""
        conf = {
            "spark.executor.instances": str(req.num_executors),
            "spark.task.cpus": str(req.executor_cores),  # one task, hence one TF process, per executor
            "spark.dynamicAllocation.enabled": "false",
            "spark.pyspark.python": exec_python,
            "spark.pyspark.driver.python": driver_python,
            "spark.executorEnv.TF_USE_LEGACY_KERAS": "1",
            # A short-lived JVM: its cost is startup (jvm_opts.py); the cluster's extra conf wins.
            "spark.driver.extraJavaOptions": jvm_opts.join(jvm_opts.STARTUP_JAVA_OPTS, req.java_opts.get("driver", "")),
            **event_log_conf(req.event_log_dir),
        }
        if req.java_opts.get("executor"):
            conf[jvm_opts.EXECUTOR_OPTS_CONF] = req.java_opts["executor"]
        for key, value in req.executor_env.items():
            ckey = f"spark.executorEnv.{key}"
            if ckey in protected:
                raise BackendError(f"executor env {key} is set by Sparkdeck and cannot be overridden.")
            conf[ckey] = str(value)
        return conf

    def build_argv(self, req: SubmitRequest) -> list[str]:
        self.check_request(req)
        master = req.master_url or self.master_url
        if not master:
            raise BackendError("No Spark master URL configured for this cluster.")
        conf = self.run_conf(req, PROTECTED_CONF, req.python, req.python)
        conf["spark.cores.max"] = str(req.num_executors * req.executor_cores)
        if req.bind_host:
            conf["spark.executorEnv.SPARKDECK_BIND_HOST"] = req.bind_host
            conf["spark.driver.host"] = req.bind_host
            conf["spark.driver.bindAddress"] = req.bind_host
        if req.gpus_per_executor:
            conf["spark.executor.resource.gpu.amount"] = str(req.gpus_per_executor)
            conf["spark.task.resource.gpu.amount"] = str(req.gpus_per_executor)
        for key, value in sorted(req.spark_conf.items()):  # extra conf goes last
            if key in PROTECTED_CONF:
                raise BackendError(f"Spark setting {key} is managed by Sparkdeck and cannot be overridden.")
            if not key.startswith("spark."):
                raise BackendError(f"{key!r} is not a Spark setting (must start with 'spark.').")
            conf[key] = str(value)

        argv = [self.spark_submit_path(), "--master", master, "--deploy-mode", "client"]
        argv += ["--name", req.app_name, "--executor-cores", str(req.executor_cores)]
        argv += ["--executor-memory", f"{req.executor_memory_mb}m", "--driver-memory", f"{req.driver_memory_mb}m"]
        for key, value in conf.items():
            argv += ["--conf", f"{key}={value}"]
        if req.py_files:
            argv += ["--py-files", ",".join(str(p) for p in req.py_files)]
        return [*argv, str(req.entry), *(str(a) for a in req.entry_args)]

    def build_env(self, req: SubmitRequest) -> dict[str, str]:
        clash = PROTECTED_ENV & set(req.env)
        if clash:
            raise BackendError(f"Environment variable(s) {sorted(clash)} are managed by Sparkdeck.")
        env = supervision.child_env({k: str(v) for k, v in req.env.items()})
        env.update(TF_USE_LEGACY_KERAS="1", PYSPARK_PYTHON=req.python, PYTHONUNBUFFERED="1")
        if self.spark_home:
            env["SPARK_HOME"] = str(self.spark_home)
        if req.bind_host:
            env.update(SPARK_LOCAL_IP=req.bind_host, TFOS_SERVER_HOST=req.bind_host, SPARKDECK_BIND_HOST=req.bind_host)
        env.pop(notify.ENV, None)  # only ever this run's own, below
        if req.notify:
            env[notify.ENV] = req.notify
        return env

    # -- master/worker HTTP ----------------------------------------------------------------------

    def _rest(self, handle: Handle | None = None) -> str:
        url = (handle or {}).get("rest_url") or self.rest_url
        if not url:
            raise BackendError("No Spark master web UI URL configured for this cluster.")
        return url

    def master_state(self, rest_url: str) -> dict:
        try:
            resp = requests.get(f"{rest_url}/json/", timeout=self.http_timeout)
            resp.raise_for_status()
            return resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise ClusterUnreachable(
                f"The Spark master at {rest_url} is not reachable ({type(exc).__name__})."
            ) from exc

    # -- submit ----------------------------------------------------------------------------------

    def submit(self, req: SubmitRequest) -> Handle:
        argv = self.build_argv(req)
        env = self.build_env(req)
        rest_url = self._rest()
        check_capacity(self.master_state(rest_url), req)
        return self._launch(req, argv, env, master_url=req.master_url or self.master_url, rest_url=rest_url)

    def _launch(self, req: SubmitRequest, argv: list[str], env: dict, **handle) -> Handle:
        """Start spark-submit under workers.launcher on this host (workers/supervision.py)."""
        base = {"backend": self.kind, "run_id": req.run_id, **handle, "app_id": None, "ui_url": None}
        prepare_event_log_dir(req.event_log_dir)
        try:
            return supervision.launch(req.run_dir, argv, env, {**base, "submitted": time.time()})
        except supervision.AlreadyRunning as exc:
            raise BackendError(str(exc)) from None

    # -- status ----------------------------------------------------------------------------------

    def _markers(self, handle: Handle, log_path: Path) -> None:
        if not handle.get("app_id"):
            handle["app_id"] = supervision.find_marker(log_path, "SPARKDECK_APP_ID=")
        if handle.get("app_id") and not handle.get("ui_url"):
            handle["ui_url"] = supervision.find_marker(log_path, "SPARKDECK_UI_URL=")

    def status(self, handle: Handle, driver: DriverState | None = None) -> BackendStatus:
        run_dir = Path(handle["run_dir"])
        log_path = run_dir / LOG_NAME
        self._markers(handle, log_path)
        driver = driver or supervision.driver_state(handle)
        st = self._status(handle, run_dir, driver)
        st.app_id, st.ui_url = handle.get("app_id"), handle.get("ui_url")
        handle["last_state"] = st.state
        return st

    @staticmethod
    def _ended(run_dir: Path, driver: DriverState) -> BackendStatus:
        """The outcome of a driver that is no longer running, from the run dir."""
        cancelled = supervision.is_cancelled(run_dir)
        if driver.state == GONE:
            if cancelled:
                return BackendStatus("CANCELLED", reason=cancel_reason(run_dir))
            return BackendStatus(
                "FAILED", reason="driver process vanished", detail=supervision.vanished_detail(run_dir)
            )
        rc = driver.rc
        if rc == 0 and (run_dir / RESULT_NAME).exists():
            return BackendStatus("SUCCEEDED")
        if cancelled:
            return BackendStatus("CANCELLED", reason=cancel_reason(run_dir))
        if rc == 0:
            return BackendStatus("FAILED", reason=f"the driver exited without writing {RESULT_NAME}")
        reason, detail = failure_reason(run_dir / LOG_NAME, rc)
        return BackendStatus("FAILED", reason=reason, detail=detail)

    def _status(self, handle: Handle, run_dir: Path, driver: DriverState) -> BackendStatus:
        if driver.state in (EXITED, GONE):
            return self._ended(run_dir, driver)
        if driver.state == SILENT:
            return host_silent(handle, driver)

        # The driver runs. Ask the master how far its application got.
        app_id = handle.get("app_id")
        if not app_id:
            return BackendStatus("SUBMITTED", detail="waiting for the driver to start")
        try:
            state = self.master_state(self._rest(handle))
        except BackendError:
            # A master hiccup must not fail a run whose driver is alive: keep the last known state.
            return BackendStatus(handle.get("last_state") or "SUBMITTED", detail="Spark master not reachable")
        for app in state.get("activeapps", []):
            if app.get("id") == app_id:
                if app.get("state") == "RUNNING":
                    return BackendStatus("RUNNING")
                return BackendStatus(
                    "SUBMITTED", detail=f"application {app.get('state')}: waiting for cluster resources"
                )
        if any(app.get("id") == app_id for app in state.get("completedapps", [])):
            return BackendStatus("RUNNING", detail="application finished; driver is shutting down")
        return BackendStatus(handle.get("last_state") or "SUBMITTED")

    # -- cancel ----------------------------------------------------------------------------------

    def cancel_remote(self, handle: Handle) -> None:
        self._markers(handle, Path(handle["run_dir"]) / LOG_NAME)
        if handle.get("app_id"):
            self._kill_app(self._rest(handle), handle["app_id"])

    def cancel(self, handle: Handle, reason: str = "") -> None:
        supervision.mark_cancelled(Path(handle["run_dir"]), reason)
        self.cancel_remote(handle)
        supervision.stop_local(handle, grace=self.cancel_grace)

    def _kill_app(self, rest_url: str, app_id: str) -> None:
        """Kill the application through the master UI; frees its executors even if the driver hangs."""
        try:
            # Spark 4.x guards the kill form with a per-UI CSRF token, rendered in the page's forms.
            page = requests.get(f"{rest_url}/", timeout=self.http_timeout).text
            data = {"id": app_id, "terminate": "true"}
            m = CSRF_RE.search(page)
            if m:
                data["csrfToken"] = m.group(1)
            requests.post(f"{rest_url}/app/kill/", data=data, timeout=self.http_timeout, allow_redirects=False)
        except requests.RequestException:
            pass  # stopping the driver still ends the application

    # -- logs ------------------------------------------------------------------------------------

    def logs(self, handle: Handle, final: bool = False) -> list[Path]:
        run_dir = Path(handle["run_dir"])
        self._markers(handle, run_dir / LOG_NAME)
        copier = self._log_copier(handle)
        if copier is None:
            return executor_logs.copied_files(run_dir / "executors")
        return copier.collect(final=final)

    def follow_log(self, handle: Handle, executor: str, stream: str) -> None:
        copier = self._log_copier(handle)  # the app id is recorded by status()/logs() through the reconciler
        if copier is not None:
            copier.follow(executor, stream)

    def _log_copier(self, handle: Handle) -> executor_logs.LogCopier | None:
        if not (handle.get("app_id") and self.collect_logs):
            return None
        return executor_logs.LogCopier(
            handle["run_dir"],
            handle["app_id"],
            rest_url=handle.get("rest_url") or self.rest_url,
            driver_ui=handle.get("ui_url"),
            timeout=self.http_timeout,
        )
