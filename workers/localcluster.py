"""Start/stop a loopback Spark standalone cluster from pip pyspark's own jars.

pip's pyspark ships bin/spark-class but no sbin/start-*.sh, so the master and worker daemons are
started directly. Everything binds to 127.0.0.1. State lives in <state_dir>:
cluster.json (pids, ports), logs/<daemon>.log, work-<i>/ (worker work dirs: executor logs), events/
(the default event log directory). With a history port, a Spark History Server reads that directory.

    python -m workers.localcluster start|stop|status --state-dir var/spark [--history-port 18080] [--foreground]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
GPU_DISCOVERY_SCRIPT = Path(__file__).resolve().parent / "gpu" / "discover_gpus.sh"
# Read by workers/gpu/discover_gpus.sh: the GPU indices one worker may report (see _env).
GPU_SLICE_ENV = "SPARKDECK_GPU_ADDRESSES"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
HISTORY_CLASS = "org.apache.spark.deploy.history.HistoryServer"
# How often the History Server looks for new and finished event logs (Spark's default: 10 s).
HISTORY_UPDATE_INTERVAL = "2s"
STATE_FILE = "cluster.json"


class ClusterError(RuntimeError):
    pass


def spark_home() -> Path:
    """The pyspark package dir is a complete SPARK_HOME (bin/, jars/)."""
    spec = importlib.util.find_spec("pyspark")  # no import: pyspark is slow to import
    if spec and spec.submodule_search_locations:
        home = Path(list(spec.submodule_search_locations)[0])
        if (home / "bin" / "spark-class").exists():
            return home
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home())


def port_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Like the JVM's servers: TIME_WAIT leftovers of a just-stopped cluster don't count as taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """A port the OS says is free now (tests and benches pick cluster ports with it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_port_block(count: int, host: str = HOST, tries: int = 50) -> int:
    """A port p with p .. p+count-1 all free now: a cluster's web UI port is followed by its workers'
    UI ports (webui_port + 1 + i), so a plain free_port() may collide with a neighbour."""
    for _ in range(tries):
        base = free_port(host)
        if base + count < 65536 and all(port_free(base + i, host) for i in range(count)):
            return base
    raise ClusterError(f"no block of {count} free ports found on {host}")


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces: split after its closing parenthesis.
    return raw[raw.rindex(")") + 2 :].split()


def pid_alive(pid: int) -> bool:
    """True if pid runs and is not a zombie (an unreaped child counts as dead)."""
    fields = _proc_stat(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


def group_pids(pgid: int) -> list[int]:
    """Live processes in a process group (scans /proc; catches daemons' own children)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stop_groups(pgids: list[int], grace: float = 10.0) -> None:
    """SIGTERM each process group, then SIGKILL whatever is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        live = [g for g in pgids if group_pids(g)]
        for g in live:
            try:
                os.killpg(g, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while live and time.monotonic() < deadline:
            time.sleep(0.2)
            live = [g for g in live if group_pids(g)]
        if not live:
            return


def tail(path: Path, lines: int = 20) -> str:
    """Last lines of a daemon log, without Java stack frames (they bury the message)."""
    try:
        text = path.read_text(errors="replace").splitlines()
        return "\n".join([x for x in text if not x.lstrip().startswith("at ")][-lines:])
    except OSError:
        return ""


def local_gpu_settings(environ=None) -> tuple[int, str]:
    """(GPUs per worker, discovery script) for `make run`'s cluster, from SPARKDECK_LOCAL_GPUS
    (default 0) and SPARKDECK_LOCAL_GPU_SCRIPT (default workers/gpu/discover_gpus.sh)."""
    env = os.environ if environ is None else environ
    raw = (env.get("SPARKDECK_LOCAL_GPUS") or "0").strip()
    try:
        gpus = int(raw)
    except ValueError:
        gpus = -1
    if gpus < 0:
        raise ClusterError(f"SPARKDECK_LOCAL_GPUS must be a number of GPUs per worker (0 or more), not {raw!r}")
    if not gpus:
        return 0, ""
    script = Path(env.get("SPARKDECK_LOCAL_GPU_SCRIPT") or GPU_DISCOVERY_SCRIPT).resolve()
    _check_script(script)
    return gpus, str(script)


def _check_script(script: Path) -> None:
    # Spark would only say so in the worker's log, after the worker died.
    if not script.is_file() or not os.access(script, os.X_OK):
        raise ClusterError(f"GPU discovery script {script} is missing or not executable")


class LocalCluster:
    def __init__(
        self,
        state_dir: str | Path,
        master_port: int = 7077,
        webui_port: int = 8080,
        workers: int = 2,
        worker_cores: int = 1,
        worker_memory: str = "4g",
        gpus_per_worker: int = 0,
        gpu_discovery_script: str | Path | None = None,
        recovery: bool = False,
        history_port: int | None = None,
        event_log_dir: str | Path | None = None,
    ):
        self.state_dir = Path(state_dir).resolve()
        self.history_port = history_port
        # Where runs' event logs go (spark.eventLog.dir) and the History Server reads them from.
        self.event_log_dir = Path(event_log_dir).resolve() if event_log_dir else self.state_dir / "events"
        self.recovery = recovery
        self.master_port = master_port
        self.webui_port = webui_port
        self.workers = workers
        self.worker_cores = worker_cores
        self.worker_memory = worker_memory
        self.gpus_per_worker = gpus_per_worker
        self.gpu_discovery_script = gpu_discovery_script
        if gpus_per_worker and not gpu_discovery_script:
            raise ClusterError("gpus_per_worker needs gpu_discovery_script")
        self._procs: dict[str, subprocess.Popen] = {}  # name -> daemon started by this process (to reap)

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    @property
    def rest_url(self) -> str:
        """The master web UI; <rest_url>/json/ is the cluster state, /app/kill/ kills an app."""
        return f"http://{HOST}:{self.webui_port}"

    @property
    def history_url(self) -> str | None:
        """The History Server's web UI (REST API at <history_url>/api/v1/), if it has a port."""
        return f"http://{HOST}:{self.history_port}" if self.history_port else None

    @property
    def work_dirs(self) -> list[Path]:
        """Each worker's --work-dir: executor logs land in <dir>/<app id>/<executor id>/."""
        return [self.state_dir / f"work-{i}" for i in range(1, self.workers + 1)]

    @property
    def recovery_dir(self) -> Path:
        """The master's recovery state (its workers and applications), kept across a master restart."""
        return self.state_dir / "recovery"

    @property
    def worker_ui_ports(self) -> list[int]:
        return [self.webui_port + 1 + i for i in range(self.workers)]

    # -- state file: lets `stop` from another process find the daemons --------------------------

    @property
    def _state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    def _read_state(self) -> dict:
        try:
            return json.loads(self._state_path.read_text())
        except (OSError, ValueError):
            return {}

    def _write_state(self, daemons: list[dict]) -> None:
        state = {
            "master_url": self.master_url,
            "rest_url": self.rest_url,
            "master_port": self.master_port,
            "webui_port": self.webui_port,
            "history_url": self.history_url,
            "daemons": daemons,
        }
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self._state_path)

    def _live_daemons(self) -> list[dict]:
        # A pid is only ours if it still runs a Spark daemon (guards against pid reuse).
        return [
            d for d in self._read_state().get("daemons", []) if pid_alive(d["pid"]) and d["cls"] in cmdline(d["pid"])
        ]

    # -- lifecycle -------------------------------------------------------------------------------

    def _env(self, worker: int | None = None) -> dict[str, str]:
        """The daemons' environment; `worker` (1-based) for a worker's."""
        env = dict(os.environ)
        env.update(SPARK_HOME=str(spark_home()), SPARK_LOCAL_IP=HOST)
        env.pop("SPARK_CONF_DIR", None)  # never pick up someone else's spark-env.sh
        # Fail rather than drift to port+1 when a port is taken between our check and the bind.
        env["SPARK_DAEMON_JAVA_OPTS"] = (env.get("SPARK_DAEMON_JAVA_OPTS", "") + " -Dspark.port.maxRetries=0").strip()
        # The master's REST submission server (cluster deploy mode) would grab port 6066 (or the next
        # free one): unused here, and a second cluster on the machine would collide with it.
        master_opts = " -Dspark.master.rest.enabled=false"
        if self.recovery:
            # A master that is restarted reads back the workers and applications it had and lets
            # them run on; without it, it tells re-registering workers to kill every executor.
            # Off by default: a restarted master once stayed RECOVERING past 60 s, waiting for an
            # application whose endpoint refused the connection (docs/clusters.md).
            master_opts += " -Dspark.deploy.recoveryMode=FILESYSTEM"
            master_opts += f" -Dspark.deploy.recoveryDirectory={self.recovery_dir}"
        env["SPARK_MASTER_OPTS"] = (env.get("SPARK_MASTER_OPTS", "") + master_opts).strip()
        if self.gpus_per_worker:
            opts = (
                f"-Dspark.worker.resource.gpu.amount={self.gpus_per_worker} "
                f"-Dspark.worker.resource.gpu.discoveryScript={Path(self.gpu_discovery_script).resolve()}"
            )
            env["SPARK_WORKER_OPTS"] = (env.get("SPARK_WORKER_OPTS", "") + " " + opts).strip()
            if worker:
                # All workers run on this host and would each report every GPU, so two executors
                # could get the same one: worker i may only report GPUs (i-1)*n .. i*n-1. A fake
                # script may ignore this; a machine with fewer GPUs makes that worker fail to start.
                first = (worker - 1) * self.gpus_per_worker
                env[GPU_SLICE_ENV] = ",".join(str(g) for g in range(first, first + self.gpus_per_worker))
        return env

    def _spawn(
        self,
        name: str,
        cls: str,
        args: list[str],
        daemons: list[dict],
        worker: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        argv = [str(spark_home() / "bin" / "spark-class"), cls, *args]
        log_path = self.state_dir / "logs" / f"{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env or self._env(worker),
                cwd=self.state_dir,
                start_new_session=True,  # own process group: stop() kills the daemon's children too
            )
        self._procs[name] = proc
        daemons.append({"name": name, "cls": cls, "pid": proc.pid, "log": str(log_path)})
        self._write_state(daemons)

    # -- the History Server -------------------------------------------------------------------------

    def history_command(self) -> tuple[list[str], dict[str, str]]:
        """(argv, env) of a History Server on history_port that shows the applications whose event logs
        are in event_log_dir. start() runs it as a daemon of this cluster; `make run` runs the same
        command as a child it restarts when it dies (webapp/ops/management/commands/run_stack.py)."""
        if not self.history_port:
            raise ClusterError("this cluster has no history port")
        env = self._env()
        # The History Server reads its settings from SPARK_HISTORY_OPTS (and SPARK_DAEMON_JAVA_OPTS).
        opts = (
            f"-Dspark.history.fs.logDirectory={self.event_log_dir.as_uri()}"
            f" -Dspark.history.ui.port={self.history_port}"
            f" -Dspark.history.fs.update.interval={HISTORY_UPDATE_INTERVAL}"
        )
        env["SPARK_HISTORY_OPTS"] = (env.get("SPARK_HISTORY_OPTS", "") + " " + opts).strip()
        return [str(spark_home() / "bin" / "spark-class"), HISTORY_CLASS], env

    def prepare_history(self) -> None:
        """Create the event log directory: a History Server whose directory is missing exits at start."""
        self.event_log_dir.mkdir(parents=True, exist_ok=True)

    def start_history(self, timeout: float = 60) -> None:
        """Start the History Server alone (start() starts it with the cluster unless told not to)."""
        if any(d["cls"] == HISTORY_CLASS for d in self._live_daemons()):
            raise ClusterError(f"the History Server of {self.state_dir} is already running")
        if not port_free(self.history_port):
            raise ClusterError(f"port {self.history_port} on {HOST} already in use; pick another history port")
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._spawn_history(self._live_daemons(), time.monotonic() + timeout)

    def _spawn_history(self, daemons: list[dict], deadline: float) -> None:
        self.prepare_history()
        argv, env = self.history_command()
        self._spawn("history", argv[1], argv[2:], daemons, env=env)
        self._wait(lambda: port_open(self.history_port), deadline, "the History Server to listen")

    def master_state(self, timeout: float = 2.0) -> dict:
        # The state file knows the ports a running cluster was started with (`status` may not).
        url = self._read_state().get("rest_url") or self.rest_url
        with urllib.request.urlopen(f"{url}/json/", timeout=timeout) as resp:
            return json.load(resp)

    def alive_workers(self) -> int:
        try:
            state = self.master_state()
        except (OSError, ValueError):
            return 0
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")

    def daemons(self) -> list[dict]:
        """Live daemons of this state dir: [{"name", "cls", "pid", "log"}] (pid == process group)."""
        return self._live_daemons()

    def is_running(self) -> bool:
        return bool(self._live_daemons())

    def start(self, timeout: float = 60, history: bool = True) -> None:
        """Start the master and workers, and the History Server if the cluster has a history port
        (unless `history` is false: the caller runs history_command() itself, or later)."""
        if self.is_running():
            raise ClusterError(f"a cluster from {self.state_dir} is already running (stop it first)")
        history = history and bool(self.history_port)
        ports = [self.master_port, self.webui_port, *self.worker_ui_ports, *([self.history_port] if history else [])]
        taken = [p for p in ports if not port_free(p)]
        if taken:
            raise ClusterError(f"port(s) {taken} on {HOST} already in use; pick other ports")
        if self.gpus_per_worker:
            _check_script(Path(self.gpu_discovery_script).resolve())
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        # A new cluster: what an earlier one's master had is gone (recovering it would only wait for
        # the dead workers and drivers to time out).
        shutil.rmtree(self.recovery_dir, ignore_errors=True)
        self.recovery_dir.mkdir()
        deadline = time.monotonic() + timeout
        daemons: list[dict] = []
        try:
            self._spawn_master(daemons, deadline)
            pairs = zip(self.work_dirs, self.worker_ui_ports, strict=True)
            for i, (work_dir, ui_port) in enumerate(pairs, start=1):
                work_dir.mkdir(exist_ok=True)
                args = [self.master_url, "--host", HOST, "--cores", str(self.worker_cores)]
                args += ["--memory", self.worker_memory, "--work-dir", str(work_dir)]
                self._spawn(f"worker-{i}", WORKER_CLASS, [*args, "--webui-port", str(ui_port)], daemons, worker=i)
            if history:
                self._spawn_history(daemons, deadline)
            self._wait(lambda: self.alive_workers() >= self.workers, deadline, "workers to be ALIVE")
        except BaseException as exc:
            # Show the logs of the daemons that died, or of all when none did (a timeout).
            dead = self.exited()
            shown = [d for d in daemons if d["name"] in dead] or daemons
            logs = "\n".join(f"--- {d['name']} ({d['log']}) ---\n{tail(Path(d['log']), 12)}" for d in shown)
            self.stop()
            if isinstance(exc, ClusterError):
                raise ClusterError(f"{exc}\n{logs}") from None
            raise

    def _spawn_master(self, daemons: list[dict], deadline: float) -> None:
        args = ["--host", HOST, "--port", str(self.master_port), "--webui-port", str(self.webui_port)]
        self._spawn("master", MASTER_CLASS, args, daemons)
        # Workers that find no master back off for 5-15 s; start them once it listens.
        self._wait(lambda: port_open(self.master_port), deadline, "master to listen")

    def stop_master(self) -> None:
        """Kill the master (SIGKILL, its whole group) and leave the workers and applications running,
        as a master host that crashed would: the workers keep trying to re-register."""
        master = [d for d in self._read_state().get("daemons", []) if d["cls"] == MASTER_CLASS]
        for d in master:
            if any(MASTER_CLASS in cmdline(pid) for pid in group_pids(d["pid"])):
                os.killpg(d["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(group_pids(d["pid"]) for d in master) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc = self._procs.pop("master", None)
        if proc:
            proc.wait(timeout=5)
        self._write_state([d for d in self._live_daemons() if d["cls"] != MASTER_CLASS])

    def start_master(self, timeout: float = 60) -> None:
        """Start the master again on its own ports (after stop_master). In recovery mode it takes
        back the workers and applications it had, and is ALIVE once they answered; without (the
        default), it knows none of them."""
        if any(d["cls"] == MASTER_CLASS for d in self._live_daemons()):
            raise ClusterError(f"the master of {self.state_dir} is already running")
        self._wait(
            lambda: port_free(self.master_port) and port_free(self.webui_port),
            time.monotonic() + 10,
            "the master's ports to be free",
        )
        deadline = time.monotonic() + timeout
        self._spawn_master(self._live_daemons(), deadline)
        self._wait(self._master_answers, deadline, "the master's web UI")

    def _master_answers(self) -> bool:
        try:
            return self.master_state().get("status") == "ALIVE"
        except (OSError, ValueError):
            return False

    def exited(self) -> dict[str, int]:
        """Daemons started by this process that have exited: {name: exit code}."""
        return {n: p.returncode for n, p in self._procs.items() if p.poll() is not None}

    def _wait(self, ready, deadline: float, what: str) -> None:
        while not ready():
            dead = self.exited()
            if dead:
                names = ", ".join(f"{n} (rc {rc})" for n, rc in dead.items())
                raise ClusterError(f"Spark {names} exited while waiting for {what}")
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}")
            time.sleep(0.3)

    def stop(self, grace: float = 10.0) -> None:
        # By process group, not by daemon pid: a worker that died may have left executors behind.
        groups = [
            d["pid"]
            for d in self._read_state().get("daemons", [])
            if any("spark" in cmdline(pid) for pid in group_pids(d["pid"]))
        ]
        stop_groups(groups, grace)
        for proc in self._procs.values():  # reap, so no zombies stay behind in this process
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._procs.clear()
        self._state_path.unlink(missing_ok=True)

    def describe(self) -> str:
        daemons = self._live_daemons()
        if not daemons:
            return f"not running ({self.state_dir})"
        names = ", ".join(f"{d['name']}={d['pid']}" for d in daemons)
        state = self._read_state()
        urls = f"master {state.get('master_url')}, UI {state.get('rest_url')}"
        if any(d["cls"] == HISTORY_CLASS for d in daemons):
            urls += f", History Server {state.get('history_url')}"
        return f"running: {names}; {self.alive_workers()} worker(s) ALIVE; {urls}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workers.localcluster")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--state-dir", default="var/spark")
    p.add_argument("--master-port", type=int, default=7077)
    p.add_argument("--webui-port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--worker-cores", type=int, default=1)
    p.add_argument("--worker-memory", default="4g")
    p.add_argument("--gpus-per-worker", type=int, default=0)
    p.add_argument("--gpu-discovery-script")
    p.add_argument("--history-port", type=int, help="also start a History Server on this port")
    p.add_argument("--event-log-dir", help="the History Server's event log directory (default <state-dir>/events)")
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--foreground", action="store_true", help="start, then stop everything on SIGINT/SIGTERM")
    a = p.parse_args(argv)
    cluster = LocalCluster(
        a.state_dir,
        master_port=a.master_port,
        webui_port=a.webui_port,
        workers=a.workers,
        worker_cores=a.worker_cores,
        worker_memory=a.worker_memory,
        gpus_per_worker=a.gpus_per_worker,
        gpu_discovery_script=a.gpu_discovery_script,
        history_port=a.history_port,
        event_log_dir=a.event_log_dir,
    )
    if a.action == "status":
        print(cluster.describe())
        return 0 if cluster.is_running() else 3
    if a.action == "stop":
        cluster.stop()
        print("stopped")
        return 0
    try:
        cluster.start(timeout=a.timeout)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    history = f", History Server {cluster.history_url} ({cluster.event_log_dir})" if cluster.history_port else ""
    print(
        f"Spark master {cluster.master_url}, UI {cluster.rest_url}{history}, logs {cluster.state_dir / 'logs'}",
        flush=True,
    )
    if not a.foreground:
        return 0
    return _foreground(cluster)


def _foreground(cluster: LocalCluster) -> int:
    stopping = []

    def on_signal(signum, _frame):
        stopping.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    rc = 0
    while not stopping:
        dead = cluster.exited()
        if dead:  # a daemon died: don't pretend the cluster is up
            print(f"error: Spark {', '.join(dead)} exited; stopping the cluster", file=sys.stderr)
            rc = 1
            break
        time.sleep(1)
    cluster.stop()
    print("Spark cluster stopped", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
