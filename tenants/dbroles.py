"""Create the PostgreSQL roles RLS needs: the table owner and the runtime role.

- owner: runs migrations and owns the tables. NOSUPERUSER NOBYPASSRLS; FORCE RLS
  applies to it too.
- runtime (app): what web, ASGI and Celery processes log in as. NOSUPERUSER
  NOBYPASSRLS, not the owner, no membership in the owner role, and only
  SELECT/INSERT/UPDATE/DELETE (no TRUNCATE, no DDL), granted through default
  privileges so tables created by later migrations are covered too.
"""

from dataclasses import dataclass

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class RolePlan:
    superuser_url: str
    database: str
    owner: str
    app: str
    owner_password: str | None = None
    app_password: str | None = None


def _ensure_role(cur: psycopg.Cursor, name: str, password: str | None) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
    verb = "ALTER" if cur.fetchone() else "CREATE"
    query = sql.SQL(
        "{verb} ROLE {name} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB"
    ).format(verb=sql.SQL(verb), name=sql.Identifier(name))
    if password:
        query = sql.SQL("{} PASSWORD {}").format(query, sql.Literal(password))
    cur.execute(query)


def ensure_roles_and_database(plan: RolePlan, *, recreate: bool = False) -> None:
    """Create or update both roles and the database, then set default privileges."""
    with (
        psycopg.connect(plan.superuser_url, autocommit=True) as conn,
        conn.cursor() as cur,
    ):
        _ensure_role(cur, plan.owner, plan.owner_password)
        _ensure_role(cur, plan.app, plan.app_password)
        app = sql.Identifier(plan.app)
        cur.execute(
            sql.SQL(
                "ALTER ROLE {} SET idle_in_transaction_session_timeout = '60s'"
            ).format(app)
        )
        cur.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = '30s'").format(app))
        db = sql.Identifier(plan.database)
        if recreate:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db))
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [plan.database])
        if not cur.fetchone():
            cur.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    db, sql.Identifier(plan.owner)
                )
            )
    target = psycopg.conninfo.make_conninfo(plan.superuser_url, dbname=plan.database)
    with psycopg.connect(target, autocommit=True) as conn, conn.cursor() as cur:
        owner, app = sql.Identifier(plan.owner), sql.Identifier(plan.app)
        cur.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(owner))
        cur.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(app))
        cur.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
                "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
            ).format(owner, app)
        )
        cur.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
                "GRANT USAGE, SELECT ON SEQUENCES TO {}"
            ).format(owner, app)
        )
