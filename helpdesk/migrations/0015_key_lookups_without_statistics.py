"""Lookups by key that stay lookups on tables nobody has analyzed.

Without statistics PostgreSQL thinks a small tenant holds one row, so for
`tenant_id = $1 AND <key>` an index that binds only the tenant costs exactly
what the key's own index costs (one row either way), and of equal paths the
planner keeps the first it tried: indexes are tried newest first. So the
message author's foreign-key check (`tenant_id = $1 AND id = $2`) and the author
lookup walked all of the tenant's identities through the identity's contact
index, and the inbound conversation lookup and the message's foreign-key check
on its conversation walked the tenant's conversations through the engagement
index (2,000 rows read for one, at 2,000 of them).

Indexes stay tenant-first (DESIGN §3):

- the contact indexes cover rows with a contact (all of them; the column is NOT
  NULL): a lookup by contact proves the predicate and keeps them, a predicate on
  the tenant alone cannot use them. The conversation's also orders a contact's
  conversations by id, the order batched ingest locks them in. Rebuilt here,
  they are the newest indexes of their tables that the inbound lookups can use;
- then the primary keys are rebuilt, so a lookup by id (the foreign-key checks)
  tries its key first. No foreign key refers to them (the composite keys refer
  to UNIQUE (tenant_id, id)).

After ANALYZE the key paths are the cheaper ones outright.
tests/helpdesk/test_write_path_plans.py explains each lookup on fresh tables and
fails on a walk, also when a later index takes the tie. PostgreSQL only: the
composite keys and their indexes exist there only.
"""

from django.db import migrations

from tenants.rls import index_sql, postgres_only

IDENTITY = ("helpdesk_identity_contact_tfk_ix", "helpdesk_identity")
CONVERSATION = ("helpdesk_conversation_contact_tfk_ix", "helpdesk_conversation")
PARTIAL = "contact_id IS NOT NULL"


def rebuilt_primary_key(table: str) -> str:
    """The primary key of `table` on a new index (the newest of the table's)."""
    return (
        f"CREATE UNIQUE INDEX {table}_pkey_new ON {table} (id); "
        f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, "
        f"ADD CONSTRAINT {table}_pkey PRIMARY KEY USING INDEX {table}_pkey_new"
    )


FORWARD = "; ".join(
    [
        index_sql(*IDENTITY, "tenant_id, contact_id", PARTIAL),
        index_sql(*CONVERSATION, "tenant_id, contact_id, id", PARTIAL),
        rebuilt_primary_key("helpdesk_identity"),
        rebuilt_primary_key("helpdesk_conversation"),
    ]
)
BACKWARD = "; ".join(
    [
        index_sql(*IDENTITY, "tenant_id, contact_id"),
        index_sql(*CONVERSATION, "tenant_id, contact_id"),
    ]
)


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0014_conversation_engagement"),
    ]

    operations = [postgres_only(FORWARD, BACKWARD)]
