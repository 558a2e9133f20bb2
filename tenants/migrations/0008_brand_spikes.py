"""Reserved for issue 14 (spikes); its operations are filled in by that work."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tenants", "0007_brand_spreading")]

    operations: list[migrations.operations.base.Operation] = []
