"""The report tables' counters move to one PostgreSQL domain.

Every counter of the report tables (hourly and daily rollups, the daily agent
rollup, hourly inbound, histogram cells and blocks) was a PositiveIntegerField:
an integer column with its own `CHECK (column >= 0)`, 18 on each rollup table.
PostgreSQL builds a table's CHECK constraints afresh for every statement that
writes it (each one's stored tree parsed, planned and compiled), and an upsert
then evaluates them on the row it proposes and again on the row it updates. The
rollup upserts of one API create write three tables (37 checks), those of a reply
six (43).

Here the columns take the domain `helpdesk_counter` (integer with `CHECK (VALUE
>= 0)`) and lose their own checks. The guarantee is the same: PostgreSQL checks
the domain's constraint whenever a value is stored in such a column, by INSERT,
UPDATE, an upsert's DO UPDATE or COPY, and refuses a negative one. But the
domain's check is prepared once per server process (its type cache) and only
set up per statement.

Measured on a scratch database holding the six tables four ways (the real
rollup statements of an API create and a reply; each variant on four server
processes, alternated one execution at a time; PostgreSQL CPU from
/proc/<pid>/schedstat; five blocks of 400), per execution against the
per-column checks, with prepared statements (the default): create -66 and -86 us
(block medians -59 to -93), reply -52 and -55 us (-17 to -81), where no checks
at all would save 77-104 and 79-90 us and one `CHECK (LEAST(...) >= 0)` per
table 43 and 40 us. Without prepared statements (behind pgbouncer) the parser
and planner handle the domain's coercions on every execution: create -31 us,
reply -30 us.

The block span keeps its own check: it is a dimension, not a counter. On SQLite
(the demo) a CounterField is a PositiveIntegerField, checks included, so the
schema there does not change. The domain is created without its constraint, the
columns moved to it (a binary-compatible type change: no table rewrite), and
then the constraint added, which checks the rows already there once. Reversing
moves the columns back to integer with their checks and drops the domain.
"""

from typing import Any

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

import helpdesk.models.performance

DOMAIN = "helpdesk_counter"
ROLLUP_COUNTERS = (
    "inbound",
    "opened",
    "off_hours_opened",
    "no_reply",
    "answered",
    "answered_public",
    "answered_private",
    "answered_1h",
    "answered_24h",
    "off_hours_answered_first_hour",
    "first_breached",
    "next_responses",
    "next_breached",
    "resolved",
    "resolution_breached",
    "breaches",
    "public_replies",
    "private_moves",
)
# Model name -> its counter columns.
COUNTERS = {
    "reportrollup": ROLLUP_COUNTERS,
    "reportdailyrollup": ROLLUP_COUNTERS,
    "reportdailyagentrollup": (
        "answered",
        "public_replies",
        "private_moves",
        "no_reply",
    ),
    "reporthourlyinbound": ("inbound",),
    "reportbucket": ("count",),
    "reportblockbucket": ("count",),
}


def _column_checks(
    schema_editor: BaseDatabaseSchemaEditor, table: str, columns: tuple[str, ...]
) -> list[str]:
    """The names of the CHECK constraints on exactly one of `columns`."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a "
            "ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "WHERE c.conrelid = %s::regclass AND c.contype = 'c' "
            "AND cardinality(c.conkey) = 1 AND a.attname = ANY(%s) "
            "ORDER BY c.conname",
            [table, list(columns)],
        )
        return [name for (name,) in cursor.fetchall()]


def to_domain(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    schema_editor.execute(f"CREATE DOMAIN {DOMAIN} AS integer")
    for model, columns in COUNTERS.items():
        table = f"helpdesk_{model}"
        drops = [
            f"DROP CONSTRAINT {quote(name)}"
            for name in _column_checks(schema_editor, table, columns)
        ]
        moves = [f"ALTER COLUMN {quote(column)} TYPE {DOMAIN}" for column in columns]
        schema_editor.execute(f"ALTER TABLE {quote(table)} {', '.join(drops + moves)}")
    schema_editor.execute(
        f"ALTER DOMAIN {DOMAIN} ADD CONSTRAINT {DOMAIN}_not_negative CHECK (VALUE >= 0)"
    )


def to_integer(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    for model, columns in COUNTERS.items():
        table = f"helpdesk_{model}"
        actions = [
            *(f"ALTER COLUMN {quote(column)} TYPE integer" for column in columns),
            *(
                f"ADD CONSTRAINT {quote(f'{table}_{column}_check')} "
                f"CHECK ({quote(column)} >= 0)"
                for column in columns
            ),
        ]
        schema_editor.execute(f"ALTER TABLE {quote(table)} {', '.join(actions)}")
    schema_editor.execute(f"DROP DOMAIN {DOMAIN}")


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0018_implied_tenant_keys"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(to_domain, to_integer)],
            state_operations=[
                migrations.AlterField(
                    model_name=model,
                    name=column,
                    field=helpdesk.models.performance.CounterField(default=0),
                )
                for model, columns in COUNTERS.items()
                for column in columns
            ],
        ),
    ]
