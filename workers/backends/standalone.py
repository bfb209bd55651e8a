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

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from workers import notify
from workers.backends import executor_logs
from workers.backends.base import (
    MANAGED_ENV,
    Backend,
    BackendError,
    BackendStatus,
    ClusterUnreachable,
    Handle,
    SubmitRequest,
)
from workers.jobs import jvm_opts
from workers.launcher import INFO_NAME, LOG_NAME, RC_NAME, write_atomic
from workers.localcluster import cmdline, group_pids, pid_alive, spark_home, stop_groups

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULT_NAME = "result.json"
CANCEL_NAME = "cancelled.json"

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

# "ValueError: x", "py4j.protocol.Py4JJavaError: ...", "org.apache.spark.SparkException: ..." at line start.
EXC_NAME_RE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)(?![A-Za-z_]))(.*)$")
CSRF_RE = re.compile(r'name="csrfToken" value="([^"]*)"')


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _tail_lines(path: Path, max_bytes: int = 256 * 1024) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            return f.read().decode(errors="replace").splitlines()
    except OSError:
        return []


def _find_marker(path: Path, prefix: str) -> str | None:
    """Value of the first `PREFIX=value` in the driver log (printed early, so this stops soon).
    Searched anywhere in the line: JVM log output may be interleaved with the driver's prints."""
    try:
        with open(path, errors="replace") as f:
            for line in f:
                at = line.find(prefix)
                if at >= 0:
                    value = line[at + len(prefix) :].split()
                    return value[0] if value else None
    except OSError:
        pass
    return None


def _traceback_error(lines: list[str]) -> tuple[int, str] | None:
    """The exception line of the last Python traceback (JVM log lines may be interleaved)."""
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last):")]
    if not starts:
        return None
    for j in range(starts[-1] + 1, len(lines)):
        m = EXC_NAME_RE.match(lines[j])
        if not m:
            continue
        msgs = [m.group(2)] if m.group(2).startswith(":") else []
        msgs += [x.rstrip() for x in lines[j + 1 : j + 8] if x.startswith(": ")]
        # py4j: ": An error occurred while calling X." then ": <the Java exception>" (the useful part)
        msg = next((x for x in msgs if "An error occurred while calling" not in x), msgs[0] if msgs else "")
        text = m.group(1) + msg
        return j, text
    return None


def cancel_reason(run_dir: Path) -> str:
    """The reason the canceller left in the cancel marker (who cancelled), else "Cancelled."."""
    try:
        return str(json.loads((run_dir / CANCEL_NAME).read_text()).get("reason") or "Cancelled.")[:500]
    except (OSError, ValueError, AttributeError):
        return "Cancelled."


