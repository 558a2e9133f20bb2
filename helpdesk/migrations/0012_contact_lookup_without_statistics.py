"""The contact's composite-FK index covers only merged contacts.

`(tenant_id, merged_into_id)` over every contact let PostgreSQL, on tables nobody
has analyzed, read "the tenant's contacts" through it instead of looking a contact
up by primary key: both look like one row without statistics, and that scan ran
once per conversation of an inbox page. Merged contacts are the only rows the
foreign key's checks look for (`merged_into_id = $1` implies NOT NULL), so a
partial index serves them, and a lookup by id is left with the unique indexes.
PostgreSQL only: the composite keys and their indexes exist there only.
"""

from typing import Any

from django.db import migrations

INDEX = "helpdesk_contact_merged_into_tfk_ix"
PARTIAL = (
    f"DROP INDEX IF EXISTS {INDEX}; CREATE INDEX {INDEX} ON helpdesk_contact "
    "(tenant_id, merged_into_id) WHERE merged_into_id IS NOT NULL"
)
FULL = (
    f"DROP INDEX IF EXISTS {INDEX}; CREATE INDEX {INDEX} ON helpdesk_contact "
    "(tenant_id, merged_into_id)"
)


def run(sql: str) -> Any:
    def apply(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return apply


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0011_inbox_all_tab_indexes"),
    ]

    operations = [
        migrations.RunPython(run(PARTIAL), run(FULL)),
    ]
