"""PostgreSQL row-level security and composite tenant keys, as model constraints.

`TenantRLS` and `TenantForeignKeyConstraint` are `BaseConstraint` subclasses, so the
migration autodetector emits them for every tenant model and no table can be
created without them. On PostgreSQL they enable and force RLS with the tenant
policy (USING and WITH CHECK) and add `FOREIGN KEY (tenant_id, x_id) REFERENCES
parent (tenant_id, id)`. On SQLite (the demo) they are no-ops: the application layer
(fail-closed managers, tenant stamping) is the whole defence there.
"""

from collections.abc import Sequence
from typing import Any

from django.db import connections, migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.backends.utils import truncate_name
from django.db.models import Model
from django.db.models.constraints import BaseConstraint

TENANT_SETTING = "nullif(current_setting('app.tenant_id', true), '')::bigint"
USER_SETTING = "nullif(current_setting('app.user_id', true), '')::bigint"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class TenantRLS(BaseConstraint):
    """ENABLE + FORCE row-level security with the tenant policy on the model's table.

    `own_rows_column` adds a second, SELECT-only policy that shows a row to the user
    named by `app.user_id` (used by Membership for the workspace picker).
    """

    def __init__(self, *, name: str, own_rows_column: str | None = None) -> None:
        super().__init__(name=name)
        self.own_rows_column = own_rows_column

    def _statements(self, model: type[Model]) -> list[str]:
        table = _q(model._meta.db_table)
        policy = _q(truncate_name(self.name, 63))
        statements = [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
            f"CREATE POLICY {policy} ON {table} "
            f"USING (tenant_id = {TENANT_SETTING}) "
            f"WITH CHECK (tenant_id = {TENANT_SETTING})",
        ]
        if self.own_rows_column:
            own = _q(truncate_name(f"{self.name}_own", 63))
            statements.append(
                f"CREATE POLICY {own} ON {table} FOR SELECT "
                f"USING ({_q(self.own_rows_column)} = {USER_SETTING})"
            )
        return statements

    def constraint_sql(  # type: ignore[override]
        self, model: type[Model] | None, schema_editor: BaseDatabaseSchemaEditor | None
    ) -> str | None:
        # Inline in CREATE TABLE is impossible; run after the table exists.
        if (
            model is not None
            and schema_editor is not None
            and schema_editor.connection.vendor == "postgresql"
        ):
            schema_editor.deferred_sql.extend(self._statements(model))
        return None

    def create_sql(  # type: ignore[override]
        self, model: type[Model] | None, schema_editor: BaseDatabaseSchemaEditor | None
    ) -> str | None:
        if model is None or schema_editor is None:
            return None
        if schema_editor.connection.vendor != "postgresql":
            return None
        return "; ".join(self._statements(model))

    def remove_sql(  # type: ignore[override]
        self, model: type[Model] | None, schema_editor: BaseDatabaseSchemaEditor | None
    ) -> str | None:
        if model is None or schema_editor is None:
            return None
        if schema_editor.connection.vendor != "postgresql":
            return None
        table = _q(model._meta.db_table)
        statements = [
            f"DROP POLICY IF EXISTS {_q(truncate_name(self.name, 63))} ON {table}"
        ]
        if self.own_rows_column:
            own = _q(truncate_name(f"{self.name}_own", 63))
            statements.append(f"DROP POLICY IF EXISTS {own} ON {table}")
        statements.append(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        statements.append(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        return "; ".join(statements)

    def validate(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to validate in Python: the database enforces the policy."""

    def deconstruct(self) -> tuple[str, Sequence[Any], dict[str, Any]]:
        path, args, kwargs = super().deconstruct()
        if self.own_rows_column:
            kwargs["own_rows_column"] = self.own_rows_column
        return path, args, kwargs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TenantRLS):
            return NotImplemented
        return self.name == other.name and self.own_rows_column == other.own_rows_column

    def __hash__(self) -> int:
        return hash((self.name, self.own_rows_column))


class TenantForeignKeyConstraint(BaseConstraint):
    """`FOREIGN KEY (tenant_id, <field>_id) REFERENCES parent (tenant_id, id)`.

    A single-column FK check bypasses RLS and would let a row point at another
    tenant's row (reference/tenancy.md P10); the composite key makes that impossible.

    The constraint also indexes `(tenant_id, <field>_id)`, which PostgreSQL needs
    when a parent row is deleted (its check, and Django's cascade, look the
    children up by the key), unless `indexed_by` names an index of the model's
    Meta (`indexes`, or a `UniqueConstraint`) that starts with those two columns
    and serves the same lookups: a second index would only be maintained on every
    insert. tenants.checks holds `indexed_by` to that (tenants.E003). The
    autodetector sees a changed `indexed_by` as a new constraint (drop and add the
    key); write `AlterConstraint` and the index's DROP or CREATE by hand instead,
    as helpdesk migration 0020 does.
    """

    def __init__(self, *, field: str, name: str, indexed_by: str | None = None) -> None:
        super().__init__(name=name)
        self.field = field
        self.indexed_by = indexed_by

    def _names(self, model: type[Model]) -> tuple[str, str, str, str, str]:
        field = model._meta.get_field(self.field)
        parent = field.related_model._meta  # type: ignore[union-attr]
        column = str(field.column)  # type: ignore[union-attr]
        return (
            _q(model._meta.db_table),
            _q(truncate_name(self.name, 63)),
            _q(column),
            _q(parent.db_table),
            _q(truncate_name(f"{self.name}_ix", 63)),
        )

    def _statements(self, model: type[Model]) -> list[str]:
        table, name, column, parent, index = self._names(model)
        statements = [
            f"ALTER TABLE {table} ADD CONSTRAINT {name} "
            f"FOREIGN KEY (tenant_id, {column}) "
            f"REFERENCES {parent} (tenant_id, id) DEFERRABLE INITIALLY DEFERRED",
        ]
        if self.indexed_by is None:
            statements.append(f"CREATE INDEX {index} ON {table} (tenant_id, {column})")
        return statements

    def constraint_sql(  # type: ignore[override]
        self, model: type[Model] | None, schema_editor: BaseDatabaseSchemaEditor | None
    ) -> str | None:
        if (
            model is not None
            and schema_editor is not None
            and schema_editor.connection.vendor == "postgresql"
        ):
            schema_editor.deferred_sql.extend(self._statements(model))
        return None

    def create_sql(  # type: ignore[override]
        self, model: type[Model] | None, schema_editor: BaseDatabaseSchemaEditor | None
    ) -> str | None:
        # Deferred to the end of the migration: the parent's UNIQUE (tenant_id, id)
        # may be added by a later operation of the same migration.
        return self.constraint_sql(model, schema_editor)

    def remove_sql(  # type: ignore[override]
        self, model: type[Model] | None, schema_editor: BaseDatabaseSchemaEditor | None
    ) -> str | None:
        if model is None or schema_editor is None:
            return None
        if schema_editor.connection.vendor != "postgresql":
            return None
        table, name, _column, _parent, index = self._names(model)
        statement = f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}"
        if self.indexed_by is None:
            statement += f"; DROP INDEX IF EXISTS {index}"
        return statement

    def validate(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to validate in Python: the database enforces the key."""

    def deconstruct(self) -> tuple[str, Sequence[Any], dict[str, Any]]:
        path, args, kwargs = super().deconstruct()
        kwargs["field"] = self.field
        if self.indexed_by is not None:
            kwargs["indexed_by"] = self.indexed_by
        return path, args, kwargs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TenantForeignKeyConstraint):
            return NotImplemented
        return (
            self.name == other.name
            and self.field == other.field
            and self.indexed_by == other.indexed_by
        )

    def __hash__(self) -> int:
        return hash((self.name, self.field, self.indexed_by))


def index_sql(index: str, table: str, columns: str, where: str = "") -> str:
    """Rebuild `index` on `table` over `columns` (and a partial `where`)."""
    partial = f" WHERE {where}" if where else ""
    return (
        f"DROP INDEX IF EXISTS {index}; "
        f"CREATE INDEX {index} ON {table} ({columns}){partial}"
    )


def postgres_only(forward: str, backward: str) -> migrations.RunPython:
    """A migration operation that runs `forward` (`backward` when reversed) on
    PostgreSQL only, where the composite tenant keys and their indexes exist."""

    def run(sql: str) -> Any:
        def apply(apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.execute(sql)

        return apply

    return migrations.RunPython(run(forward), run(backward))


def runtime_role_problems(using: str = "default") -> list[str]:
    """Why the `using` connection would bypass RLS; empty when it is restricted.

    SQLite (the demo) has no RLS and is the one documented exception.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    problems = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        row = cursor.fetchone()
        superuser, bypass = row if row else (False, False)
        cursor.execute(
            "SELECT count(*) FROM pg_tables "
            "WHERE schemaname = current_schema() AND tableowner = current_user"
        )
        owned_row = cursor.fetchone()
        owned = owned_row[0] if owned_row else 0
        cursor.execute("SELECT current_user")
        user_row = cursor.fetchone()
        user = user_row[0] if user_row else "?"
    if superuser:
        problems.append(f"the runtime role {user!r} is a superuser")
    if bypass:
        problems.append(f"the runtime role {user!r} has BYPASSRLS")
    if owned:
        problems.append(f"the runtime role {user!r} owns {owned} tables")
    return problems
