"""Reserved for issue 14 (sentiment and language); its operations are filled in by that work."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("helpdesk", "0012_contact_lookup_without_statistics")]

    operations: list[migrations.operations.base.Operation] = []
