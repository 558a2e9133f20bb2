"""Reserved for issue 14 (spreading); its operations are filled in by that work."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("social", "0009_account_degraded_since")]

    operations: list[migrations.operations.base.Operation] = []