def failure_reason(log_path: Path, rc: int) -> tuple[str, str | None]:
    """(reason, detail) of a failed driver: SPARKDECK_ERROR, else the Python exception, else the last
    exception-looking line, else the exit code."""
    lines = _tail_lines(log_path)
    for i in range(len(lines) - 1, -1, -1):
        at = lines[i].find("SPARKDECK_ERROR=")
        if at >= 0:
            return lines[i][at + len("SPARKDECK_ERROR=") :].strip()[:500], "\n".join(lines[max(0, i - 8) : i + 1])
    found = _traceback_error(lines)
    if found is None:
        found = next(
            ((i, lines[i].strip()) for i in range(len(lines) - 1, -1, -1) if EXC_NAME_RE.match(lines[i])), None
        )
    if found:
        i, text = found
        return text[:500], "\n".join(lines[max(0, i - 8) : i + 3])
    tail = "\n".join(lines[-15:]) or None
    if rc > 128:
        return f"driver was killed by signal {rc - 128}", tail
    return f"driver exited with code {rc}", tail


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
        env = {**os.environ, **{k: str(v) for k, v in req.env.items()}}
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
        """Start spark-submit under workers.launcher, detached; the handle (plus `handle` keys)."""
        run_dir = req.run_dir.resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        old = self._launcher_info(run_dir)
        if old and self._launcher_alive(old.get("pid"), run_dir):
            raise BackendError("This run already has a driver running.")
        for stale in (RC_NAME, INFO_NAME, CANCEL_NAME):  # leftovers of an earlier attempt
            (run_dir / stale).unlink(missing_ok=True)
        with open(run_dir / LOG_NAME, "ab") as log:
            proc = _popen_detached(
                [sys.executable, "-m", "workers.launcher", "--run-dir", str(run_dir), "--", *argv],
                log=log,
                env=env,
            )
        return {
            "backend": self.kind,
            "run_id": req.run_id,
            "run_dir": str(run_dir),
            "launcher_pid": proc.pid,
            **handle,
            "app_id": None,
            "ui_url": None,
            "submitted": time.time(),
        }

    # -- status ----------------------------------------------------------------------------------

    @staticmethod
    def _launcher_info(run_dir: Path) -> dict:
        try:
            return json.loads((run_dir / INFO_NAME).read_text())
        except (OSError, ValueError):
            return {}

    @staticmethod
    def _launcher_alive(pid: int | None, run_dir: Path) -> bool:
        # Check the command line too: after a reboot the pid may belong to someone else.
        if not pid or not pid_alive(pid):
            return False
        cmd = cmdline(pid)
        if not cmd:
            # Just started: Popen returns once exec is under way, but the kernel sets the new
            # argv a moment later, and /proc/<pid>/cmdline reads empty until then.
            return True
        return "workers.launcher" in cmd and str(run_dir) in cmd

    def _markers(self, handle: Handle, log_path: Path) -> None:
        if not handle.get("app_id"):
            handle["app_id"] = _find_marker(log_path, "SPARKDECK_APP_ID=")
        if handle.get("app_id") and not handle.get("ui_url"):
            handle["ui_url"] = _find_marker(log_path, "SPARKDECK_UI_URL=")

    def status(self, handle: Handle) -> BackendStatus:
        run_dir = Path(handle["run_dir"])
        log_path = run_dir / LOG_NAME
        self._markers(handle, log_path)
        st = self._status(handle, run_dir, log_path)
        st.app_id, st.ui_url = handle.get("app_id"), handle.get("ui_url")
        handle["last_state"] = st.state
        return st

    def _status(self, handle: Handle, run_dir: Path, log_path: Path) -> BackendStatus:
        rc = _read_int(run_dir / RC_NAME)
        if rc is None and not self._launcher_alive(handle.get("launcher_pid"), run_dir):
            rc = _read_int(run_dir / RC_NAME)  # the launcher may have written it just before exiting
            if rc is None:
                if (run_dir / CANCEL_NAME).exists():
                    return BackendStatus("CANCELLED", reason=cancel_reason(run_dir))
                return BackendStatus(
                    "FAILED", reason="driver process vanished", detail="\n".join(_tail_lines(log_path)[-15:]) or None
                )
        if rc is not None:
            if rc == 0 and (run_dir / RESULT_NAME).exists():
                return BackendStatus("SUCCEEDED")
            if (run_dir / CANCEL_NAME).exists():
                return BackendStatus("CANCELLED", reason=cancel_reason(run_dir))
            if rc == 0:
                return BackendStatus("FAILED", reason=f"the driver exited without writing {RESULT_NAME}")
            reason, detail = failure_reason(log_path, rc)
            return BackendStatus("FAILED", reason=reason, detail=detail)

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

    def cancel(self, handle: Handle, reason: str = "") -> None:
        run_dir = Path(handle["run_dir"])
        write_atomic(run_dir / CANCEL_NAME, json.dumps({"ts": time.time(), "reason": reason}))
        self._markers(handle, run_dir / LOG_NAME)
        if handle.get("app_id"):
            self._kill_app(self._rest(handle), handle["app_id"])
        groups = []
        launcher_pid = handle.get("launcher_pid")
        if self._launcher_alive(launcher_pid, run_dir):
            groups.append(launcher_pid)  # started with start_new_session: pgid == pid
        child = self._launcher_info(run_dir).get("child_pid")
        if child and _group_in_dir(child, run_dir):
            groups.append(child)  # the driver's own group, in case the launcher is gone
        stop_groups(groups, grace=self.cancel_grace)
        if not (run_dir / RC_NAME).exists():
            write_atomic(run_dir / RC_NAME, "143\n")

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
            pass  # the signals below still end the driver, and with it the application

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


def _group_in_dir(pgid: int, run_dir: Path) -> bool:
    """Whether a live process group is this run's driver (the launcher starts it in run_dir)."""
    for pid in group_pids(pgid):
        try:
            if Path(os.readlink(f"/proc/{pid}/cwd")) == run_dir:
                return True
        except OSError:
            pass
    return False


def _popen_detached(argv: list[str], log, env: dict[str, str]) -> subprocess.Popen:
    # Own session: a Celery worker restart (which signals its process group) leaves it running.
    # cwd = repo root so `-m workers.launcher` imports; the launcher runs spark-submit in the run dir.
    return subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
