"""The conversation's key lookups stay lookups on tables nobody has analyzed.

Migration 0015's reasoning, carried through: without statistics a small tenant
looks like one row, so for a lookup by key every index that binds the tenant
costs what the key's own costs (one row either way) but for its depth. An index
whose entries repeat (the tenant's one brand, its few accounts, its agents and
statuses) is deduplicated into a single page long after the primary key has
split into two levels: it is then cheaper outright, and a backend that fixed its
generic plans in that state walked all of the tenant's conversations through it
for the conversation's foreign-key check at COMMIT, the inbound lookups and the
reply's UPDATE (from about 400 conversations on; 640-1,100 rows removed by
filter per call at about 900).

Indexes stay tenant-first (DESIGN §3); each of those now covers only rows its
own lookups name, so that a predicate on the tenant and the key cannot use it:

- the brand's foreign-key index covers rows with a brand (all of them; the
  column is NOT NULL): a lookup or check by brand proves the predicate;
- the assignee index covers assigned conversations: the assignee filter and an
  agent's open load name one (the unassigned filter reads the queue indexes);
- the thread index covers conversations of an account and takes over the
  account foreign key's checks: the account's own index, (tenant_id,
  social_account_id), is dropped. The thread index begins with those columns,
  and every lookup the dropped index served names the account, which proves the
  predicate; the inbound lookups name the account too, so no partial index of
  the account could have been kept from them.

The lookups by id are left with the primary key and the unique (tenant_id, id),
the narrowest indexes of the table, and with indexes that end with the id (every
entry unique and at least as wide: never shallower; at equal depth the primary
key, rebuilt by 0015, is tried first). The inbound lookups are left with the
contact and thread indexes, the unique (tenant_id, id) and the indexes ending
with the id. Left as it is: the contact index, (tenant_id, contact_id, id), is 8
bytes wider than the unique (tenant_id, id) and splits first, so while the whole
table holds about 230-290 conversations the inbound lookups walk the latter. A
narrower contact index would close that window for the single lookups, but the
batched lookup locks a contact's rows in id order (bulkrows.by_keys), which only
these two indexes give: it then walked the unique index at every size.
After ANALYZE the key paths are the cheaper ones outright.
tests/helpdesk/test_conversation_key_plans.py explains each statement's generic
plan as the tenant grows and fails on a walk, whichever index takes it.
PostgreSQL only for the foreign-key indexes, as 0015: they exist there only.
"""

from django.db import migrations, models

from tenants.rls import index_sql, postgres_only

TABLE = "helpdesk_conversation"
BRAND = "helpdesk_conversation_brand_tfk_ix"
ACCOUNT = "helpdesk_conversation_social_account_tfk_ix"

FORWARD = "; ".join(
    [
        index_sql(BRAND, TABLE, "tenant_id, brand_id", "brand_id IS NOT NULL"),
        f"DROP INDEX IF EXISTS {ACCOUNT}",
    ]
)
BACKWARD = "; ".join(
    [
        index_sql(BRAND, TABLE, "tenant_id, brand_id"),
        index_sql(ACCOUNT, TABLE, "tenant_id, social_account_id"),
    ]
)


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0016_message_key_lookups_without_statistics"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="conversation",
            name="helpdesk_conv_assignee_ix",
        ),
        migrations.RemoveIndex(
            model_name="conversation",
            name="helpdesk_conv_thread_ix",
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(("assignee__isnull", False)),
                fields=["tenant", "assignee", "status"],
                name="helpdesk_conv_assignee_ix",
            ),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                condition=models.Q(("social_account__isnull", False)),
                fields=["tenant", "social_account", "contact", "public_thread_ref"],
                name="helpdesk_conv_thread_ix",
            ),
        ),
        postgres_only(FORWARD, BACKWARD),
    ]
