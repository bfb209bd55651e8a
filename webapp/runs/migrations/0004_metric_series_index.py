from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0003_run_table"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="metricpoint",
            index=models.Index(fields=["run", "name", "step"], name="metric_run_name_step"),
        ),
    ]
