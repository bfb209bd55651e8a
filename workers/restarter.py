"""Keep the stack's long-running processes up (`make run`): a child that exits is started again, with
a growing pause, at most `max_restarts` times within `window` seconds; past that the stack stops and
says why. Each child runs in its own session (process group), so stopping one stops all it started.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from workers.localcluster import stop_groups


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    cwd: Path
    proc: subprocess.Popen | None = None
    restarts: list[float] = field(default_factory=list)  # when it was restarted
    due: float | None = None  # when a pending restart happens

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd, start_new_session=True
            )


class GaveUp(RuntimeError):
    """A child kept crashing: the stack stops."""


class Children:
    def __init__(self, say: Callable[[str], None], max_restarts: int = 5, window: float = 600.0, pause: float = 1.0):
        self.say = say
        self.max_restarts = max_restarts
        self.window = window
        self.pause = pause
        self.children: list[Child] = []

    def add(self, child: Child) -> Child:
        child.start()
        self.children.append(child)
        return child

    def check(self, now: float | None = None) -> None:
        """Restart children that exited (after their pause). Raises GaveUp when one crashed too often."""
        now = time.monotonic() if now is None else now
        for c in self.children:
            if c.due is not None:
                if now >= c.due:
                    c.due = None
                    c.restarts.append(now)
                    c.start()
                    self.say(f"{c.name} restarted (pid {c.proc.pid}; see {c.log})")
                continue
            rc = c.proc.poll()
            if rc is None:
                continue
            recent = [t for t in c.restarts if now - t < self.window]
            if len(recent) >= self.max_restarts:
                raise GaveUp(
                    f"{c.name} exited with code {rc} and was already restarted {len(recent)} times in "
                    f"{self.window:.0f} s; stopping (see {c.log})"
                )
            wait = self.pause * 2 ** len(recent)
            c.due = now + wait
            n = len(recent) + 1
            self.say(f"{c.name} exited with code {rc}; restarting it in {wait:.0f} s ({n} of {self.max_restarts})")

    def stop(self, grace: float = 10.0) -> None:
        stop_groups([c.proc.pid for c in self.children if c.proc is not None and c.proc.poll() is None], grace=grace)
