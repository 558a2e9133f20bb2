"""The write path's other non-negative integers move to two PostgreSQL domains.

Migration 0019 gave the report counters the domain `helpdesk_counter`. The rows
an API create and a reply write besides them still had one `CHECK (column >= 0)`
per PositiveIntegerField or PositiveSmallIntegerField: six on a conversation
(inserted by a create, updated by a reply), three on a care fact (inserted by
both), one on a message (inserted by both), one on an identity (inserted with a
new author) and one on a histogram block cell (the span, upserted several times
by each). PostgreSQL builds a table's CHECK constraints afresh for every statement
that writes the table and evaluates all of them on every row, whichever columns
the statement sets.

Here those columns take the domain `helpdesk_natural` (integer, `CHECK (VALUE >=
0)`) or `helpdesk_small_natural` (smallint, the same) and lose their own checks
(helpdesk.models.fields). The guarantee is the same: PostgreSQL checks a
domain's constraint whenever a value is stored in such a column, by INSERT,
UPDATE, an upsert's DO UPDATE or COPY, and refuses a negative one; NULL passes
as it passed the column check. The domains are created without their
constraints, the columns moved to them (binary-compatible type changes: no table
rewrite) and then the constraints added, which checks the rows already there.
Reversing moves the columns back to integer or smallint with their checks (named
as Django names them) and drops the domains. On SQLite nothing changes.

The saving is small: twelve checks, against 0019's 37 and 43, and a domain's
check is still set up once per writing statement and column. Measured by
replaying one API create's and one reply's statements as the app sends them
(captured from the server log; parameters typed as psycopg types them; prepared)
on two copies of one database, before and after this migration, alternated one
execution at a time (2 server processes each, each transaction rolled back),
PostgreSQL CPU from /proc/<pid>/schedstat, paired medians of 8 blocks of 500 on
a loaded 2-core machine: the writing statements of a create -30 us (blocks -68
to +2), of a reply -6 us (-32 to +10, within the noise); the whole create -9 us
and reply -5 us (6 blocks of 500, within the noise).
"""

from typing import Any

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from helpdesk.models.fields import (
    NATURAL_DOMAIN,
    SMALL_NATURAL_DOMAIN,
    NaturalField,
    SmallNaturalField,
)

# Model name -> {column: its field, as the model declares it}.
FIELDS: dict[str, dict[str, NaturalField | SmallNaturalField]] = {
    "conversation": {
        "public_reply_count": NaturalField(default=0),
        "customer_message_count": NaturalField(default=0),
        "priority": SmallNaturalField(default=0),
        "sla_used_seconds": NaturalField(default=0),
        "sla_target_seconds": NaturalField(blank=True, null=True),
        "engagement_total": NaturalField(default=0),
    },
    "carefact": {
        "raw_seconds": NaturalField(blank=True, null=True),
        "business_seconds": NaturalField(blank=True, null=True),
        "target_seconds": NaturalField(blank=True, null=True),
    },
    "message": {"attempts": SmallNaturalField(default=0)},
    "identity": {"followers": NaturalField(default=0)},
    "reportblockbucket": {"span": SmallNaturalField()},
}
# Domain -> its base type.
DOMAINS = {NATURAL_DOMAIN: "integer", SMALL_NATURAL_DOMAIN: "smallint"}


def _domain(field: NaturalField | SmallNaturalField) -> str:
    return (
        SMALL_NATURAL_DOMAIN if isinstance(field, SmallNaturalField) else NATURAL_DOMAIN
    )


# Model name -> {column: (its domain, the domain's base type)}.
COLUMNS = {
    model: {
        column: (_domain(field), DOMAINS[_domain(field)])
        for column, field in fields.items()
    }
    for model, fields in FIELDS.items()
}


def _column_checks(
    schema_editor: BaseDatabaseSchemaEditor, table: str, columns: list[str]
) -> list[str]:
    """The names of the CHECK constraints on exactly one of `columns`."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a "
            "ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "WHERE c.conrelid = %s::regclass AND c.contype = 'c' "
            "AND cardinality(c.conkey) = 1 AND a.attname = ANY(%s) "
            "ORDER BY c.conname",
            [table, columns],
        )
        return [name for (name,) in cursor.fetchall()]


def to_domains(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    for domain, base in DOMAINS.items():
        schema_editor.execute(f"CREATE DOMAIN {domain} AS {base}")
    for model, columns in COLUMNS.items():
        table = f"helpdesk_{model}"
        drops = [
            f"DROP CONSTRAINT {quote(name)}"
            for name in _column_checks(schema_editor, table, list(columns))
        ]
        moves = [
            f"ALTER COLUMN {quote(column)} TYPE {domain}"
            for column, (domain, _) in columns.items()
        ]
        schema_editor.execute(f"ALTER TABLE {quote(table)} {', '.join(drops + moves)}")
    for domain in DOMAINS:
        schema_editor.execute(
            f"ALTER DOMAIN {domain} ADD CONSTRAINT {domain}_not_negative "
            "CHECK (VALUE >= 0)"
        )


def to_plain_types(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    for model, columns in COLUMNS.items():
        table = f"helpdesk_{model}"
        actions = [
            *(
                f"ALTER COLUMN {quote(column)} TYPE {base}"
                for column, (_, base) in columns.items()
            ),
            *(
                f"ADD CONSTRAINT {quote(f'{table}_{column}_check')} "
                f"CHECK ({quote(column)} >= 0)"
                for column in columns
            ),
        ]
        schema_editor.execute(f"ALTER TABLE {quote(table)} {', '.join(actions)}")
    for domain in DOMAINS:
        schema_editor.execute(f"DROP DOMAIN {domain}")


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0019_report_counter_domain"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(to_domains, to_plain_types)],
            state_operations=[
                migrations.AlterField(model_name=model, name=column, field=field)
                for model, fields in FIELDS.items()
                for column, field in fields.items()
            ],
        ),
    ]
