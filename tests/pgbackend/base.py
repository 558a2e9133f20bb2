"""PostgreSQL backend for tests: the runtime role cannot TRUNCATE, so flush as owner.

TransactionTestCase empties the database after each test with TRUNCATE. The runtime
role is deliberately denied TRUNCATE (reference/tenancy.md P17), so this backend
runs the flush on a short owner connection instead. Everything else is Django's.
"""

import time
from collections.abc import Iterable

import psycopg
from django.conf import settings
from django.db.backends.postgresql import base, operations
from psycopg import sql

FLUSH_ATTEMPTS = 5
# Rows Django creates once at migrate time and never again in a flushed database.
KEEP = ("django_migrations", "django_content_type", "auth_permission")


def owner_conninfo() -> str:
    owner = settings.DATABASES["migrator"]
    return psycopg.conninfo.make_conninfo(
        host=owner.get("HOST") or "127.0.0.1",
        port=owner.get("PORT") or 5432,
        user=owner["USER"],
        dbname=owner["NAME"],
    )


class DatabaseOperations(operations.DatabaseOperations):
    def execute_sql_flush(self, sql_list: Iterable[str]) -> None:
        with psycopg.connect(owner_conninfo(), autocommit=True) as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND NOT (tablename = ANY(%s))",
                    [list(KEEP)],
                )
            ]
            if not tables:
                return
            conn.execute("SET lock_timeout = '20s'")
            truncate = sql.SQL("TRUNCATE {} CASCADE").format(
                sql.SQL(", ").join(sql.Identifier(t) for t in tables)
            )
            # Browser and live tests keep a server and a worker running across
            # tests; one of their transactions can lock tables in the other
            # order, and Postgres then picks the TRUNCATE as the deadlock victim.
            for attempt in range(FLUSH_ATTEMPTS):
                try:
                    conn.execute(truncate)
                    return
                except psycopg.errors.DeadlockDetected:
                    if attempt == FLUSH_ATTEMPTS - 1:
                        raise
                    time.sleep(0.2 * (attempt + 1))


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
