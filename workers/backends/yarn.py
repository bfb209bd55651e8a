"""YARN backend: spark-submit --master yarn, wrapped by workers.launcher like the standalone backend.

Hadoop 3 ResourceManager REST API (https://hadoop.apache.org/docs/r3.3.6/hadoop-yarn/hadoop-yarn-site/
ResourceManagerRest.html), all under <rest_url> = the RM web address (http://rm:8088):
- cluster info:  GET /ws/v1/cluster/info -> {"clusterInfo": {"state": "STARTED", "haState": "ACTIVE", ...}}
- one app:       GET /ws/v1/cluster/apps/{id} -> {"app": {"id", "state": NEW|NEW_SAVING|SUBMITTED|ACCEPTED|
                 RUNNING|FINISHED|FAILED|KILLED, "finalStatus": UNDEFINED|SUCCEEDED|FAILED|KILLED,
                 "diagnostics", "trackingUrl", ...}}; unknown id -> 404 {"RemoteException": {...}}
- kill an app:   PUT /ws/v1/cluster/apps/{id}/state  {"state": "KILLED"} (application/json); on clusters with
                 simple auth the RM wants ?user.name=<owner> for write calls (ignored under Kerberos/SPNEGO).

Client mode (the default) keeps the driver on the Celery worker host exactly like standalone: its exit
code (driver.rc), result.json and SPARKDECK_* lines decide the outcome. In cluster mode the driver runs
in the ApplicationMaster container: the local process is only spark-submit's client, and the RM's
state/finalStatus decides (with its diagnostics as the reason).
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import requests

from workers import supervision
from workers.backends.base import FINAL_STATES, BackendError, BackendStatus, ClusterUnreachable, Handle, SubmitRequest
from workers.backends.standalone import PROTECTED_CONF, StandaloneBackend, host_silent
from workers.launcher import LOG_NAME
from workers.supervision import EXITED, RESULT_NAME, SILENT, DriverState, cancel_reason, failure_reason

DEPLOY_MODES = ("client", "cluster")
GPU_SCRIPT_ENV = "SPARKDECK_YARN_GPU_DISCOVERY_SCRIPT"  # worker-host default for the discovery script
AGGREGATED_LOG = "yarn-aggregated.log"

# On top of the standalone list: what the YARN backend sets itself.
YARN_PROTECTED_CONF = PROTECTED_CONF | {
    "spark.yarn.queue",
    "spark.archives",
    "spark.yarn.dist.archives",
    "spark.yarn.submit.waitAppCompletion",
    "spark.yarn.appMasterEnv.TF_USE_LEGACY_KERAS",
    "spark.yarn.appMasterEnv.PYSPARK_PYTHON",
    "spark.executorEnv.PYSPARK_PYTHON",
    # Spark maps spark.executor.resource.gpu.* to yarn.io/gpu itself; asking twice is an error.
    "spark.yarn.executor.resource.yarn.io/gpu.amount",
}
DEFAULT_CONF = {"spark.yarn.maxAppAttempts": "1"}  # a retried AM would restart training; overridable

APP_ID_RE = re.compile(r"\b(application_\d+_\d+)\b")
PENDING_STATES = ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED")


class AppNotFound(BackendError):
    """The RM answered 404 for the application id."""


def map_app(app: dict) -> BackendStatus:
    """A YARN application report (the "app" object) as a Sparkdeck state."""
    state, final = app.get("state"), app.get("finalStatus")
    diagnostics = (app.get("diagnostics") or "").strip() or None
    ui = app.get("trackingUrl") or None
    reason = diagnostics.splitlines()[0][:500] if diagnostics else None
    if state in PENDING_STATES:
        return BackendStatus("SUBMITTED", ui_url=ui, detail=f"application {state}: waiting for YARN resources")
    if state == "RUNNING":
        return BackendStatus("RUNNING", ui_url=ui)
    if state == "FINISHED" and final == "SUCCEEDED":
        return BackendStatus("SUCCEEDED", ui_url=ui)
    if state == "KILLED" or final == "KILLED":
        return BackendStatus("CANCELLED", ui_url=ui, reason=reason or "Killed on YARN.", detail=diagnostics)
    if state in ("FINISHED", "FAILED"):
        why = reason or f"application {state.lower()} with final status {final}"
        return BackendStatus("FAILED", ui_url=ui, reason=why, detail=diagnostics)
    return BackendStatus("SUBMITTED", ui_url=ui, detail=f"unknown YARN state {state!r}")


class YarnBackend(StandaloneBackend):
    """Reuses the standalone backend's launcher handling (build_env, detached start, driver.rc,
    process-group stop); only argv, the RM REST calls and the state mapping differ."""

    kind = "yarn"

    def __init__(
        self,
        rest_url: str | None = None,
        queue: str = "default",
        deploy_mode: str = "client",
        archives: tuple[str, ...] | list[str] = (),
        python_archive_alias: str | None = None,
        spark_home: str | os.PathLike | None = None,
        timeout: float = 5.0,
        spark_submit: str | None = None,
        gpu_discovery_script: str | None = None,
        rm_user: str | None = None,
        cancel_grace: float = 10.0,
        logs_timeout: float = 120.0,
        collect_logs: bool = True,
        **_other_settings,  # other cluster fields (name, master_url, ...) are not ours to use
    ):
        if deploy_mode not in DEPLOY_MODES:
            raise BackendError(f"deploy_mode must be one of {DEPLOY_MODES}, not {deploy_mode!r}.")
        super().__init__(
            rest_url=rest_url,
            spark_submit=spark_submit,
            http_timeout=timeout,
            cancel_grace=cancel_grace,
            spark_home=spark_home,
            collect_logs=collect_logs,
        )
        self.queue = queue or "default"
        self.deploy_mode = deploy_mode
        self.archives = [str(a) for a in archives]
        self.python_archive_alias = python_archive_alias
        self.timeout = timeout
        self.gpu_discovery_script = gpu_discovery_script or os.environ.get(GPU_SCRIPT_ENV) or None
        self.rm_user = rm_user
        self.logs_timeout = logs_timeout

    # -- argv and env ----------------------------------------------------------------------------

    def _pythons(self, req: SubmitRequest) -> tuple[str, str]:
        """(executor python, driver python)."""
        alias = self.python_archive_alias
        if not alias:
            return req.python, req.python
        if not any(a.endswith(f"#{alias}") for a in self.archives):
            raise BackendError(f"python_archive_alias {alias!r} names no archive (expected '<archive>#{alias}').")
        shipped = f"./{alias}/bin/python"  # relative to the YARN container's working directory
        # client mode: the driver runs here, with the local interpreter; cluster mode: in the AM container.
        return shipped, (shipped if self.deploy_mode == "cluster" else req.python)

    def build_argv(self, req: SubmitRequest) -> list[str]:
        self.check_request(req)
        cluster = self.deploy_mode == "cluster"
        exec_python, driver_python = self._pythons(req)
        conf = self.run_conf(req, YARN_PROTECTED_CONF, exec_python, driver_python)
        if cluster:
            # The driver runs in the AM container and does not inherit spark-submit's environment.
            conf["spark.yarn.submit.waitAppCompletion"] = "true"
            am_env = {k: str(v) for k, v in req.env.items()}
            am_env.update(TF_USE_LEGACY_KERAS="1", PYSPARK_PYTHON=exec_python, PYTHONUNBUFFERED="1")
            for key, value in am_env.items():
                conf[f"spark.yarn.appMasterEnv.{key}"] = value
        elif req.bind_host:
            # Only the local driver binds there: executors run on the NodeManagers' own addresses.
            conf["spark.driver.host"] = req.bind_host
            conf["spark.driver.bindAddress"] = req.bind_host
        if req.gpus_per_executor:
            g = str(req.gpus_per_executor)
            conf["spark.executor.resource.gpu.amount"] = g  # Spark requests yarn.io/gpu for it
            conf["spark.task.resource.gpu.amount"] = g
            script_key = "spark.executor.resource.gpu.discoveryScript"
            if self.gpu_discovery_script and script_key not in req.spark_conf:
                conf[script_key] = self.gpu_discovery_script
            elif script_key not in req.spark_conf:
                raise BackendError(
                    "GPU runs on YARN need a GPU discovery script on the NodeManagers (YARN does not tell "
                    f"Spark the GPU addresses): set {GPU_SCRIPT_ENV} on the worker host or {script_key}."
                )
        conf.update(DEFAULT_CONF)
        for key, value in sorted(req.spark_conf.items()):  # extra conf goes last
            if key in YARN_PROTECTED_CONF or key.startswith("spark.yarn.appMasterEnv."):
                raise BackendError(f"Spark setting {key} is managed by Sparkdeck and cannot be overridden.")
            if not key.startswith("spark."):
                raise BackendError(f"{key!r} is not a Spark setting (must start with 'spark.').")
            conf[key] = str(value)

        argv = [self.spark_submit_path(), "--master", "yarn", "--deploy-mode", self.deploy_mode]
        argv += ["--name", req.app_name, "--queue", self.queue]
        argv += ["--num-executors", str(req.num_executors), "--executor-cores", str(req.executor_cores)]
        argv += ["--executor-memory", f"{req.executor_memory_mb}m", "--driver-memory", f"{req.driver_memory_mb}m"]
        for key, value in conf.items():
            argv += ["--conf", f"{key}={value}"]
        if self.archives:
            argv += ["--archives", ",".join(self.archives)]
        if req.py_files:
            argv += ["--py-files", ",".join(str(p) for p in req.py_files)]
        return [*argv, str(req.entry), *(str(a) for a in req.entry_args)]

    def build_env(self, req: SubmitRequest) -> dict[str, str]:
        if self.deploy_mode == "cluster":
            req = dataclasses.replace(req, bind_host=None)  # nothing of the driver binds here
        return super().build_env(req)

    # -- ResourceManager REST --------------------------------------------------------------------

    def _rest(self, handle: Handle | None = None) -> str:
        url = ((handle or {}).get("rest_url") or self.rest_url or "").rstrip("/")
        if not url:
            raise BackendError("No YARN ResourceManager web address (rest_url) configured for this cluster.")
        return url

    def cluster_info(self, rest_url: str) -> dict:
        url = f"{rest_url}/ws/v1/cluster/info"
        try:
            resp = requests.get(url, timeout=self.timeout, headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise ClusterUnreachable(
                f"The YARN ResourceManager at {rest_url} is not reachable ({type(exc).__name__})."
            ) from exc
        try:
            resp.raise_for_status()
            info = resp.json()["clusterInfo"]
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            raise ClusterUnreachable(
                f"{rest_url} did not answer like a YARN ResourceManager (GET /ws/v1/cluster/info: HTTP "
                f"{resp.status_code})."
            ) from exc
        if info.get("state") != "STARTED":
            raise ClusterUnreachable(f"The YARN ResourceManager at {rest_url} is {info.get('state')}, not STARTED.")
        return info

    def app_report(self, rest_url: str, app_id: str) -> dict:
        """The RM's "app" object; ClusterUnreachable on network trouble, AppNotFound on 404."""
        try:
            resp = requests.get(
                f"{rest_url}/ws/v1/cluster/apps/{app_id}", timeout=self.timeout, headers={"Accept": "application/json"}
            )
            if resp.status_code == 404:
                raise AppNotFound(f"The YARN ResourceManager at {rest_url} does not know application {app_id}.")
            resp.raise_for_status()
            return resp.json()["app"]
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            raise ClusterUnreachable(
                f"The YARN ResourceManager at {rest_url} is not reachable ({type(exc).__name__})."
            ) from exc

    def _kill_app(self, rest_url: str, app_id: str) -> None:
        """PUT state KILLED. Already-finished or unknown apps are fine; network errors raise
        ClusterUnreachable, refusals (401/403) BackendError."""
        try:
            resp = requests.put(
                f"{rest_url}/ws/v1/cluster/apps/{app_id}/state",
                params={"user.name": self.rm_user or getpass.getuser()},
                data=json.dumps({"state": "KILLED"}),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise ClusterUnreachable(
                f"Could not ask the YARN ResourceManager at {rest_url} to kill {app_id} ({type(exc).__name__})."
            ) from exc
        if resp.status_code in (401, 403):
            code = resp.status_code
            raise BackendError(f"The YARN ResourceManager at {rest_url} refused to kill {app_id} (HTTP {code}).")
        # 200 (killed / already final), 202 (kill in progress), 404 (unknown app): nothing more to do.

    # -- submit ----------------------------------------------------------------------------------

    def submit(self, req: SubmitRequest) -> Handle:
        argv = self.build_argv(req)
        env = self.build_env(req)
        if not (env.get("HADOOP_CONF_DIR") or env.get("YARN_CONF_DIR")):
            raise BackendError(
                "spark-submit needs HADOOP_CONF_DIR or YARN_CONF_DIR (the cluster's client configuration) "
                "in the Celery worker's environment to submit to YARN."
            )
        rest_url = self._rest()
        self.cluster_info(rest_url)
        return self._launch(req, argv, env, rest_url=rest_url, deploy_mode=self.deploy_mode, queue=self.queue)

    # -- status ----------------------------------------------------------------------------------

    def _markers(self, handle: Handle, log_path: Path) -> None:
        if handle.get("app_id"):
            return
        app_id = supervision.find_marker(log_path, "SPARKDECK_APP_ID=")  # the driver's own line (client mode)
        if not app_id:
            submitted = supervision.find_marker(log_path, "Submitted application ")  # YARN's Client, both modes
            m = APP_ID_RE.match(submitted or "")
            app_id = m.group(1) if m else None
        handle["app_id"] = app_id

    def status(self, handle: Handle, driver: DriverState | None = None) -> BackendStatus:
        run_dir = Path(handle["run_dir"])
        log_path = run_dir / LOG_NAME
        self._markers(handle, log_path)
        st = self._yarn_status(handle, run_dir, log_path, driver or supervision.driver_state(handle))
        if not handle.get("ui_url"):  # before the RM has a trackingUrl: the driver's own UI (client mode)
            handle["ui_url"] = supervision.find_marker(log_path, "SPARKDECK_UI_URL=")
        st.app_id, st.ui_url = handle.get("app_id"), handle.get("ui_url")
        handle["last_state"] = st.state
        return st

    def _rm_view(self, handle: Handle) -> BackendStatus | BackendError | None:
        """The RM's view of the app: a status, the error that prevented one, or None without app id."""
        if not handle.get("app_id"):
            return None
        try:
            return map_app(self.app_report(self._rest(handle), handle["app_id"]))
        except BackendError as exc:
            return exc

    def _yarn_status(self, handle: Handle, run_dir: Path, log_path: Path, driver: DriverState) -> BackendStatus:
        rc = driver.rc if driver.state == EXITED else None
        alive = driver.alive
        cancelled = supervision.is_cancelled(run_dir)
        last = handle.get("last_state") if handle.get("last_state") not in FINAL_STATES else None
        rm = self._rm_view(handle)
        ui = rm.ui_url if isinstance(rm, BackendStatus) else None
        if ui:
            handle["ui_url"] = ui  # the RM proxy while running, the history server after

        if self.deploy_mode == "cluster" or handle.get("deploy_mode") == "cluster":
            if isinstance(rm, BackendStatus):
                if cancelled and rm.state in ("CANCELLED", "FAILED"):
                    return BackendStatus("CANCELLED", reason=cancel_reason(run_dir), ui_url=ui)
                # Even if spark-submit's client is gone, the app lives on in the cluster: follow the RM.
                return rm
            if isinstance(rm, AppNotFound):
                if cancelled:
                    return BackendStatus("CANCELLED", reason=cancel_reason(run_dir))
                return BackendStatus(
                    "FAILED", reason=f"{rm} It may have been removed from the RM's history, or the RM was reset."
                )
            # No app id yet, or the RM did not answer: fall back on spark-submit's own exit.
            if alive:
                detail = "YARN ResourceManager not reachable" if rm else "waiting for spark-submit to submit"
                return BackendStatus(last or "SUBMITTED", detail=detail)
            return self._from_rc(rc, run_dir, log_path, cancelled, cluster=True)

        # Client mode: the local driver's exit code decides the final state.
        if driver.state == SILENT:
            return host_silent(handle, driver)
        if not alive:
            if rc is not None and rc != 0 and not cancelled and isinstance(rm, BackendStatus):
                if rm.state == "CANCELLED":  # killed on YARN by someone else
                    return rm
            st = self._from_rc(rc, run_dir, log_path, cancelled, cluster=False)
            if st.state == "FAILED" and isinstance(rm, BackendStatus) and rm.state == "FAILED" and not st.detail:
                st.detail = rm.detail
            return st
        if rm is None:
            return BackendStatus("SUBMITTED", detail="waiting for the driver to start")
        if isinstance(rm, BackendError):
            detail = str(rm) if isinstance(rm, AppNotFound) else "YARN ResourceManager not reachable"
            return BackendStatus(last or "SUBMITTED", detail=detail)
        if rm.is_final:
            return BackendStatus(
                "RUNNING", ui_url=ui, detail=f"application {rm.state.lower()} on YARN; driver is shutting down"
            )
        return rm

    @staticmethod
    def _from_rc(rc: int | None, run_dir: Path, log_path: Path, cancelled: bool, cluster: bool) -> BackendStatus:
        """The standalone rules for a driver that is gone."""
        if rc is None:
            if cancelled:
                return BackendStatus("CANCELLED", reason=cancel_reason(run_dir))
            return BackendStatus(
                "FAILED", reason="driver process vanished", detail=supervision.vanished_detail(run_dir)
            )
        if cancelled and rc != 0:
            return BackendStatus("CANCELLED", reason=cancel_reason(run_dir))
        if rc == 0 and (cluster or (run_dir / RESULT_NAME).exists()):
            return BackendStatus("SUCCEEDED")
        if cancelled:
            return BackendStatus("CANCELLED", reason=cancel_reason(run_dir))
        if rc == 0:
            return BackendStatus("FAILED", reason=f"the driver exited without writing {RESULT_NAME}")
        reason, detail = failure_reason(log_path, rc)
        return BackendStatus("FAILED", reason=reason, detail=detail)

    # -- cancel ----------------------------------------------------------------------------------

    def cancel_remote(self, handle: Handle) -> None:
        run_dir = Path(handle["run_dir"])
        self._markers(handle, run_dir / LOG_NAME)
        cluster = self.deploy_mode == "cluster" or handle.get("deploy_mode") == "cluster"
        if handle.get("app_id"):
            try:
                self._kill_app(self._rest(handle), handle["app_id"])
            except BackendError:
                if cluster:
                    raise  # the app would live on in the cluster: do not pretend it was cancelled
                # client mode: stopping the driver ends the application too

    def cancel(self, handle: Handle, reason: str = "") -> None:
        self.cancel_remote(handle)
        supervision.mark_cancelled(Path(handle["run_dir"]), reason)
        supervision.stop_local(handle, grace=self.cancel_grace)

    # -- logs ------------------------------------------------------------------------------------

    def logs(self, handle: Handle, final: bool = False) -> list[Path]:
        """Aggregated container logs via `yarn logs`, once the app is finished and only if a `yarn`
        binary is on PATH. Live executor logs are on the NodeManager web UIs (via trackingUrl)."""
        run_dir = Path(handle["run_dir"])
        dest = run_dir / "executors" / AGGREGATED_LOG
        self._markers(handle, run_dir / LOG_NAME)
        if dest.exists():
            return [dest]
        yarn = shutil.which("yarn")
        app_id = handle.get("app_id")
        if not self.collect_logs or not yarn or not app_id or handle.get("last_state") not in FINAL_STATES:
            return []
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as out:
                proc = subprocess.run(
                    [yarn, "logs", "-applicationId", app_id],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.DEVNULL,
                    timeout=self.logs_timeout,
                )
            if proc.returncode != 0 or tmp.stat().st_size == 0:
                return []  # aggregation not finished (or disabled): try again on a later call
            os.replace(tmp, dest)
            return [dest]
        except (OSError, subprocess.SubprocessError):
            return []
        finally:
            tmp.unlink(missing_ok=True)
