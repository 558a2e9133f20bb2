"""The message's replay lookup stays a lookup on tables nobody has analyzed.

Migration 0015's reasoning, for the message table: below about 1,500 messages
PostgreSQL, without statistics, thinks a tenant holds one message, so for
`tenant_id = $1 AND platform = $2 AND external_id = $3` (the inbound replay
check, one at a time and batched) every tenant-first index ties with the unique
key, and the newest, the author's foreign-key index, walked all of the tenant's
messages (1,000 rows removed by filter at 1,000 messages).

The message's foreign-key indexes (conversation, account, author identity) now
cover the rows whose key is set (for the conversation, all of them): a lookup,
join or foreign-key check by that key proves the predicate and keeps them, a
predicate on the tenant alone cannot use them. The unique key (tenant_id,
platform, external_id) is then the newest index the replay lookup can use.
Indexes stay tenant-first (DESIGN §3). PostgreSQL only, as 0015.
"""

from django.db import migrations

from tenants.rls import index_sql, postgres_only

COLUMNS = ("conversation_id", "account_id", "author_identity_id")


def foreign_key_indexes(partial: bool) -> str:
    return "; ".join(
        index_sql(
            f"helpdesk_message_{column.removesuffix('_id')}_tfk_ix",
            "helpdesk_message",
            f"tenant_id, {column}",
            f"{column} IS NOT NULL" if partial else "",
        )
        for column in COLUMNS
    )


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0015_key_lookups_without_statistics"),
    ]

    operations = [
        postgres_only(foreign_key_indexes(partial=True), foreign_key_indexes(False))
    ]
