"""Three composite keys stop keeping an index of their own.

`TenantForeignKeyConstraint` indexes `(tenant_id, <key>_id)` for the lookups by
key (PostgreSQL's check when a parent row is deleted, Django's cascade). On
these tables another index starts with the same two columns and serves those
lookups, so the key's own index was only written on every insert:

- care fact by conversation: helpdesk_fact_conv_ix (tenant_id, conversation_id,
  kind);
- care fact by brand: helpdesk_fact_brand_ix (tenant_id, brand_id, started_at);
- message by conversation: helpdesk_msg_thread_ix (tenant_id, conversation_id,
  created_at).

An API create and a reply each insert a message and a care fact: three index
insertions fewer per request. The PostgreSQL backend's CPU per INSERT message +
INSERT care fact (200 pairs a transaction, 8 rounds of 4,000 alternating, twice):
154 -> 142 and 140 -> 132 us (median; every round lower), WAL 1,700 -> 1,490
bytes a pair. The keys say which
index serves them (`indexed_by`, held by the system check tenants.E003); the
constraints themselves are unchanged. PostgreSQL only, where the keys and their
indexes exist; reversing builds the indexes again (the message's as 0016 left it).

The conversation's account key says the same of the thread index, which has
served it since 0017 dropped its own index (state only).
"""

from django.db import migrations

import tenants.rls
from tenants.rls import index_sql, postgres_only

# (table, key field, the index that serves it)
KEYS = (
    ("carefact", "conversation", "helpdesk_fact_conv_ix"),
    ("carefact", "brand", "helpdesk_fact_brand_ix"),
    ("message", "conversation", "helpdesk_msg_thread_ix"),
)
FORWARD = "; ".join(
    f"DROP INDEX IF EXISTS helpdesk_{table}_{field}_tfk_ix" for table, field, _ in KEYS
)
BACKWARD = "; ".join(
    [
        index_sql(
            "helpdesk_carefact_conversation_tfk_ix",
            "helpdesk_carefact",
            "tenant_id, conversation_id",
        ),
        index_sql(
            "helpdesk_carefact_brand_tfk_ix", "helpdesk_carefact", "tenant_id, brand_id"
        ),
        index_sql(
            "helpdesk_message_conversation_tfk_ix",
            "helpdesk_message",
            "tenant_id, conversation_id",
            "conversation_id IS NOT NULL",
        ),
    ]
)


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0019_report_counter_domain"),
    ]

    operations = [
        *(
            migrations.AlterConstraint(
                model_name=table,
                name=f"helpdesk_{table}_{field}_tfk",
                constraint=tenants.rls.TenantForeignKeyConstraint(
                    field=field,
                    name=f"helpdesk_{table}_{field}_tfk",
                    indexed_by=index,
                ),
            )
            for table, field, index in KEYS
        ),
        postgres_only(FORWARD, BACKWARD),
        # Migration 0017 dropped this key's index for the thread index already
        # (it covers the rows with an account); the key now says so.
        migrations.AlterConstraint(
            model_name="conversation",
            name="helpdesk_conversation_social_account_tfk",
            constraint=tenants.rls.TenantForeignKeyConstraint(
                field="social_account",
                name="helpdesk_conversation_social_account_tfk",
                indexed_by="helpdesk_conv_thread_ix",
            ),
        ),
    ]
