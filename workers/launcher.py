"""Run a command (spark-submit) so that its exit code survives a Celery worker restart.

    python -m workers.launcher --run-dir D -- <argv...>

- the child's stdout+stderr are appended to D/driver.log;
- D/launcher.json = {"pid": <this process>, "started": <unix ts>}, then with "child_pid" once started;
- if D/cancelled.json (the cancel mark) exists before the child is started, nothing is started and
  driver.rc is 143: a cancel that arrives before spark-submit wins;
- when the child exits, D/driver.rc holds its exit code (128+N for a signal), written atomically;
- then, if the environment names one (workers.notify.ENV), a reconcile task is published so the
  run's end is seen now rather than at the next beat tick;
- SIGTERM/SIGINT are forwarded to the child's process group (spark-submit's JVM and the Python
  driver it starts), so a cancel reaches every process of the driver.

The caller starts this detached (own session); the child gets its own process group so that
forwarding a signal to it never hits the launcher itself.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from workers import notify

LOG_NAME = "driver.log"
RC_NAME = "driver.rc"
INFO_NAME = "launcher.json"
CANCEL_NAME = "cancelled.json"


def write_atomic(path: Path, text: str) -> None:
    """Readers never see a half-written file: write a temp file, fsync, rename over."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def exit_code(returncode: int) -> int:
    # Popen reports "killed by signal N" as -N; store it the way a shell would.
    return 128 - returncode if returncode < 0 else returncode


def _note(log, msg: str) -> None:
    log.write(f"[launcher {time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}\n")
    log.flush()


def run(run_dir: Path, argv: list[str]) -> int:
    run_dir.mkdir(parents=True, exist_ok=True)
    # buffering=1: line-buffered for our own notes; the child writes to the fd directly.
    log = open(run_dir / LOG_NAME, "a", buffering=1)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    notify_spec = env.pop(notify.ENV, "")  # for this process only, not for spark-submit
    _note(log, f"starting: {argv!r}")
    # Handlers go in before the child exists so an early SIGTERM cannot kill the launcher alone
    # (which would orphan the child); such a signal is delivered once the child is started.
    state: dict = {"child": None, "pending": []}

    def forward(signum, _frame=None):
        child = state["child"]
        if child is None:
            state["pending"].append(signum)
            return
        _note(log, f"got signal {signum}, forwarding to process group {child.pid}")
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    info = {"pid": os.getpid(), "started": time.time()}
    write_atomic(run_dir / INFO_NAME, json.dumps(info))
    if (run_dir / CANCEL_NAME).exists():
        _note(log, "the run was cancelled before its driver started; not starting it")
        write_atomic(run_dir / RC_NAME, "143\n")
        log.close()
        return 143
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=run_dir,
            env=env,
            process_group=0,
        )
    except OSError as exc:
        _note(log, f"could not start: {exc}")
        write_atomic(run_dir / RC_NAME, "127\n")
        return 127
    state["child"] = child
    for signum in state["pending"]:
        forward(signum)
    info.update(child_pid=child.pid, argv=argv)
    write_atomic(run_dir / INFO_NAME, json.dumps(info))

    rc = exit_code(child.wait())  # wait() retries on EINTR, so forwarded signals are fine
    _note(log, f"exit code {rc}")
    write_atomic(run_dir / RC_NAME, f"{rc}\n")
    if notify_spec:
        try:
            _note(log, f"told the worker: task {notify.send(notify_spec)}")
        except Exception as exc:  # noqa: BLE001 - the beat's reconcile still sees the end
            _note(log, f"could not notify the worker ({exc!r}); the next reconcile tick will see the end")
    log.close()
    return rc


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.launcher")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    ns = parser.parse_args(args)
    argv = ns.argv[1:] if ns.argv[:1] == ["--"] else ns.argv
    if not argv:
        parser.error("no command given after --")
    return run(ns.run_dir.resolve(), argv)


if __name__ == "__main__":
    sys.exit(main())
