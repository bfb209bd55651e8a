"""Seed a demo team, logins, the local cluster and the digits dataset (idempotent)."""

import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError

from webapp.accounts.models import Membership, Team
from webapp.clusters.models import Cluster
from webapp.datasets.ingest.digits import write_digits_npz
from webapp.datasets.models import Dataset
from webapp.datasets.services import create_and_convert
from workers.localcluster import ClusterError, local_gpu_settings


class Command(BaseCommand):
    help = "Create the demo team, users (demo, admin), the local cluster and the digits dataset."

    def add_arguments(self, parser):
        parser.add_argument("--password", default="sparkdeck-demo")
        parser.add_argument("--master-port", type=int, default=7077)
        parser.add_argument("--webui-port", type=int, default=8080)
        parser.add_argument("--history-port", type=int, default=settings.HISTORY_PORT)

    def handle(self, *args, password, master_port, webui_port, history_port, **opts):
        try:
            gpus, gpu_script = local_gpu_settings()  # what run_stack gives each local worker
        except ClusterError as exc:
            raise CommandError(str(exc)) from None
        User = get_user_model()
        team, _ = Team.objects.get_or_create(slug="demo", defaults={"name": "Demo team"})
        demo, created = User.objects.get_or_create(username="demo")
        if created:
            demo.set_password(password)
            demo.save()
        admin, created = User.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        if created:
            admin.set_password(password)
            admin.save()
        for user, role in ((demo, "member"), (admin, "owner")):
            Membership.objects.get_or_create(team=team, user=user, defaults={"role": role})
        Cluster.objects.update_or_create(
            name="local",
            defaults={
                "kind": Cluster.Kind.STANDALONE,
                "master_url": f"spark://127.0.0.1:{master_port}",
                "rest_url": f"http://127.0.0.1:{webui_port}",
                "bind_host": "127.0.0.1",
                # run_stack's History Server reads this directory
                "event_log_dir": str(settings.EVENT_LOG_DIR),
                "history_url": f"http://127.0.0.1:{history_port}",
                "max_executors": 2,
                "max_executor_cores": 1,
                "max_executor_memory_mb": 3072,
                "gpus_per_worker": gpus,
                "max_gpus_per_executor": gpus,
                "gpu_discovery_script": gpu_script,
            },
        )
        if not Dataset.objects.filter(team=team, name="digits").exists():
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "digits.npz"
                write_digits_npz(path)
                upload = SimpleUploadedFile("digits.npz", path.read_bytes())
                create_and_convert(team=team, user=demo, name="digits", upload=upload)  # READY at once
        if gpus:
            self.stdout.write(f"local cluster: {gpus} GPU(s) per worker ({gpu_script})")
        self.stdout.write(f"demo login: demo / {password} (admin: admin / {password})")
