"""Issue 14 (spikes): the brand's spike alert settings (R13)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenants", "0007_brand_spreading")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.AddField(
            model_name="brand",
            name="spike_alerts",
            field=models.BooleanField(
                default=True, help_text="Alert when inbound volume spikes."
            ),
        ),
        migrations.AddField(
            model_name="brand",
            name="spike_threshold",
            field=models.PositiveSmallIntegerField(
                default=5, help_text="Robust deviations above the usual volume (2-20)."
            ),
        ),
        migrations.AddField(
            model_name="brand",
            name="spike_min_count",
            field=models.PositiveIntegerField(
                default=10,
                help_text="Never alert below this many messages in 5 minutes.",
            ),
        ),
    ]
