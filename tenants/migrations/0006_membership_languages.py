"""Issue 14: the languages a member answers in (auto-assignment prefers them)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenants", "0005_request_opening_functions")]

    operations = [
        migrations.AddField(
            model_name="membership",
            name="languages",
            field=models.JSONField(blank=True, db_default=[], default=list),
        ),
    ]
