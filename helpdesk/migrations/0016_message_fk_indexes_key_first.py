"""The message's composite-FK indexes lead with the key they serve,
`(<fk>_id, tenant_id)`, as the identity's does since 0015.

With `(tenant_id, <fk>_id)` PostgreSQL, on tables nobody has analyzed, answered
batched ingest's replay lookup (helpdesk.services.bulkrows.by_keys: messages by
`(tenant_id, platform, external_id)`) by walking all of the tenant's messages
through one of them, once per key: without statistics "tenant_id = $1" alone
costs a little less than the three equalities on the unique key (8.16 against
8.29), and a prepared statement's generic plan took that walk every time (600
messages a key on a tenant of 600 conversations). `(<fk>_id, tenant_id)` serves
what each FK index is for (a conversation's, an account's or an identity's
messages, the cascade or check from it) and cannot serve "the tenant's rows".
PostgreSQL only: the composite keys and their indexes exist there only.
"""

from django.db import migrations

from tenants.rls import index_sql, postgres_only

COLUMNS = {
    "helpdesk_message_conversation_tfk_ix": "conversation_id",
    "helpdesk_message_account_tfk_ix": "account_id",
    "helpdesk_message_author_identity_tfk_ix": "author_identity_id",
}


def _rebuild(key_first: bool) -> str:
    return "; ".join(
        index_sql(
            index,
            "helpdesk_message",
            f"{column}, tenant_id" if key_first else f"tenant_id, {column}",
        )
        for index, column in COLUMNS.items()
    )


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0015_identity_contact_index_contact_first"),
    ]

    operations = [postgres_only(_rebuild(True), _rebuild(False))]
