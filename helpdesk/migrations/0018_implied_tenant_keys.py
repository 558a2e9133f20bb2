"""The write paths' rows leave their workspace key to their composite keys.

Every tenant table had Django's single-column `FOREIGN KEY (tenant_id) REFERENCES
tenants_tenant (id) DEFERRABLE INITIALLY DEFERRED`: at COMMIT one query per
written row, each taking FOR KEY SHARE on the workspace's row, which every write
of the workspace shares. On the tables below that key proves nothing: each row
also has a NOT NULL composite key to a parent of the same workspace, and the
parent's workspace is held by a constraint, so the workspace exists
(tenants/implied.py has the argument):

- identity: (tenant_id, contact_id) -> contact, which keeps its own key;
- conversation: (tenant_id, brand_id) -> brand, which keeps its own key;
- message: (tenant_id, conversation_id) -> conversation, then its brand;
- care facts: (tenant_id, conversation_id) and (tenant_id, brand_id);
- the report tables (hourly and daily rollups, histogram cells and blocks, the
  daily agent rollup, hourly inbound): (tenant_id, brand_id) -> brand.

An API create writes an identity, a conversation, a message and a care fact: four
checks fewer at its COMMIT; a reply's message and care fact two, its new report
cells one each. Contacts and events keep the direct key (no composite key proves
their workspace). Django's PROTECT, the RLS policies and the composite keys are
unchanged; reversing adds the constraints back.
"""

import django.db.models.deletion
from django.db import migrations, models

TABLES = (
    "carefact",
    "conversation",
    "identity",
    "message",
    "reportblockbucket",
    "reportbucket",
    "reportdailyagentrollup",
    "reportdailyrollup",
    "reporthourlyinbound",
    "reportrollup",
)


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0017_conversation_key_lookups_without_statistics"),
        ("tenants", "0010_open_api_skips_a_held_touch"),
    ]

    operations = [
        migrations.AlterField(
            model_name=table,
            name="tenant",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                editable=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="tenants.tenant",
            ),
        )
        for table in TABLES
    ]
