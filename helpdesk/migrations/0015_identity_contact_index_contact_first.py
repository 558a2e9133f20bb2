"""The identity's composite-FK index leads with the contact.

`(tenant_id, contact_id)` let PostgreSQL, on tables nobody has analyzed, answer a
lookup of identities by `(tenant_id, platform, external_id)` (batched ingest's
authors, helpdesk.services.bulkrows.by_keys) by walking all of the tenant's
identities through it, once per key: without statistics both indexes cost the
same for "tenant_id = $1" and the FK index was taken. With a prepared statement's
generic plan that walk was chosen every time (53 ms for a batch of 100 authors
over 650 identities). `(contact_id, tenant_id)` serves what the FK index is for
(the contact's identities, the cascade from a contact) and cannot serve "the
tenant's rows", so the lookup keeps the unique index on the key.
PostgreSQL only: the composite keys and their indexes exist there only.
"""

from django.db import migrations

from tenants.rls import index_sql, postgres_only

INDEX = "helpdesk_identity_contact_tfk_ix"
CONTACT_FIRST = index_sql(INDEX, "helpdesk_identity", "contact_id, tenant_id")
TENANT_FIRST = index_sql(INDEX, "helpdesk_identity", "tenant_id, contact_id")


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0014_conversation_engagement"),
    ]

    operations = [postgres_only(CONTACT_FIRST, TENANT_FIRST)]
