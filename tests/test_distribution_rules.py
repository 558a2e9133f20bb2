"""The rules that let the schema be distributed by tenant (Citus, README "Where one
machine is not enough"), checked in PostgreSQL's catalog after the migrations.

A tenant table is one with a `tenant_id` column, except the global tables below.
- Every unique key of a tenant table starts with `tenant_id`, and the table has
  UNIQUE (tenant_id, id): the key a distributed table is addressed by.
- The primary key is the one known exception: it is Django's surrogate `(id)` on
  every table (see PRIMARY_KEY_EXCEPTION).
- A foreign key between tenant tables includes `tenant_id` on both sides, so a
  row can only point at a row of its own tenant and both live on the same shard.
- A tenant table may point at a global table (a reference table when
  distributed), never the other way round.
"""

from collections import defaultdict

import pytest
from django.apps import apps
from django.db import connection

from tenants.models import TenantModel

pytestmark = pytest.mark.django_db

# Tables with a tenant_id that stay global, and why.
GLOBAL_TABLES = {
    # Routes a platform's webhook (platform, account id) to its workspace before
    # any workspace is known; unique per platform account across all tenants.
    "social_channelroute": "looked up by platform account before the tenant is known",
    # Stored at the webhook's acknowledgement, deduplicated per (platform,
    # event_key) before its tenant is resolved; the tenant is filled in later.
    "social_webhookevent": "deduplicated by platform event key before routing",
}
# Django's models have a single-column surrogate primary key (id, a bigint from
# one sequence, so unique across tenants). Every tenant table also has UNIQUE
# (tenant_id, id), which every composite foreign key references; making that the
# primary key is the step of a move to Citus, not a change worth making while
# the schema lives on one PostgreSQL (README).
PRIMARY_KEY_EXCEPTION = ["id"]

_COLUMNS = """
    SELECT array_agg(a.attname ORDER BY k.ord)
    FROM unnest({keys}) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.attnum
"""


def _rows(sql: str) -> list[tuple[object, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def _tables_with_tenant_id() -> set[str]:
    rows = _rows(
        """
        SELECT c.relname FROM pg_class c
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
        WHERE c.relkind IN ('r', 'p') AND c.relnamespace = 'public'::regnamespace
        """
    )
    return {str(name) for (name,) in rows}


def _tenant_tables() -> set[str]:
    return _tables_with_tenant_id() - set(GLOBAL_TABLES)


def _unique_keys() -> dict[str, list[tuple[str, list[str], bool]]]:
    """table -> (index name, columns, is primary) of each unique index."""
    rows = _rows(
        f"""
        SELECT t.relname, ic.relname, ({
            _COLUMNS.format(keys="i.indkey::int2[]", rel="i.indrelid")
        }), i.indisprimary
        FROM pg_index i
        JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indisunique AND t.relnamespace = 'public'::regnamespace
        """
    )
    keys: dict[str, list[tuple[str, list[str], bool]]] = defaultdict(list)
    for table, index, columns, primary in rows:
        keys[str(table)].append((str(index), list(columns), bool(primary)))  # type: ignore[call-overload]
    return keys


def _foreign_keys() -> list[tuple[str, str, str, list[str], list[str]]]:
    """(table, constraint, referenced table, columns, referenced columns)."""
    rows = _rows(
        f"""
        SELECT t.relname, con.conname, r.relname,
            ({_COLUMNS.format(keys="con.conkey", rel="con.conrelid")}),
            ({_COLUMNS.format(keys="con.confkey", rel="con.confrelid")})
        FROM pg_constraint con
        JOIN pg_class t ON t.oid = con.conrelid
        JOIN pg_class r ON r.oid = con.confrelid
        WHERE con.contype = 'f' AND con.connamespace = 'public'::regnamespace
        """
    )
    return [
        (str(t), str(name), str(r), list(cols), list(ref))  # type: ignore[call-overload]
        for t, name, r, cols, ref in rows
    ]


def test_tenant_tables_are_the_tenant_models() -> None:
    models = {m._meta.db_table for m in apps.get_models() if issubclass(m, TenantModel)}
    assert _tenant_tables() == models
    assert len(models) == 45


def test_unique_keys_of_tenant_tables_start_with_tenant_id() -> None:
    keys = _unique_keys()
    wrong = [
        (table, index, columns)
        for table in sorted(_tenant_tables())
        for index, columns, primary in keys[table]
        if columns[0] != "tenant_id" and not primary
    ]
    assert wrong == []


def test_tenant_tables_have_the_tenant_key_and_only_the_known_primary_key() -> None:
    keys = _unique_keys()
    without_tenant_key = [
        table
        for table in sorted(_tenant_tables())
        if ["tenant_id", "id"] not in [columns for _, columns, _ in keys[table]]
    ]
    primary_keys = {
        table: columns
        for table in _tenant_tables()
        for _, columns, primary in keys[table]
        if primary
    }
    assert without_tenant_key == []
    assert {
        table: columns
        for table, columns in primary_keys.items()
        if columns[0] != "tenant_id" and columns != PRIMARY_KEY_EXCEPTION
    } == {}
    assert len(primary_keys) == len(_tenant_tables())


def test_foreign_keys_between_tenant_tables_include_tenant_id() -> None:
    tenant_tables = _tenant_tables()
    wrong = [
        (table, name, list(zip(columns, referenced, strict=True)))
        for table, name, target, columns, referenced in _foreign_keys()
        if table in tenant_tables
        and target in tenant_tables
        and ("tenant_id", "tenant_id") not in zip(columns, referenced, strict=True)
    ]
    assert wrong == []


def test_no_global_table_points_into_a_tenant_table() -> None:
    tenant_tables = _tenant_tables()
    wrong = [
        (table, name, target)
        for table, name, target, _, _ in _foreign_keys()
        if table not in tenant_tables and target in tenant_tables
    ]
    assert wrong == []


def test_tenant_tables_point_only_at_tenant_or_reference_tables() -> None:
    tenant_tables = _tenant_tables()
    targets = {
        target
        for table, _, target, _, _ in _foreign_keys()
        if table in tenant_tables and target not in tenant_tables
    }
    # The workspace itself (co-located: tenant.id is every row's tenant_id) and
    # the people, who belong to several workspaces (a reference table).
    assert targets == {"tenants_tenant", "tenants_user"}
