"""The contact's composite-FK index covers only merged contacts.

`(tenant_id, merged_into_id)` over every contact let PostgreSQL, on tables nobody
has analyzed, read "the tenant's contacts" through it instead of looking a contact
up by primary key: both look like one row without statistics, and that scan ran
once per conversation of an inbox page. Merged contacts are the only rows the
foreign key's checks look for (`merged_into_id = $1` implies NOT NULL), so a
partial index serves them, and a lookup by id is left with the unique indexes.
PostgreSQL only: the composite keys and their indexes exist there only.
"""

from django.db import migrations

from tenants.rls import index_sql, postgres_only

INDEX = "helpdesk_contact_merged_into_tfk_ix"
COLUMNS = "tenant_id, merged_into_id"
PARTIAL = index_sql(INDEX, "helpdesk_contact", COLUMNS, "merged_into_id IS NOT NULL")
FULL = index_sql(INDEX, "helpdesk_contact", COLUMNS)


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0011_inbox_all_tab_indexes"),
    ]

    operations = [postgres_only(PARTIAL, FULL)]
