"""Issue 14 (R13): a public post's engagement as its platform last reported it."""

import django.db.models.deletion
import django.db.models.manager
import django.utils.timezone
from django.db import migrations, models

import tenants.base
import tenants.rls


class Migration(migrations.Migration):
    dependencies = [("social", "0009_account_degraded_since")]

    operations = [
        migrations.CreateModel(
            name="PostEngagement",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("external_id", models.CharField(max_length=255)),
                ("reposts", models.PositiveIntegerField(default=0)),
                ("likes", models.PositiveIntegerField(default=0)),
                ("replies", models.PositiveIntegerField(default=0)),
                ("quotes", models.PositiveIntegerField(default=0)),
                (
                    "read_at",
                    models.DateTimeField(default=django.utils.timezone.now),
                ),
                (
                    "account",
                    tenants.base.TenantForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="social.socialaccount",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False,
                        editable=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("tenant", "id"),
                        name="social_postengagement_tenant_id_uniq",
                    ),
                    tenants.rls.TenantRLS(name="social_postengagement_rls"),
                    tenants.rls.TenantForeignKeyConstraint(
                        field="account", name="social_postengagement_account_tfk"
                    ),
                    models.UniqueConstraint(
                        fields=("tenant", "account", "external_id"),
                        name="social_post_engagement_uniq",
                    ),
                ],
            },
            managers=[
                ("objects", django.db.models.manager.Manager()),
                ("scoped_base", django.db.models.manager.Manager()),
            ],
        ),
    ]
