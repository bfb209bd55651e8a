"""Driver supervision, shared by every backend: start a driver under workers.launcher, tell whether it
still runs, stop it, and read its outcome from the run dir.

A driver (spark-submit in client mode and the Python driver it starts) is a process tree on ONE host:
the host whose Celery worker launched it. Its handle records that host (``handle["host"]``, the
worker's node name). Only that host can see or signal the processes, so:

- ``probe_local`` / ``stop_local`` must run there (the Celery tasks routed to ``host_queue(host)``);
- anyone else judges liveness by ``driver_state``: the exit code file (``driver.rc``, on the shared
  run dir) when there is one, else the last answer the owning host recorded. A host that stopped
  answering is reported as such ("host silent"), never as a vanished driver.

The run dir holds the launcher's files (see workers/launcher.py) and the cancel mark, which the
launcher checks before it starts spark-submit: a cancel that arrives before the launch is honoured.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from workers import diagnose
from workers.launcher import CANCEL_NAME, INFO_NAME, LOG_NAME, RC_NAME, write_atomic
from workers.localcluster import cmdline, group_pids, pid_alive, stop_groups

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT_NAME = "result.json"
HANDLE_NAME = "handle.json"  # the handle as launched, written before the launcher starts (adopt())
NODE_ENV = "SPARKDECK_NODE_NAME"

# Driver states, as seen from any host.
RUNNING = "running"  # the owning host saw the launcher alive
EXITED = "exited"  # driver.rc exists: the launcher recorded the exit code
GONE = "gone"  # the owning host saw no launcher and there is no exit code
SILENT = "silent"  # the owning host has not answered lately: its state is unknown


# What a driver's process tree may inherit from the worker's environment: the toolchain (Java, Spark,
# Hadoop/YARN client config, Kerberos, CUDA), locale and temp dirs. Never the web app's secrets
# (DJANGO_SECRET_KEY, DATABASE_URL, CELERY_BROKER_URL, EMAIL_HOST_PASSWORD, ...): the driver runs user
# templates and its environment is visible to the cluster.
CHILD_ENV_NAMES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
     "LD_LIBRARY_PATH", "HOSTNAME", "VIRTUAL_ENV", "PYTHONHASHSEED"}
)  # fmt: skip
CHILD_ENV_PREFIXES = ("LC_", "JAVA_", "SPARK_", "PYSPARK_", "HADOOP_", "YARN_", "KRB5", "CUDA_", "NVIDIA_")


def child_env(extra: dict[str, str] | None = None, environ=None) -> dict[str, str]:
    """The environment for a driver (spark-submit and what it starts): the allow-listed part of this
    process's environment, plus `extra`."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if k in CHILD_ENV_NAMES or k.startswith(CHILD_ENV_PREFIXES)}
    env.update(extra or {})
    return env


def node_name() -> str:
    """This host's name for driver supervision: SPARKDECK_NODE_NAME, else the host name. Two Celery
    workers that cannot see each other's processes must have different names."""
    return os.environ.get(NODE_ENV, "").strip() or socket.gethostname()


def host_queue(node: str) -> str:
    """The Celery queue only the workers of `node` consume: operations on its driver processes."""
    return f"host.{node}"


@dataclass
class DriverState:
    state: str  # RUNNING | EXITED | GONE | SILENT
    host: str = ""
    rc: int | None = None
    seen_at: float | None = None  # when the owning host last answered (SILENT: since then)

    @property
    def alive(self) -> bool:
        """Whether the driver may still be running (a silent host's driver is not known to be dead)."""
        return self.state in (RUNNING, SILENT)


# -- run dir files -----------------------------------------------------------------------------------


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def tail_lines(path: Path, max_bytes: int = 256 * 1024) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            return f.read().decode(errors="replace").splitlines()
    except OSError:
        return []


def find_marker(path: Path, prefix: str) -> str | None:
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


def mark_cancelled(run_dir: Path, reason: str) -> None:
    """The cancel mark: the launcher will not start spark-submit, and status() reports CANCELLED."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / CANCEL_NAME, json.dumps({"ts": time.time(), "reason": reason}))


def is_cancelled(run_dir: Path) -> bool:
    return (run_dir / CANCEL_NAME).exists()


def cancel_reason(run_dir: Path) -> str:
    """The reason the canceller left in the cancel mark (who cancelled), else "Cancelled."."""
    try:
        return str(json.loads((run_dir / CANCEL_NAME).read_text()).get("reason") or "Cancelled.")[:500]
    except (OSError, ValueError, AttributeError):
        return "Cancelled."


def failure_reason(log_path: Path, rc: int) -> tuple[str, str | None]:
    """(reason, detail) of a failed driver, read from the tail of its log (workers/diagnose.py)."""
    return diagnose.failure_reason(tail_lines(log_path), rc)


def vanished_detail(run_dir: Path) -> str | None:
    return "\n".join(tail_lines(run_dir / LOG_NAME)[-15:]) or None


# -- the driver's processes (on its own host) ----------------------------------------------------------


def launcher_info(run_dir: Path) -> dict:
    return read_json(run_dir / INFO_NAME)


def launcher_alive(pid: int | None, run_dir: Path) -> bool:
    # Check the command line too: after a reboot the pid may belong to someone else.
    if not pid or not pid_alive(pid):
        return False
    cmd = cmdline(pid)
    if not cmd:
        # Just started: Popen returns once exec is under way, but the kernel sets the new
        # argv a moment later, and /proc/<pid>/cmdline reads empty until then.
        return True
    return "workers.launcher" in cmd and str(run_dir) in cmd


def _group_in_dir(pgid: int, run_dir: Path) -> bool:
    """Whether a live process group is this run's driver (the launcher starts it in run_dir)."""
    for pid in group_pids(pgid):
        try:
            if Path(os.readlink(f"/proc/{pid}/cwd")) == run_dir:
                return True
        except OSError:
            pass
    return False


