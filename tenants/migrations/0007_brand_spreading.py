"""Reserved for issue 14 (spreading); its operations are filled in by that work."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tenants", "0006_membership_languages")]

    operations: list[migrations.operations.base.Operation] = []
