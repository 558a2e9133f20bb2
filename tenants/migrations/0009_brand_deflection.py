"""R15 (issue 14): the brand's deflection phrases per language (helpdesk.deflection)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenants", "0008_brand_spikes")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.AddField(
            model_name="brand",
            name="deflection_phrases",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text='Per language, e.g. {"en": ["call our hotline"]}; a '
                "language left out uses the defaults.",
            ),
        ),
    ]