class AlreadyRunning(RuntimeError):
    """The run dir's launcher is still alive: a second driver must not start."""


def launch(run_dir: Path, argv: list[str], env: dict[str, str], handle: dict) -> dict:
    """Start `argv` under workers.launcher, detached from the caller (own session, so a Celery worker
    restart leaves it running). Returns `handle` plus the supervision keys: host, run dir, launcher pid.

    The handle is also written to the run dir before the launcher starts, so a worker killed right
    after the launch leaves what adopt() needs to take the driver over."""
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    old = launcher_info(run_dir)
    if old and launcher_alive(old.get("pid"), run_dir):
        raise AlreadyRunning("This run already has a driver running.")
    for stale in (RC_NAME, INFO_NAME, HANDLE_NAME):  # an earlier attempt's; never the cancel mark
        (run_dir / stale).unlink(missing_ok=True)
    handle = {**handle, "host": node_name(), "run_dir": str(run_dir), "launched": time.time()}
    write_atomic(run_dir / HANDLE_NAME, json.dumps(handle))
    with open(run_dir / LOG_NAME, "ab") as log:
        # cwd = repo root so `-m workers.launcher` imports; the launcher runs spark-submit in the run dir.
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.launcher", "--run-dir", str(run_dir), "--", *argv],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return {**handle, "launcher_pid": proc.pid}


def adopt(run_dir: Path) -> dict | None:
    """The handle of a driver launched in `run_dir` whose launching worker died before it could
    record the handle: handle.json plus the launcher's pid. None if no launcher ever ran there."""
    handle, info = read_json(run_dir / HANDLE_NAME), launcher_info(run_dir)
    if not handle or not info.get("pid"):
        return None
    return {**handle, "launcher_pid": info["pid"]}


def probe_local(handle: dict) -> DriverState:
    """The driver's state as this host sees it: call only on the driver's own host."""
    run_dir = Path(handle["run_dir"])
    host = handle.get("host") or node_name()
    rc = read_int(run_dir / RC_NAME)
    if rc is not None:
        return DriverState(EXITED, host=host, rc=rc, seen_at=time.time())
    if launcher_alive(handle.get("launcher_pid"), run_dir):
        return DriverState(RUNNING, host=host, seen_at=time.time())
    rc = read_int(run_dir / RC_NAME)  # the launcher may have written it just before exiting
    return DriverState(GONE if rc is None else EXITED, host=host, rc=rc, seen_at=time.time())


def stop_local(handle: dict, grace: float = 10.0) -> None:
    """SIGTERM the launcher's and the driver's process groups, SIGKILL what is left after `grace`;
    then make sure driver.rc exists. Idempotent. Call only on the driver's own host."""
    run_dir = Path(handle["run_dir"])
    groups = []
    launcher_pid = handle.get("launcher_pid")
    if launcher_alive(launcher_pid, run_dir):
        groups.append(launcher_pid)  # started with start_new_session: pgid == pid
    info = launcher_info(run_dir)
    # Only this handle's own launcher's child: a later attempt's launcher may have rewritten the file.
    child = info.get("child_pid") if info.get("pid") in (None, launcher_pid) else None
    if child and _group_in_dir(child, run_dir):
        groups.append(child)  # the driver's own group, in case the launcher is gone
    stop_groups(groups, grace=grace)
    if not (run_dir / RC_NAME).exists():
        write_atomic(run_dir / RC_NAME, "143\n")


def driver_state(handle: dict, seen: dict | None = None, silent_after: float = 30.0, now: float | None = None):
    """The driver's state from anywhere. `seen` is the owning host's last answer, as recorded by
    the caller: {"state": RUNNING|GONE|EXITED, "at": unix time}. On the owning host itself the
    processes are probed directly."""
    run_dir = Path(handle["run_dir"])
    host = handle.get("host") or ""
    rc = read_int(run_dir / RC_NAME)
    if rc is not None:
        return DriverState(EXITED, host=host, rc=rc)
    if not host or host == node_name():
        return probe_local(handle)
    now = time.time() if now is None else now
    seen = seen or {}
    at = float(seen.get("at") or handle.get("launched") or handle.get("submitted") or now)
    if seen.get("state") in (RUNNING, GONE) and now - at <= silent_after:
        return DriverState(seen["state"], host=host, seen_at=at)
    if not seen and now - at <= silent_after:
        return DriverState(RUNNING, host=host, seen_at=at)  # just launched there; its first answer is on the way
    return DriverState(SILENT, host=host, seen_at=at)
