"""A request's trailing writes as one statement (PostgreSQL), in order elsewhere.

The inbound and reply paths end with several independent writes: the
conversation's row, care facts, rollup counters, Event rows, a refreshed
identity. Inside `write_batch()` the services that make them (helpdesk.services.
sla, rollups, events.emit_many) hand them to the active batch instead of running
them; the batch runs them at the end of the block. On PostgreSQL that is one
statement (all but the last in a data-modifying WITH, which always runs to
completion, and foreign keys are checked at commit); elsewhere one by one.

Rows written in one batch must not touch the same row twice (PostgreSQL cannot
update a row twice in one statement): rollups merges its counters per key
before it adds them (`defer_once`). Imports no helpdesk module.
"""

# ruff: noqa: S608 - table and column names come from the models; values are parameters.

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import IntegrityError, connection, models, transaction

Statement = tuple[str, list[Any]]

_active: ContextVar["WriteBatch | None"] = ContextVar("write_batch", default=None)


class WriteBatch:
    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self.finishers: dict[str, Callable[[], list[Statement]]] = {}
        self.data: dict[str, Any] = {}
        # INSERTs of one table and column list share one statement (a batch of
        # items opens many conversations, each with its care fact): by the
        # statement's head, its place, one row's VALUES group, the rows' values.
        self._inserts: dict[str, tuple[int, str, list[Any]]] = {}

    def add(self, sql: str, params: Sequence[Any]) -> None:
        self.statements.append((sql, list(params)))

    def insert(self, rows: Sequence[models.Model]) -> None:
        """INSERT the unsaved rows (one model, explicit pk or none) at the end."""
        if not rows:
            return
        model = type(rows[0])
        fields = [
            f
            for f in model._meta.concrete_fields
            if not (f.primary_key and rows[0].pk is None)
        ]
        values: list[Any] = []
        for row in rows:
            for f in fields:
                value = f.pre_save(row, add=True)
                values.append(f.get_db_prep_save(value, connection))
        one = "(" + ", ".join(["%s"] * len(fields)) + ")"
        quote = connection.ops.quote_name
        head = (
            f"INSERT INTO {quote(model._meta.db_table)} "
            f"({', '.join(quote(str(f.column)) for f in fields)}) VALUES "
        )
        merged = self._inserts.get(head)
        if merged is None:
            self._inserts[head] = (len(self.statements), one, values)
            self.statements.append(("", []))  # rendered by flush
        else:
            merged[2].extend(values)

    def update(self, row: models.Model, names: Sequence[str]) -> None:
        """UPDATE the row's `names` fields (their current values) at the end."""
        if not names:
            return
        meta = row._meta
        quote = connection.ops.quote_name
        by_name: dict[str, Any] = {}
        for f in meta.concrete_fields:
            by_name[f.name] = by_name[f.attname] = f
        fields = list({id(by_name[name]): by_name[name] for name in names}.values())
        sets = ", ".join(f"{quote(str(f.column))} = %s" for f in fields)
        values = [
            f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields
        ]
        table = quote(meta.db_table)
        where, params = f"{table}.{quote(str(meta.pk.column))} = %s", [row.pk]
        if "tenant_id" in by_name:  # explicit, besides RLS (tests audit it)
            where += f' AND {table}."tenant_id" = %s'
            params.append(row.tenant_id)  # type: ignore[attr-defined]
        self.add(f"UPDATE {table} SET {sets} WHERE {where}", [*values, *params])

    def defer_once(self, key: str, finish: Callable[[], list[Statement]]) -> None:
        """Run `finish` once at flush time and add the statements it returns."""
        self.finishers.setdefault(key, finish)

    def flush(self) -> None:
        statements = list(self.statements)
        for head, (index, one, values) in self._inserts.items():
            rows = len(values) // (one.count("%s") or 1)
            statements[index] = (head + ", ".join([one] * rows), values)
        self._inserts = {}
        for finish in self.finishers.values():
            statements.extend(finish())
        self.statements, self.finishers, self.data = [], {}, {}
        execute(statements)


def execute(statements: Sequence[Statement]) -> None:
    """Run the statements as one on PostgreSQL (all but the last in a
    data-modifying WITH), one by one elsewhere."""
    if not statements:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            *first, (last_sql, last_params) = statements
            prefix = ", ".join(f"w{n} AS ({sql})" for n, (sql, _) in enumerate(first))
            params = [value for _, values in first for value in values]
            sql = f"WITH {prefix} {last_sql}" if first else last_sql
            cursor.execute(sql, [*params, *last_params])
        else:
            for sql, params in statements:
                cursor.execute(sql, params)


def insert_with_sequences(row: models.Model, *, events: int, dedupe: bool) -> bool:
    """Allocate the tenant's next `events` event sequences and insert `row` (a
    Message) with the first as its `seq`: one statement on PostgreSQL, two
    elsewhere. `dedupe`: skip the row when its (platform, external id) is there
    already (ON CONFLICT DO NOTHING) and return False. Sets `pk` and `seq`.

    The counter row stays locked until commit (sequences follow commit order):
    lock the conversation first, as every writer does.
    """
    tenant_id = row.tenant_id  # type: ignore[attr-defined]
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_NEXT_SEQ, [tenant_id, events])
            (last,) = cursor.fetchone()
        row.seq = last - events + 1  # type: ignore[attr-defined]
        if dedupe:
            with transaction.atomic():
                try:
                    row.save(force_insert=True)
                except IntegrityError:
                    return False
        else:
            row.save(force_insert=True)
        return True
    model = type(row)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    names = [str(f.column) for f in fields]
    values: list[Any] = [
        events
        if f.attname == "seq"
        else f.get_db_prep_save(f.pre_save(row, add=True), connection)
        for f in fields
    ]
    placeholders = ", ".join(
        "(SELECT value - %s + 1 FROM s)" if f.attname == "seq" else "%s" for f in fields
    )
    conflict = (
        " ON CONFLICT (tenant_id, platform, external_id)"
        " WHERE external_id IS NOT NULL DO NOTHING"
        if dedupe
        else ""
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH s AS ({_NEXT_SEQ}) INSERT INTO {model._meta.db_table}"
            f" ({', '.join(names)}) VALUES ({placeholders}){conflict}"
            " RETURNING id, seq",
            [tenant_id, events, *values],
        )
        returned = cursor.fetchone()
    if returned is None:
        return False
    row.pk, row.seq = returned  # type: ignore[attr-defined]
    row._state.adding = False
    row._state.db = connection.alias
    return True


_NEXT_SEQ = (
    "INSERT INTO helpdesk_eventcounter (tenant_id, value) VALUES (%s, %s) "
    "ON CONFLICT (tenant_id) DO UPDATE SET value = helpdesk_eventcounter.value "
    "+ EXCLUDED.value RETURNING value"
)


def current() -> WriteBatch | None:
    """The active batch of this context, if any."""
    return _active.get()


@contextmanager
def write_batch() -> Iterator[WriteBatch]:
    """Collect the block's trailing writes; run them when it exits normally.

    Nested blocks share the outermost batch. Call inside a transaction.
    """
    outer = _active.get()
    if outer is not None:
        yield outer
        return
    batch = WriteBatch()
    token = _active.set(batch)
    try:
        yield batch
    finally:
        _active.reset(token)
    batch.flush()
