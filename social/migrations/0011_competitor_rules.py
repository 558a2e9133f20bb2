"""Competitor listening rules (issue 14): a rule marked `competitor` sends its
matches to the competitor feed (advocacy.CompetitorMention), never the inbox."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("social", "0010_engagement")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.AddField(
            model_name="listeningrule",
            name="competitor",
            field=models.BooleanField(default=False),
        ),
    ]
