"""The opening functions apply `app.tenant_id` with `set_config`, not `EXECUTE`.

0005 and 0010 applied the workspace's setting with `EXECUTE 'SET LOCAL
app.tenant_id = ' || id`: dynamic SQL, so PostgreSQL ran the raw parser, parse
analysis and the utility path on every call. Here it is a PL/pgSQL assignment,
`applied := set_config('app.tenant_id', id::text, true)`: an expression with no
table, which PL/pgSQL evaluates on its simple-expression path (no SPI query, no
executor, nothing parsed after the first call on a connection). PERFORM would
run a one-row SELECT through SPI each time, which costs more.

`set_config(name, value, true)` is what `SET LOCAL name = value` runs inside
PostgreSQL (both set the value with the transaction-local action): the value is
the same text (the id's decimal digits), it is kept after the function returns
(still no `SET` clause), it goes at COMMIT or ROLLBACK, and a rolled-back
savepoint takes it back. It is still its own step before the next statement, so
the token, membership and user reads under RLS see it.

Measured against 0010 on PostgreSQL 15 under cachegrind, the whole opening
statement with its output, one call per transaction: `earshot_open_api` 698.4k ->
688.8k instructions per call, `earshot_open_member` 410.6k -> 401.0k; in a loop of
one call per transaction about 1.2 us less backend CPU per call.

Everything else is as before, which is why the bodies are made from the previous
ones with that one line replaced (and the variable it assigns declared): the same
signatures and results, SECURITY INVOKER, no `SET` clause, EXECUTE left with
PUBLIC, the owner unchanged (CREATE OR REPLACE keeps it), 0010's touch that skips
a row another request holds. Reversing restores 0010's `earshot_open_api` and
0005's `earshot_open_member`.
"""

import importlib

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

_first = importlib.import_module("tenants.migrations.0005_request_opening_functions")
_touch = importlib.import_module("tenants.migrations.0010_open_api_skips_a_held_touch")

EXECUTED = "    EXECUTE 'SET LOCAL app.tenant_id = ' || found_tenant.id;\n"
ASSIGNED = "    applied := set_config('app.tenant_id', found_tenant.id::text, true);\n"


def _or_replace(body: str) -> str:
    return body.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def _with_set_config(body: str) -> str:
    """`body` with its EXECUTEd SET LOCAL made a `set_config` assignment, and the
    variable it assigns declared last among the function's variables."""
    if body.count(EXECUTED) != 1 or body.count("\nBEGIN\n") != 1:
        raise ValueError("not one of the opening functions of 0005 or 0010")
    declared = body.replace("\nBEGIN\n", "\n    applied text;\nBEGIN\n")
    return declared.replace(EXECUTED, ASSIGNED)


PREVIOUS = [_touch.OPEN_API, _or_replace(_first.OPEN_MEMBER)]
OPEN_API, OPEN_MEMBER = (_with_set_config(body) for body in PREVIOUS)


def set_without_execute(
    apps: StateApps, schema_editor: BaseDatabaseSchemaEditor
) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(OPEN_API)
    schema_editor.execute(OPEN_MEMBER)


def set_with_execute(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in PREVIOUS:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0010_open_api_skips_a_held_touch")]

    operations = [
        migrations.RunPython(set_without_execute, set_with_execute, elidable=False),
    ]
