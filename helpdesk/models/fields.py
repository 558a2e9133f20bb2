"""Column types of the care tables that PostgreSQL checks through a domain.

A PositiveIntegerField (or PositiveSmallIntegerField) is an integer column with
its own `CHECK (column >= 0)`. PostgreSQL builds a table's CHECK constraints
afresh for every statement that writes the table (each one's stored expression
read, planned and compiled) and evaluates all of them on every row it inserts or
updates, whichever columns the statement sets. The fields here are the same
integers, never negative, but on PostgreSQL the column is of a domain whose
`CHECK (VALUE >= 0)` PostgreSQL keeps parsed and planned per server process (its
type cache) and applies only where a value is stored in such a column: in an
INSERT, in the SET of an UPDATE and in an upsert's DO UPDATE. A negative value
is refused just the same (SQLSTATE 23514). Elsewhere (SQLite, the demo) they are
the plain positive fields, checks included. Migration helpdesk 0020 moved the
write path's columns to them (its docstring has the figures); the report
counters' own domain is CounterField's (migration 0019).
"""

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

# The PostgreSQL domains (migration 0020): integer and smallint, never negative.
NATURAL_DOMAIN = "helpdesk_natural"
SMALL_NATURAL_DOMAIN = "helpdesk_small_natural"


class NaturalField(models.PositiveIntegerField):  # type: ignore[type-arg]
    """An integer that is never negative: of the domain `helpdesk_natural` on
    PostgreSQL, a PositiveIntegerField elsewhere."""

    def db_type(self, connection: BaseDatabaseWrapper) -> str | None:
        if connection.vendor == "postgresql":
            return NATURAL_DOMAIN
        return super().db_type(connection)

    def db_check(self, connection: BaseDatabaseWrapper) -> str | None:
        if connection.vendor == "postgresql":
            return None  # the domain's
        return super().db_check(connection)


class SmallNaturalField(models.PositiveSmallIntegerField):  # type: ignore[type-arg]
    """A small integer that is never negative: of the domain
    `helpdesk_small_natural` on PostgreSQL, a PositiveSmallIntegerField
    elsewhere."""

    def db_type(self, connection: BaseDatabaseWrapper) -> str | None:
        if connection.vendor == "postgresql":
            return SMALL_NATURAL_DOMAIN
        return super().db_type(connection)

    def db_check(self, connection: BaseDatabaseWrapper) -> str | None:
        if connection.vendor == "postgresql":
            return None  # the domain's
        return super().db_check(connection)
