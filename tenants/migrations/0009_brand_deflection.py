"""Reserved for issue 14 (goodwill and deflection); its operations are filled in by that work."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tenants", "0008_brand_spikes")]

    operations: list[migrations.operations.base.Operation] = []
