from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0004_metric_series_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="diagnosis",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
