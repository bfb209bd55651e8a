from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("modelfiles", "0001_initial")]

    operations = [
        # Files stored before the check moved to a task were checked in the request: READY.
        migrations.AddField(
            model_name="modelfile",
            name="status",
            field=models.CharField(
                choices=[("UPLOADED", "Uploaded"), ("CHECKING", "Checking"), ("READY", "Ready"), ("FAILED", "Failed")],
                db_index=True,
                default="READY",
                max_length=12,
            ),
        ),
        migrations.AlterField(
            model_name="modelfile",
            name="status",
            field=models.CharField(
                choices=[("UPLOADED", "Uploaded"), ("CHECKING", "Checking"), ("READY", "Ready"), ("FAILED", "Failed")],
                db_index=True,
                default="UPLOADED",
                max_length=12,
            ),
        ),
        migrations.AddField(model_name="modelfile", name="status_reason", field=models.TextField(blank=True)),
        migrations.AddField(
            model_name="modelfile", name="check_started_at", field=models.DateTimeField(blank=True, null=True)
        ),
        migrations.AddField(
            model_name="modelfile", name="checked_at", field=models.DateTimeField(blank=True, null=True)
        ),
        migrations.RemoveConstraint(model_name="modelfile", name="model_file_name_per_team"),
        migrations.AddConstraint(
            model_name="modelfile",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status", "FAILED"), _negated=True),
                fields=("team", "name"),
                name="model_file_name_per_team",
            ),
        ),
    ]
