"""Class-data archives for a run's JVMs (workers/jvm_cds.py): learned from one run, promoted only
when the JVM logged it complete, used by later runs; a real JVM writes and maps one."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from workers import jvm_cds


@pytest.fixture
def home(tmp_path):
    """A stand-in SPARK_HOME and JDK: the fingerprint reads only the jar names/sizes and release."""
    spark = tmp_path / "spark"
    (spark / "jars").mkdir(parents=True)
    (spark / "jars" / "spark-core.jar").write_bytes(b"x" * 10)
    jdk = tmp_path / "jdk"
    jdk.mkdir()
    (jdk / "release").write_text('JAVA_VERSION="17.0.15"\n')
    return spark, jdk


@pytest.fixture
def opts(home, tmp_path, monkeypatch):
    spark, jdk = home
    monkeypatch.setenv("JAVA_HOME", str(jdk))
    root = tmp_path / "cds"

    def call(run_id, here=True):
        return jvm_cds.java_opts(root, spark, run_id, executors_here=here)

    call.dir = root / jvm_cds.fingerprint(spark, jdk)
    return call


def complete(part: Path):
    part.write_bytes(b"archive")
    part.with_name(part.name + ".log").write_bytes(b"[info][cds,dynamic] Written dynamic archive 0x1 - 0x2\n")


def test_fingerprint_changes_with_the_jars_and_the_jdk(home):
    spark, jdk = home
    first = jvm_cds.fingerprint(spark, jdk)
    assert first == jvm_cds.fingerprint(spark, jdk)
    (spark / "jars" / "spark-sql.jar").write_bytes(b"y")
    second = jvm_cds.fingerprint(spark, jdk)
    (jdk / "release").write_text('JAVA_VERSION="17.0.16"\n')
    assert len({first, second, jvm_cds.fingerprint(spark, jdk)}) == 3
    assert jvm_cds.fingerprint(spark.parent / "nowhere", jdk) is None


def test_one_run_learns_then_later_runs_use_the_archives(opts):
    first = opts(1)
    assert "-XX:ArchiveClassesAtExit=" in first["driver"] and "driver-run1.jsa.part" in first["driver"]
    assert "cds+dynamic=info:file=" in first["driver"]
    # Each executor dumps to its own file: Spark fills in the application and executor ids.
    assert "executor-{{APP_ID}}-{{EXECUTOR_ID}}.jsa.part" in first["executor"]
    assert opts(2) == {}  # run 1 is learning both: nobody else dumps meanwhile

    d = opts.dir
    complete(d / "driver-run1.jsa.part")
    complete(d / "executor-app-1-0.jsa.part")
    complete(d / "executor-app-1-1.jsa.part")  # the second executor's: a spare
    third = opts(3)
    assert third == {
        "driver": f"-XX:SharedArchiveFile={d / 'driver.jsa'}",
        "executor": f"-XX:SharedArchiveFile={d / 'executor.jsa'}",
    }
    assert sorted(p.name for p in d.iterdir()) == ["driver.jsa", "executor.jsa"]  # claims, logs, spares gone


def test_a_dump_without_its_completion_line_is_never_used(opts):
    opts(1)
    d = opts.dir
    part = d / "driver-run1.jsa.part"
    part.write_bytes(b"half an archive")  # the JVM is still writing it, or was killed while it did
    part.with_name(part.name + ".log").write_bytes(b"[info][cds] Shared file region (rw) 0\n")
    assert opts(2) == {}
    assert part.exists() and not (d / "driver.jsa").exists()
    # Once stale, it and its claim are dropped and another run learns again.
    old = time.time() - jvm_cds.CLAIM_TTL - 1
    for p in (part, d / "driver.learning", d / "executor.learning"):
        os.utime(p, (old, old))
    orphan = d / "executor-app-9-0.jsa.part.log"  # its JVM was killed before it could dump
    orphan.write_bytes(b"")
    os.utime(orphan, (old, old))
    again = opts(3)
    assert not part.exists() and not orphan.exists() and "driver-run3.jsa.part" in again["driver"]


def test_executors_elsewhere_get_nothing(opts):
    assert set(opts(1, here=False)) == {"driver"}


def test_an_unwritable_directory_costs_only_the_speed_up(home, tmp_path, monkeypatch):
    spark, jdk = home
    monkeypatch.setenv("JAVA_HOME", str(jdk))
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert jvm_cds.java_opts(blocker / "cds", spark, 1, executors_here=True) == {}


@pytest.mark.skipif(shutil.which("java") is None, reason="needs a JDK")
def test_a_real_jvm_dump_is_promoted_and_mapped(tmp_path, monkeypatch):
    """A real JDK writes the archive and its completion line; the promoted file is then mapped
    (-Xshare:on fails outright where an archive cannot be used)."""
    monkeypatch.delenv("JAVA_HOME", raising=False)
    from workers.localcluster import spark_home

    root = tmp_path / "cds"
    learn = jvm_cds.java_opts(root, spark_home(), 1, executors_here=False)["driver"]
    subprocess.run(["java", *learn.split(), "-version"], check=True, capture_output=True, timeout=120)
    use = jvm_cds.java_opts(root, spark_home(), 2, executors_here=False)["driver"]
    assert use.startswith("-XX:SharedArchiveFile=") and use.endswith("driver.jsa")
    out = subprocess.run(["java", "-Xshare:on", use, "-version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "sharing" in out.stderr, out.stderr


def _pre_jdk6_jar(path):
    """A jar of one minimal class file `Old` of version 49 (JDK 5), as old jars hold: CDS cannot
    archive it."""
    import struct
    import zipfile

    pool = []

    def entry(data: bytes) -> int:
        pool.append(data)
        return len(pool)

    def class_ref(name: str) -> int:
        return entry(b"\x07" + struct.pack(">H", entry(b"\x01" + struct.pack(">H", len(name)) + name.encode())))

    this, parent = class_ref("Old"), class_ref("java/lang/Object")
    head = struct.pack(">IHHH", 0xCAFEBABE, 0, 49, len(pool) + 1) + b"".join(pool)
    with zipfile.ZipFile(path, "w") as jar:
        jar.writestr("Old.class", head + struct.pack(">HHHHHHH", 0x0021, this, parent, 0, 0, 0, 0))


@pytest.mark.skipif(shutil.which("java") is None, reason="needs a JDK")
def test_the_dumps_warnings_go_to_its_own_log_not_the_runs(tmp_path, monkeypatch):
    """A learning JVM that loads an old class warns "Pre JDK 6 class not supported by CDS" (272 of a
    first run's 620 driver.log lines came from the jars' old classes): into the dump's log only."""
    monkeypatch.delenv("JAVA_HOME", raising=False)
    from workers.localcluster import spark_home

    _pre_jdk6_jar(tmp_path / "old.jar")
    root = tmp_path / "cds"
    learn = jvm_cds.java_opts(root, spark_home(), 1, executors_here=False)["driver"]
    # (Old has no main method: the launcher loads it, says so, and the JVM dumps at its exit)
    out = subprocess.run(
        ["java", "-cp", str(tmp_path / "old.jar"), *learn.split(), "Old"], capture_output=True, text=True, timeout=120
    )
    assert "Main method not found" in out.stderr
    assert "[cds" not in out.stdout + out.stderr, out.stdout + out.stderr
    (log,) = root.glob(f"*/driver-*{jvm_cds.PART}.log")
    text = log.read_text()
    assert "Pre JDK 6 class not supported by CDS: 49.0 Old" in text and jvm_cds.MARKER.decode() in text
