"""Issue 14 (R13): the brand's spreading threshold (engagement per hour)."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenants", "0006_membership_languages")]

    operations = [
        migrations.AddField(
            model_name="brand",
            name="spreading_threshold",
            field=models.PositiveIntegerField(
                default=60,
                help_text="Engagement per hour (reposts, likes, replies, quotes) "
                "from which a public conversation is flagged spreading.",
                validators=[
                    django.core.validators.MinValueValidator(1),
                    django.core.validators.MaxValueValidator(1000000),
                ],
            ),
        ),
    ]
