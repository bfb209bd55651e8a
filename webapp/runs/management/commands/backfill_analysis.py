"""Compute the prediction analysis (analysis.json + by_class.parquet) of runs that have predictions
but no current analysis: runs finished before the job wrote it. The pages do the same lazily on
first view; this does it ahead, with the same bounded-memory streaming function."""

from django.core.management.base import BaseCommand

from webapp.runs.analysis import backfill
from webapp.runs.models import Run


class Command(BaseCommand):
    help = "Compute missing prediction analyses (analysis.json, by_class.parquet) of finished runs."

    def add_arguments(self, parser):
        parser.add_argument("run_ids", nargs="*", type=int, help="only these runs (default: every finished run)")

    def handle(self, *args, run_ids, **options):
        runs = Run.objects.filter(pk__in=run_ids) if run_ids else Run.objects.filter(status=Run.Status.SUCCEEDED)
        for pk, outcome in backfill(runs.select_related("dataset").order_by("pk").iterator()):
            self.stdout.write(f"run {pk}: {outcome}")
