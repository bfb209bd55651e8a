"""`make run`: start the local Spark cluster, its Spark History Server, the Celery workers (run control;
dataset ingest), Celery beat and the web server.

A child that dies is restarted (bounded, workers/restarter.py), and the terminal says so. Everything
started here is stopped on Ctrl-C / SIGTERM (or `make stop`), nothing orphaned.
SPARKDECK_LOCAL_GPUS=<n> gives each worker n GPUs found by workers/gpu/discover_gpus.sh (or the
script in SPARKDECK_LOCAL_GPU_SCRIPT); see docs/gpus.md.
"""

import os
import signal
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workers.commands import CONTROL_QUEUES, INGEST_QUEUES, celery_beat_argv, celery_worker_argv, web_argv
from workers.localcluster import ClusterError, LocalCluster, local_gpu_settings, port_free
from workers.restarter import Child, Children, GaveUp


class Command(BaseCommand):
    help = "Run web + worker + a loopback Spark standalone cluster until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--master-port", type=int, default=7077)
        parser.add_argument("--webui-port", type=int, default=8080)
        parser.add_argument("--history-port", type=int, default=settings.HISTORY_PORT)
        parser.add_argument("--worker-memory", default="4g")
        parser.add_argument("--stop", action="store_true", help="stop a stack started earlier")

    def handle(self, *args, port, master_port, webui_port, history_port, worker_memory, stop, **opts):
        run_dir = settings.VAR_DIR / "run"
        pid_file = run_dir / "stack.pid"
        if stop:
            return self._stop_running(pid_file)
        try:
            gpus, gpu_script = local_gpu_settings()  # seed_demo records the same on the cluster row
        except ClusterError as exc:
            raise CommandError(str(exc)) from None
        if not port_free(history_port):  # else the History Server would exit at once, and again
            raise CommandError(
                f"port {history_port} is taken: give the History Server another one (SPARKDECK_HISTORY_PORT)"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(str(os.getpid()))
        cluster = LocalCluster(
            state_dir=settings.VAR_DIR / "spark",
            master_port=master_port,
            webui_port=webui_port,
            workers=2,
            worker_cores=1,
            worker_memory=worker_memory,
            gpus_per_worker=gpus,
            gpu_discovery_script=gpu_script or None,
            history_port=history_port,
            event_log_dir=settings.EVENT_LOG_DIR,
        )
        children = Children(say=lambda text: self.stderr.write(text))
        stopping = False

        def on_signal(signum, _frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            gpu_text = f", {gpus} GPU(s) each from {gpu_script}" if gpus else ""
            self.stdout.write(f"starting the Spark standalone cluster (1 master + 2 workers on 127.0.0.1{gpu_text})…")
            try:
                # The History Server is a child below (restarted when it dies), not a cluster daemon.
                cluster.start(timeout=90, history=False)
                cluster.prepare_history()
            except ClusterError as exc:
                raise CommandError(str(exc)) from None
            logs = settings.VAR_DIR / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "SPARKDECK_PUBLIC_URL": f"http://127.0.0.1:{port}"}
            history_argv, history_env = cluster.history_command()
            children.add(Child("history", history_argv, logs / "history.log", history_env, cluster.state_dir))
            specs = [
                ("worker", celery_worker_argv(CONTROL_QUEUES, role="control"), "worker.log"),
                ("ingest worker", celery_worker_argv(INGEST_QUEUES, concurrency=1, role="ingest"), "ingest.log"),
                ("beat", celery_beat_argv(run_dir / "celerybeat-schedule", run_dir / "celerybeat.pid"), "beat.log"),
                ("web", web_argv(port), "web.log"),
            ]
            for name, argv, log in specs:
                children.add(Child(name, argv, logs / log, env, settings.BASE_DIR))
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nSparkdeck is running: http://127.0.0.1:{port}/\n"
                    f"  login: demo / sparkdeck-demo   (admin: admin / sparkdeck-demo)\n"
                    f"  Spark master UI: {cluster.rest_url}\n"
                    f"  Spark History Server: {cluster.history_url} (event logs in {cluster.event_log_dir})\n"
                    f"  logs: {logs}\n"
                    "  Ctrl-C or `make stop` stops everything.\n"
                )
            )
            while not stopping:
                try:
                    children.check()
                except GaveUp as exc:
                    self.stderr.write(str(exc))
                    stopping = True
                time.sleep(0.5)
        finally:
            self.stdout.write("stopping…")
            children.stop()
            cluster.stop()
            pid_file.unlink(missing_ok=True)
            self.stdout.write("stopped.")

    def _stop_running(self, pid_file: Path):
        try:
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            self.stdout.write("no running stack")
            return
        for _ in range(60):
            if not pid_file.exists():
                break
            time.sleep(0.5)
        self.stdout.write("stack stopped")
