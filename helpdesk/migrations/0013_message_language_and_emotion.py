"""Issue 14: the detected language, sentiment score and anger of each inbound message,
and the conversation's language (helpdesk.language, helpdesk.sentiment)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("helpdesk", "0012_contact_lookup_without_statistics")]

    operations = [
        migrations.AddField(
            model_name="message",
            name="language",
            field=models.CharField(blank=True, db_default="", default="", max_length=8),
        ),
        migrations.AddField(
            model_name="message",
            name="sentiment_score",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="message",
            name="angry",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddField(
            model_name="conversation",
            name="language",
            field=models.CharField(blank=True, db_default="", default="", max_length=8),
        ),
    ]
