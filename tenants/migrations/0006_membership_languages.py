"""Reserved for issue 14 (sentiment and language); its operations are filled in by that work."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tenants", "0005_request_opening_functions")]

    operations: list[migrations.operations.base.Operation] = []
