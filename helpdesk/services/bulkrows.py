"""Many rows' changed fields in one UPDATE that reads them from arrays.

Django's `bulk_update` builds one `CASE WHEN id = ... THEN ...` per row and field:
for a batch of a few hundred rows that is most of the batch's CPU (Django resolves
every `When` as an expression). On PostgreSQL, `update_rows` sends one array per
column instead and joins them to the table with `unnest` (the statement's size
and its cost in Python grow with the values only). Elsewhere it is `bulk_update`.
Imports no helpdesk module.
"""

# ruff: noqa: S608 - table and column names come from the models; values are parameters.

from collections.abc import Sequence
from typing import Any

from django.db import connection, models


def update_rows(rows: Sequence[models.Model], names: Sequence[str]) -> None:
    """UPDATE the `names` fields of `rows` (one model, saved rows) to their current
    values, in one statement. A tenant-owned model's rows are matched on their
    tenant too (the statement names `tenant_id`, besides RLS)."""
    if not rows or not names:
        return
    model = type(rows[0])
    if connection.vendor != "postgresql":
        model._base_manager.bulk_update(rows, list(names))
        return
    meta = model._meta
    by_name: dict[str, models.Field[Any, Any]] = {}
    for f in meta.concrete_fields:
        by_name[f.name] = by_name[f.attname] = f
    fields = list({id(by_name[name]): by_name[name] for name in names}.values())
    columns = [meta.pk, *fields]
    arrays = [
        [f.get_db_prep_save(getattr(row, f.attname), connection) for row in rows]
        for f in columns
    ]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    pk = quote(str(meta.pk.column))
    aliases = [f"c{n}" for n in range(len(columns))]
    unnest = ", ".join(f"%s::{f.db_type(connection)}[]" for f in columns)
    sets = ", ".join(
        f"{quote(str(f.column))} = v.{alias}"
        for f, alias in zip(fields, aliases[1:], strict=True)
    )
    # `t.id = ANY(...)` as well as the join: the rows are found through the
    # primary key whatever the planner thinks of unnest's rows (on tables never
    # analyzed it looped over all of the tenant's rows once per value).
    key = f"%s::{meta.pk.db_type(connection)}[]"
    where, params = f"t.{pk} = v.c0 AND t.{pk} = ANY({key})", [arrays[0]]
    tenant = by_name.get("tenant_id")
    if tenant is not None and not tenant.null and tenant not in fields:
        where += ' AND t."tenant_id" = ANY(%s::bigint[])'
        params.append(sorted({row.tenant_id for row in rows}))  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS t SET {sets} FROM unnest({unnest})"
            f" AS v({', '.join(aliases)}) WHERE {where}",
            [*arrays, *params],
        )
