"""The whole embedded Sparkdeck stack in a temp dir, for benches: SQLite, the filesystem Celery
transport, a Celery worker and beat, gunicorn (metric ingest) and a 2-worker loopback Spark
standalone cluster. Runs go through the same services as the web form. `database_url` /
`broker_url` put it on PostgreSQL / Redis instead (the caller owns that database: it must exist and
be migrated here); `web=False` leaves the web server to the caller (on `stack.web_port`).

    with EmbeddedStack() as stack:
        ds = stack.dataset("digits", npz_path)
        run = stack.run(ds, "cnn", {"epochs": 5})   # waits until terminal
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workers.localcluster import free_port, free_port_block  # noqa: E402


def spawn(argv, log, env):
    return subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


class EmbeddedStack:
    def __init__(
        self,
        keep=False,
        worker_memory="4g",
        executor_memory_mb=3072,
        worker_cores=1,
        reconcile_seconds=0.5,
        database_url=None,
        broker_url=None,
        web=True,
    ):
        self.keep = keep
        self.database_url, self.broker_url, self.start_web = database_url, broker_url, web
        self.reconcile_seconds = reconcile_seconds
        self.worker_cores = worker_cores
        self.worker_memory = worker_memory
        self.executor_memory_mb = executor_memory_mb
        self.root = Path(tempfile.mkdtemp(prefix="sparkdeck-bench-"))
        self.procs = []
        self.cluster = None

    def __enter__(self):
        # SIGTERM/SIGINT unwind through __exit__, so the cluster, worker and web server are stopped.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        self.web_port = web_port = free_port()
        self.web_url = f"http://127.0.0.1:{web_port}"
        os.environ.update(
            DJANGO_SETTINGS_MODULE="webapp.settings",
            DJANGO_SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "bench-only"),
            SPARKDECK_VAR_DIR=str(self.root / "var"),
            SPARKDECK_PUBLIC_URL=f"http://127.0.0.1:{web_port}",
            SPARKDECK_RECONCILE_SECONDS=str(self.reconcile_seconds),
            SPARKDECK_INSECURE_HTTP="1",  # plain http on loopback
        )
        for name, value in (("DATABASE_URL", self.database_url), ("CELERY_BROKER_URL", self.broker_url)):
            if value:
                os.environ[name] = value
            else:
                os.environ.pop(name, None)
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from webapp.accounts.models import Membership, Team
        from webapp.clusters.models import Cluster
        from workers.commands import celery_beat_argv, celery_worker_argv, web_argv
        from workers.localcluster import LocalCluster

        call_command("migrate", verbosity=0)
        self.env = dict(os.environ)
        t = time.time()
        self.cluster = LocalCluster(
            self.root / "spark",
            master_port=free_port(),
            webui_port=free_port_block(3),
            worker_memory=self.worker_memory,
            worker_cores=self.worker_cores,
        )
        try:
            self.cluster.start(timeout=120)
            self.cluster_start_seconds = time.time() - t
            if self.start_web:
                self.procs.append(spawn(web_argv(web_port, workers=1), self.root / "web.log", self.env))
            self.procs.append(spawn(celery_worker_argv(), self.root / "worker.log", self.env))
            beat = celery_beat_argv(self.root / "beat", self.root / "beat.pid")
            self.procs.append(spawn(beat, self.root / "beat.log", self.env))
            while b"ready." not in (self.root / "worker.log").read_bytes():
                time.sleep(0.3)
            self.user = get_user_model().objects.create_user("bench", password="bench-only")
            self.team = Team.objects.create(name="bench", slug="bench")
            Membership.objects.create(team=self.team, user=self.user)
            self.db_cluster = Cluster.objects.create(
                name="bench",
                master_url=self.cluster.master_url,
                rest_url=self.cluster.rest_url,
                bind_host="127.0.0.1",
                max_executors=2,
                max_executor_cores=self.worker_cores,
                max_executor_memory_mb=self.executor_memory_mb,
            )
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def wait_web(self, timeout=60):
        import urllib.request

        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.web_url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)

    def dataset(self, name, path, **kwargs):
        from django.core.files.uploadedfile import SimpleUploadedFile

        from webapp.datasets.services import create_and_convert

        upload = SimpleUploadedFile(Path(path).name, Path(path).read_bytes())
        # Converted here, not by the stack's worker: the caller gets a READY dataset.
        return create_and_convert(team=self.team, user=self.user, name=name, upload=upload, **kwargs)

    def submit(self, dataset, template, hyperparameters, input_mode="tensorflow", executors=2, cores=1):
        from webapp.runs.services import create_run

        return create_run(
            team=self.team,
            user=self.user,
            dataset=dataset,
            template=template,
            hyperparameters=hyperparameters,
            cluster=self.db_cluster,
            num_executors=executors,
            executor_cores=cores,
            executor_memory_mb=self.executor_memory_mb,
            input_mode=input_mode,
        )

    def wait(self, run, poll=0.2):
        from webapp.runs.models import Run

        while not Run.objects.get(pk=run.pk).is_terminal:
            time.sleep(poll)
        run.refresh_from_db()
        return run

    def run(self, dataset, template, hyperparameters, input_mode="tensorflow", executors=2, cores=1):
        """Submit and wait; returns (run, seconds from submit to terminal status seen)."""
        t0 = time.time()
        run = self.wait(self.submit(dataset, template, hyperparameters, input_mode, executors, cores))
        return run, time.time() - t0

    def __exit__(self, *exc):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
        self.procs = []
        if self.cluster is not None:
            self.cluster.stop()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            print(f"kept {self.root}")
        return False
