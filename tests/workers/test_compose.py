"""docker-compose.yml, parsed (no Docker engine here): every queue has a consumer, the driver host's
worker takes its own host queue, exactly one beat, and no service runs an embedded beat."""

from pathlib import Path

import yaml

from webapp import settings as project_settings
from workers import supervision

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def services():
    return yaml.safe_load(COMPOSE.read_text())["services"]


def option(argv, flag):
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_every_queue_has_a_consumer_and_the_driver_host_takes_its_own():
    consumed = {}
    for name, svc in services().items():
        argv = svc.get("command") or []
        if argv[:4] == ["celery", "-A", "workers.celery", "worker"]:
            consumed[name] = set(option(argv, "-Q").split(","))
            assert "-B" not in argv and "--beat" not in argv, f"{name} embeds a beat"
    routed = {r["queue"] for r in project_settings.CELERY_TASK_ROUTES.values()} | {"control"}
    assert routed <= set().union(*consumed.values())
    worker = services()["worker"]
    node = worker["environment"]["SPARKDECK_NODE_NAME"]
    assert supervision.host_queue(node) in consumed["worker"] and "control" in consumed["worker"]
    # The long conversions have a worker of their own: they never hold up run control.
    assert "ingest" not in consumed["worker"] and "ingest" in consumed["ingest"]


def test_one_beat():
    beats = [n for n, s in services().items() if (s.get("command") or [])[3:4] == ["beat"]]
    assert beats == ["beat"]


def test_history_server_reads_the_event_logs_the_driver_host_writes():
    history = services()["history"]
    assert "org.apache.spark.deploy.history.HistoryServer" in " ".join(history["command"])
    opts = dict(o.removeprefix("-D").split("=", 1) for o in history["environment"]["SPARK_HISTORY_OPTS"].split())
    log_dir = opts["spark.history.fs.logDirectory"].removeprefix("file:")
    assert f"mkdir -p {log_dir}" in " ".join(history["command"])  # it exits at start if the directory is missing
    assert opts["spark.history.ui.port"] == "18080" and "18080:18080" in history["ports"]
    # Client-mode drivers run in `worker` and write there: both mount the volume that holds it.
    mounts = [v.split(":") for v in history["volumes"]]
    volume, mounted_at = next((name, at) for name, at in mounts if log_dir.startswith(at + "/"))
    assert f"{volume}:{mounted_at}" in services()["worker"]["volumes"]
    assert history["restart"] == "unless-stopped"
