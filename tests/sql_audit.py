"""An SQL auditor that fails any statement on a tenant table without a tenant filter.

Installed for every test through `connection.execute_wrapper` (tests/conftest.py).
It is the application-layer twin of RLS: a view, task or consumer written without
the tenant filter breaks the suite even where RLS would have hidden the bug.

Rules, per statement touching a tenant table:
- INSERT must list the `tenant_id` column;
- every `FROM "<tenant table>" [alias]` (SELECT, DELETE, sub-selects) and every
  `UPDATE "<tenant table>"` must compare `<ref>."tenant_id"` with `=` or `IN`;
- JOINs are not checked: tenant-to-tenant joins follow composite foreign keys;
- Django's deletion collector writes `WHERE "<table>"."id" IN (...)` for rows it
  collected through scoped queries; that exact shape is accepted;
- Membership may also be scoped by `user_id` (the workspace picker's own rows).
"""

import re
from collections.abc import Callable
from typing import Any

from django.apps import apps

from tenants.base import TenantModel

SKIP = re.compile(
    r"^\s*(SAVEPOINT|RELEASE|ROLLBACK|SET|SHOW|BEGIN|COMMIT|TRUNCATE|CREATE|ALTER|DROP)\b",
    re.I,
)
EXTRA_SCOPE_COLUMNS = {"tenants_membership": ("user_id",)}


class UnscopedQuery(AssertionError):
    pass


def tenant_tables() -> set[str]:
    return {
        model._meta.db_table
        for model in apps.get_models()
        if issubclass(model, TenantModel)
    }


class SqlAuditor:
    def __init__(self) -> None:
        self.tables = tenant_tables()
        self.violations: list[str] = []
        self.paused = 0
        names = "|".join(
            re.escape(t) for t in sorted(self.tables, key=len, reverse=True)
        )
        self.reference = re.compile(
            rf'\b(FROM|UPDATE|JOIN)\s+"?({names})\b"?(?:\s+(?:AS\s+)?"?(\w+)"?)?', re.I
        )
        self.insert = re.compile(
            rf'^\s*INSERT\s+INTO\s+"?({names})\b"?\s*\(([^)]*)\)', re.I
        )

    def problems(self, sql: str) -> list[str]:
        if SKIP.match(sql):
            return []
        insert = self.insert.match(sql)
        if insert:
            if "tenant_id" not in insert.group(2):
                return [f"INSERT into {insert.group(1)} without tenant_id"]
            return []
        found = []
        for match in self.reference.finditer(sql):
            keyword, table, alias = (
                match.group(1).upper(),
                match.group(2),
                match.group(3),
            )
            if keyword == "JOIN":
                continue
            if alias and alias.upper() in {
                "WHERE",
                "SET",
                "INNER",
                "LEFT",
                "ON",
                "GROUP",
                "ORDER",
                "LIMIT",
                "FOR",
                "HAVING",
                "UNION",
            }:
                alias = None
            ref = alias or table
            if self._scoped(sql, ref, table):
                continue
            found.append(f"{keyword} {table} without a tenant_id filter")
        return found

    def _scoped(self, sql: str, ref: str, table: str) -> bool:
        columns = ("tenant_id", *EXTRA_SCOPE_COLUMNS.get(table, ()))
        for column in columns:
            pattern = rf'"?{re.escape(ref)}"?\."{column}"\s*(=|IN\b)'
            if re.search(pattern, sql):
                return True
        collector = rf'WHERE\s+\(?"{re.escape(table)}"\."id"\s+IN\s*\('
        return re.search(collector, sql) is not None

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: Any,
    ) -> Any:
        if not self.paused:
            problems = self.problems(sql)
            if problems:
                message = f"{'; '.join(problems)}: {sql}"
                self.violations.append(message)
                raise UnscopedQuery(message)
        return execute(sql, params, many, context)
