"""Statements planned for their own values, never prepared.

The runtime connection binds values server-side and psycopg prepares a
statement once it has run DATABASE_PREPARE_THRESHOLD times (helpdesk.settings).
From a prepared statement's sixth execution PostgreSQL may keep its generic
plan, made without the parameters' values, for the connection's life. Where
the good plan depends on a value (a time bound that picks a few rows of an
index's order, or all of them), a statement that runs rarely enough for its
planning not to matter is better sent unprepared: the unnamed statement of the
extended protocol, planned each time with its values.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db.backends.base.base import BaseDatabaseWrapper


@contextmanager
def planned_for_its_values(db: BaseDatabaseWrapper) -> Iterator[None]:
    """Statements run inside on `db` are never prepared by psycopg (its
    prepare_threshold is off meanwhile and restored after). No-op where the
    connection prepares nothing (SQLite, client-side binding, not connected)."""
    raw = db.connection
    if raw is None or getattr(raw, "prepare_threshold", None) is None:
        yield
        return
    threshold = raw.prepare_threshold
    raw.prepare_threshold = None
    try:
        yield
    finally:
        raw.prepare_threshold = threshold
