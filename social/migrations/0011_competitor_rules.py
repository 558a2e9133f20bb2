"""Reserved for issue 14 (advocates and competitor listening); its operations are filled in by that work."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("social", "0010_engagement")]

    operations: list[migrations.operations.base.Operation] = []
