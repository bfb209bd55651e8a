"""Class-data-sharing (AppCDS) archives for a run's short-lived JVMs: the driver (spark-submit's)
and, when they run on this host, the executors.

A run's JVMs spend most of their start loading Spark's ~7,600 classes from the jars. A dynamic CDS
archive (JDK 13+) maps them instead: a local-mode SparkContext came up in 1.9-2.4 s instead of
3.0-3.3 s, and spark-submit of a small app took 6.2-6.7 s instead of 8.8-9.0 s on a 2-core machine.

The archives are learned from real runs, never from a separate warm-up application (which would
take the cluster's cores from users' runs): while no archive exists, one run's JVMs also get
``-XX:ArchiveClassesAtExit`` and write one when they exit (the driver's adds ~1.5 s to that run's
end; the executors' happens after the application ended). Each dump gets its own file (Spark fills
in ``{{APP_ID}}``/``{{EXECUTOR_ID}}`` in executor options) and a JVM log; the next submission
promotes a dump only once its log says it was written completely. A truncated archive would crash
every JVM that maps it (SIGBUS), where a missing or mismatched one only costs the speed-up: the JVM
warns (mismatch) or says nothing (missing) and loads classes from the jars.

Archives are kept per JDK and Spark install (the fingerprint below): a new pyspark or JDK starts
learning again. Django-free: the Celery task passes the directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

ROLES = ("driver", "executor")
MARKER = b"Written dynamic archive"  # the JVM's last log line once the archive is on disk
CLAIM_TTL = 15 * 60.0  # a learning run that died without a complete dump frees its claim after this
PART = ".jsa.part"


def java_home() -> Path | None:
    """The JDK spark-class runs: $JAVA_HOME, else the `java` on PATH."""
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    java = shutil.which("java")
    return Path(java).resolve().parent.parent if java else None


def fingerprint(spark_home: Path, jdk: Path | None = None) -> str | None:
    """A short key for this JDK build and Spark install; None where either cannot be read."""
    jdk = jdk or java_home()
    jars = Path(spark_home) / "jars"
    if jdk is None or not jars.is_dir():
        return None
    h = hashlib.sha1()
    h.update(str(jdk.resolve()).encode())
    release = jdk / "release"
    h.update(release.read_bytes() if release.exists() else b"")
    for jar in sorted(jars.iterdir()):
        h.update(f"{jar.name}:{jar.stat().st_size};".encode())
    return h.hexdigest()[:16]


def _use(archive: Path) -> str:
    return f"-XX:SharedArchiveFile={archive}"


def _learn(part: Path) -> str:
    # The dump's warnings (hundreds of "Pre JDK 6 class not supported by CDS" for old classes in the
    # jars) go to the dump's own log with its completion line, not to the run's driver/executor log.
    log = part.with_name(part.name + ".log")
    return f"-XX:ArchiveClassesAtExit={part} -Xlog:cds*=off -Xlog:cds*=warning,cds+dynamic=info:file={log}"


def _claim(directory: Path, role: str, now: float) -> bool:
    """One learning run per role at a time; a claim older than CLAIM_TTL is taken over."""
    claim = directory / f"{role}.learning"
    if claim.exists():
        if now - claim.stat().st_mtime < CLAIM_TTL:
            return False
        claim.unlink(missing_ok=True)  # stale: its run died without a complete dump
    try:
        fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False  # another submission claimed it just now
    os.close(fd)
    return True


def promote(directory: Path, now: float | None = None) -> None:
    """Make each role's first completely written dump its archive; drop the rest once stale."""
    now = time.time() if now is None else now
    for role in ROLES:
        final = directory / f"{role}.jsa"
        for part in sorted(directory.glob(f"{role}-*{PART}")):
            log = part.with_name(part.name + ".log")
            try:
                complete = MARKER in log.read_bytes()
            except FileNotFoundError:
                complete = False
            if complete and not final.exists():
                os.replace(part, final)  # atomic: a JVM never maps a half-moved file
                (directory / f"{role}.learning").unlink(missing_ok=True)
            elif complete or now - part.stat().st_mtime > CLAIM_TTL:
                part.unlink(missing_ok=True)  # a spare complete dump, or one a killed JVM left behind
            else:
                continue  # still being written, or its JVM is still running
            log.unlink(missing_ok=True)
        for log in directory.glob(f"{role}-*{PART}.log"):  # a JVM that never got to dump (cancelled run)
            if not log.with_suffix("").exists() and now - log.stat().st_mtime > CLAIM_TTL:
                log.unlink(missing_ok=True)


def java_opts(root: Path, spark_home: Path, run_id: int | str, executors_here: bool) -> dict[str, str]:
    """{"driver": opts, "executor": opts} for one run: use an archive where one exists, else learn
    one (if no other run is learning it). Executors only where they run on this host, which is the
    only place their dump (and later the archive) can be read. Never raises: no archive, no options."""
    try:
        key = fingerprint(spark_home)
        if key is None:
            return {}
        directory = Path(root) / key
        directory.mkdir(parents=True, exist_ok=True)
        promote(directory)
        now = time.time()
        opts = {}
        for role in ROLES if executors_here else ("driver",):
            final = directory / f"{role}.jsa"
            if final.exists():
                opts[role] = _use(final)
            elif _claim(directory, role, now):
                name = f"run{run_id}" if role == "driver" else "{{APP_ID}}-{{EXECUTOR_ID}}"
                opts[role] = _learn(directory / f"{role}-{name}{PART}")
        return opts
    except OSError:
        return {}  # a read-only or full disk costs the speed-up, never the run
