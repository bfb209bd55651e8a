from django.db import migrations, models
from django.db.models import Exists, OuterRef


def drop_duplicates(apps, schema_editor):
    """Keep the first stored copy (lowest id) of each (run, name, step, executor)."""
    MetricPoint = apps.get_model("runs", "MetricPoint")
    earlier = MetricPoint.objects.filter(
        run=OuterRef("run"),
        name=OuterRef("name"),
        step=OuterRef("step"),
        executor=OuterRef("executor"),
        id__lt=OuterRef("id"),
    )
    MetricPoint.objects.filter(Exists(earlier)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0006_run_driver_supervision"),
    ]

    operations = [
        migrations.RunPython(drop_duplicates, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="metricpoint",
            constraint=models.UniqueConstraint(fields=("run", "name", "step", "executor"), name="metric_one_point"),
        ),
        # The unique index starts with (run, name, step): this one would only cost inserts.
        migrations.RemoveIndex(model_name="metricpoint", name="metric_run_name_step"),
    ]
