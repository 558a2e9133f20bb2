"""Count the statements a request sends to PostgreSQL, BEGIN and COMMIT included.

Django's query log leaves out the transaction's own commands: psycopg sends BEGIN
by itself before the first statement of a transaction, and COMMIT when the
outermost `atomic` exits. Each is a round trip to the server all the same, so this
counter records them too, as the server sees them:

- every statement Django executes (SAVEPOINT and RELEASE included);
- a BEGIN before a statement that starts a transaction (the connection is idle
  and not in autocommit);
- a COMMIT or ROLLBACK when Django ends a transaction that sent something.

Use it in tests that run outside a test transaction (`transaction=True`): inside
one, the request's `atomic` is a savepoint, not a transaction of its own.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from psycopg.pq import TransactionStatus


@dataclass
class Statements:
    sql: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sql)

    def listing(self) -> str:
        """One line per statement, numbered, for assertion messages."""
        return "\n".join(
            f"{n:>3}. {sql[:160]}" for n, sql in enumerate(self.sql, start=1)
        )

    def reads(self, table: str) -> int:
        """How many statements name `table` (quoted, as Django writes it)."""
        return sum(f'"{table}"' in sql for sql in self.sql)


def _idle() -> bool:
    raw = connection.connection
    return raw is None or raw.info.transaction_status == TransactionStatus.IDLE


@contextmanager
def count_statements() -> Iterator[Statements]:
    """Record what the default connection sends while the block runs."""
    if connection.vendor != "postgresql":
        raise RuntimeError("count_statements measures PostgreSQL round trips")
    seen = Statements()

    def wrapper(
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        if not connection.get_autocommit() and _idle():
            seen.sql.append("BEGIN")
        seen.sql.append(sql)
        return execute(sql, params, many, context)

    wrapped: Any = connection  # _commit and _rollback are the backend's, untyped
    original_commit, original_rollback = wrapped._commit, wrapped._rollback

    def commit() -> None:
        if not _idle():
            seen.sql.append("COMMIT")
        original_commit()

    def rollback() -> None:
        if not _idle():
            seen.sql.append("ROLLBACK")
        original_rollback()

    wrapped._commit = commit
    wrapped._rollback = rollback
    try:
        with connection.execute_wrapper(wrapper):
            yield seen
    finally:
        del wrapped._commit
        del wrapped._rollback


def prepared_like(pattern: str) -> list[str]:
    """The statements psycopg prepared on the default connection (not those of
    SQL's own PREPARE), matching the LIKE `pattern`, in order."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement FROM pg_prepared_statements "
            "WHERE NOT from_sql AND statement LIKE %s ORDER BY statement",
            [pattern],
        )
        return [row[0] for row in cursor.fetchall()]
