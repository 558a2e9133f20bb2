"""Issue 14 (R13): a public conversation's engagement, its growth per hour, the
next read and since when it spreads."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("helpdesk", "0013_message_language_and_emotion")]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="engagement_total",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="conversation",
            name="engagement_per_hour",
            field=models.FloatField(default=0.0),
        ),
        migrations.AddField(
            model_name="conversation",
            name="engagement_read_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="conversation",
            name="engagement_next_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="conversation",
            name="spreading_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                fields=["tenant", "engagement_next_at", "id"],
                name="helpdesk_conv_engagement_ix",
            ),
        ),
    ]
