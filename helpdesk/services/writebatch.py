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
before it adds them (`defer_once`). Imports no helpdesk module but bulkrows
(which imports none).

On PostgreSQL a merged INSERT whose rows are all plain values, each of a type
JSON carries exactly (bulkrows' checks), reads its rows from one JSON array
parameter (`json_populate_recordset`, the table's own column types) instead of a
VALUES list of one placeholder per value, which psycopg splits and quotes in
Python; rows with `Sql` values, and other values, keep the VALUES list.

`insert` reads a row's values by a plan worked out once per model (`_Plan`):
a field whose `pre_save` is Field's own (a date field's without auto_now) and
whose descriptor is Django's column one is read from the row's `__dict__`
(all of them in one `itemgetter` call), any other through its `pre_save`; a
value whose type a check passes outright is not checked by a call.

`WriteBatch.sequences` (PostgreSQL) allocates the tenant's event sequences in
that one statement: the tenant's counter row, which every write of the tenant
waits for from its allocation to COMMIT, is then held for one round trip and
the COMMIT. The batch's rows name the numbers with `Sequences.at(n)` (a `Sql`
value); `Sequences.first` is known once the batch has run. A service whose
batch is its transaction's last write sets `last_write`: inside
`tenants.last_write.commit_with_last_write()` the statement and COMMIT then go
in one pipeline, and the row is released as soon as COMMIT completes.
"""

# ruff: noqa: S608 - table and column names come from the models; values are parameters.

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from operator import itemgetter
from typing import Any
from uuid import UUID

import orjson
from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    connection,
    connections,
    models,
    transaction,
)
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute

from helpdesk.services import bulkrows
from helpdesk.services.bulkrows import json_checks
from tenants.last_write import execute_last

Statement = tuple[str, list[Any]]


class Sql:
    """A column value written as an SQL expression (with its parameters) in a
    batch's INSERT, e.g. a sequence taken in the batch's own statement."""

    def __init__(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.sql, self.params = sql, list(params)


class Sequences:
    """`count` event sequences of a tenant, allocated by the batch's statement.

    `at(n)` is the n-th number (0-based) as an SQL value for the batch's rows;
    `first` is set when the batch has run, and then each `then` callback gets it.
    """

    def __init__(self, batch: "WriteBatch", tenant_id: int, count: int) -> None:
        self.batch, self.tenant_id, self.count = batch, tenant_id, count
        self.first: int | None = None
        self.callbacks: list[Callable[[int], None]] = []

    def at(self, n: int) -> Sql:
        return Sql("(SELECT value - %s FROM s)", [self.count - 1 - n])

    def at_ordinal(self, ordinal: str) -> Sql:
        """`at(ordinal - 1)` for an SQL expression counting rows from 1 (e.g. a
        set-returning function's WITH ORDINALITY column)."""
        return Sql(f"(SELECT value - %s + {ordinal} FROM s)", [self.count])

    def then(self, callback: Callable[[int], None]) -> None:
        self.callbacks.append(callback)


_active: ContextVar["WriteBatch | None"] = ContextVar("write_batch", default=None)


class WriteBatch:
    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self.finishers: dict[str, Callable[[], list[Statement]]] = {}
        self.data: dict[str, Any] = {}
        # INSERTs of one table and column list share one statement (a batch of
        # items opens many conversations, each with its care fact): by the
        # statement's head, its rows (rendered by flush).
        self._inserts: dict[str, _Merged] = {}
        self.allocation: Sequences | None = None
        # Set by a service when the batch's statement is its transaction's last
        # write: inside tenants.last_write.commit_with_last_write() the statement
        # then goes with COMMIT (the counter row is released at once).
        self.last_write = False

    def sequences(self, tenant_id: int, count: int) -> Sequences:
        """Allocate the tenant's next `count` event sequences in this batch's
        statement (PostgreSQL only; once per batch). The counter row is locked
        from that statement to COMMIT, as with `insert_with_sequences`."""
        if connection.vendor != "postgresql":
            raise NotImplementedError("sequences in the batch need PostgreSQL")
        if self.allocation is not None:
            raise RuntimeError("one allocation per batch")
        self.allocation = Sequences(self, tenant_id, count)
        return self.allocation

    def add(self, sql: str, params: Sequence[Any]) -> None:
        self.statements.append((sql, list(params)))

    def insert(
        self,
        rows: Sequence[models.Model],
        *,
        sql: Sequence[dict[str, Sql]] = (),
    ) -> None:
        """INSERT the unsaved rows (one model, explicit pk or none) at the end.

        `sql`: per row, the attnames written as SQL expressions instead of the
        row's values (e.g. `Sequences.at(n)`)."""
        if not rows:
            return
        vendor = connection.vendor  # once: the proxy's look-up is not free
        plan = _plan(type(rows[0]), rows[0].pk is not None, vendor)
        head = plan.head
        merged = self._inserts.get(head)
        if merged is None:
            merged = self._inserts[head] = _Merged(
                len(self.statements), plan.model, list(plan.fields), head, vendor
            )
            self.statements.append(("", []))  # rendered by flush
        for n, row in enumerate(rows):
            exprs = sql[n] if n < len(sql) else None
            if exprs:
                merged.keep_values_list()
                values, written = plan.values_with(row, exprs)
                merged.rows.append(merged.prepared(values, written))
                continue
            values = plan.values(row)
            checks = merged.checks
            if checks is not None:
                # A value of the type a check names passes it (no call).
                for value, check, exact in zip(values, checks, plan.exact, strict=True):
                    if value is None or type(value) is exact:
                        continue
                    if not check(value):
                        break
                else:  # every value JSON carries exactly: prepared by flush
                    merged.rows.append(values)
                    continue
                merged.keep_values_list()  # this row's values, too (below)
            merged.rows.append(merged.prepared(values))

    def update(self, row: models.Model, names: Sequence[str]) -> None:
        """UPDATE the row's `names` fields (their current values) at the end."""
        if not names:
            return
        vendor = connection.vendor  # once: the proxy's look-up is not free
        sql, fields, tenant = _update_shape(type(row), tuple(names), vendor)
        if vendor == "postgresql":
            values = []
            for f, as_is in fields:
                value = getattr(row, f.attname)
                if as_is is None or not (value is None or as_is(value)):
                    value = f.get_db_prep_save(value, connection)
                values.append(value)
        else:
            values = [
                f.get_db_prep_save(getattr(row, f.attname), connection)
                for f, _ in fields
            ]
        values.append(row.pk)
        if tenant:  # explicit, besides RLS (tests audit it)
            values.append(row.tenant_id)  # type: ignore[attr-defined]
        self.add(sql, values)

    def defer_once(self, key: str, finish: Callable[[], list[Statement]]) -> None:
        """Run `finish` once at flush time and add the statements it returns."""
        self.finishers.setdefault(key, finish)

    def flush(self) -> None:
        statements = list(self.statements)
        for head, merged in self._inserts.items():
            statements[merged.index] = merged.render(head)
        self._inserts = {}
        for finish in self.finishers.values():
            statements.extend(finish())
        allocation = self.allocation
        self.statements, self.finishers, self.data = [], {}, {}
        self.allocation = None
        if allocation is None:
            execute(statements)
            return
        # The counter first (every other part reads it), the rest as CTEs.
        parts = [("s AS (" + _NEXT_SEQ + ")", [allocation.tenant_id, allocation.count])]
        parts += [
            (f"w{n} AS ({sql})", params) for n, (sql, params) in enumerate(statements)
        ]
        sql = "WITH " + ", ".join(sql for sql, _ in parts) + " SELECT value FROM s"
        params = [value for _, params in parts for value in params]
        row = execute_last(sql, params, commit=self.last_write)
        assert row is not None  # noqa: S101 - SELECT value FROM s: one row
        (last,) = row
        allocation.first = last - allocation.count + 1
        for callback in allocation.callbacks:
            callback(allocation.first)


@cache
def _fields_by_name(model: type[models.Model]) -> dict[str, Any]:
    """`model`'s concrete fields by name and by attname."""
    by_name: dict[str, Any] = {}
    for f in model._meta.concrete_fields:
        by_name[f.name] = by_name[f.attname] = f
    return by_name


# (model, names, vendor) -> an UPDATE's text, its fields with their `_as_is`
# (None elsewhere than PostgreSQL), and whether it names the tenant too.
_UPDATES: dict[
    tuple[type[models.Model], tuple[str, ...], str],
    tuple[str, list[tuple[Any, Callable[[object], bool] | None]], bool],
] = {}


def _update_shape(
    model: type[models.Model], names: tuple[str, ...], vendor: str
) -> tuple[str, list[tuple[Any, Callable[[object], bool] | None]], bool]:
    """`WriteBatch.update`'s statement for `names` of `model` as `vendor` writes
    it, worked out once per model, names and vendor (the callers' sets of names
    are few): its text, its fields (a field named twice, by name and attname,
    once) with their `_field_as_is` on PostgreSQL, and whether the row's
    tenant is a parameter after its key."""
    key = (model, names, vendor)
    shape = _UPDATES.get(key)
    if shape is not None:
        return shape
    by_name = _fields_by_name(model)
    fields = list({id(by_name[name]): by_name[name] for name in names}.values())
    quote = connection.ops.quote_name
    sets = ", ".join(f"{quote(str(f.column))} = %s" for f in fields)
    table = quote(model._meta.db_table)
    where = f"{table}.{quote(str(model._meta.pk.column))} = %s"
    tenant = "tenant_id" in by_name
    if tenant:
        where += f' AND {table}."tenant_id" = %s'
    postgresql = vendor == "postgresql"
    shape = (
        f"UPDATE {table} SET {sets} WHERE {where}",
        [(f, _field_as_is(f) if postgresql else None) for f in fields],
        tenant,
    )
    if len(_UPDATES) < 1024:
        _UPDATES[key] = shape
    return shape


@cache
def _shape(
    model: type[models.Model], with_pk: bool, vendor: str
) -> tuple[tuple[Any, ...], str]:
    """The fields an INSERT of `model`'s rows writes (the primary key only
    `with_pk`) and the INSERT's head, as `vendor` quotes it."""
    fields = tuple(
        f for f in model._meta.concrete_fields if with_pk or not f.primary_key
    )
    quote = connection.ops.quote_name
    head = (
        f"INSERT INTO {quote(model._meta.db_table)} "
        f"({', '.join(quote(str(f.column)) for f in fields)})"
    )
    return fields, head


_PLAIN_PRE_SAVES = (
    models.Field.pre_save,
    models.DateField.pre_save,
    models.DateTimeField.pre_save,
    models.TimeField.pre_save,
)
_PLAIN_DESCRIPTORS = (DeferredAttribute, ForeignKeyDeferredAttribute)


def _reads_plainly(model: type[models.Model], field: Any) -> bool:
    """Whether `field.pre_save(row, add=True)` is `getattr(row, attname)` and
    that is `row.__dict__[attname]` when the row holds it: Field's own pre_save
    (the date fields' without auto_now/auto_now_add) and Django's own column
    descriptor on the model."""
    if type(field).pre_save not in _PLAIN_PRE_SAVES:
        return False
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return False
    descriptor = inspect.getattr_static(model, field.attname, None)
    return type(descriptor) in _PLAIN_DESCRIPTORS


# bulkrows' checks that pass every value of exactly this type.
_PASSES_ALL_OF: dict[object, type] = {
    bulkrows._text: str,
    bulkrows._integer: int,
    bulkrows._boolean: bool,
    bulkrows._number: int,
    bulkrows._uuid: UUID,
}


class _Plan:
    """An INSERT of `model`'s rows (`_shape`) and how a row's values are read:
    per field its attname and whether it is read from the row's `__dict__`
    (else through the field's `pre_save`); on PostgreSQL, per field the type
    whose values pass its check (`_checks`) without calling it."""

    def __init__(
        self,
        model: type[models.Model],
        fields: tuple[Any, ...],
        head: str,
        vendor: str,
    ) -> None:
        self.model, self.fields, self.head = model, fields, head
        checks = _checks(head, fields) if vendor == "postgresql" else None
        self.exact: list[type | None] = (
            [None] * len(fields)
            if checks is None
            else [_PASSES_ALL_OF.get(check) for check in checks]
        )
        self.attnames = [str(f.attname) for f in fields]
        self.plain = [_reads_plainly(model, f) for f in fields]
        # Every value from the row's __dict__ in one C call (KeyError when the
        # row lacks one: then field by field, as pre_save would).
        self.getter: Callable[[dict[str, Any]], tuple[Any, ...]] | None = None
        if fields and all(self.plain):
            if len(fields) == 1:
                (name,) = self.attnames
                self.getter = lambda d: (d[name],)
            else:
                self.getter = itemgetter(*self.attnames)
        self.items = list(zip(fields, self.attnames, self.plain, strict=True))
        self.place = {name: i for i, name in enumerate(self.attnames)}

    def values(self, row: models.Model) -> list[Any]:
        """The row's values in `fields`' order, as `pre_save(row, add=True)`."""
        getter = self.getter
        if getter is not None:
            try:
                return list(getter(row.__dict__))
            except KeyError:
                pass
        d = row.__dict__
        return [
            d[attname] if plain and attname in d else f.pre_save(row, add=True)
            for f, attname, plain in self.items
        ]

    def values_with(
        self, row: models.Model, exprs: dict[str, Sql]
    ) -> tuple[list[Any], set[int]]:
        """`values`, but the `exprs` (by attname, None: the row's value) in
        their fields' places, and those places (whose fields are not read)."""
        place = self.place
        written = {
            place[name]
            for name, expr in exprs.items()
            if expr is not None and name in place
        }
        values: list[Any] | None = None
        getter = self.getter
        if getter is not None:  # every field plain: reading one has no effect
            try:
                values = list(getter(row.__dict__))
            except KeyError:
                values = None
        if values is None:
            d = row.__dict__
            values = [
                None
                if i in written
                else d[attname]
                if plain and attname in d
                else f.pre_save(row, add=True)
                for i, (f, attname, plain) in enumerate(self.items)
            ]
        for i in written:
            values[i] = exprs[self.attnames[i]]
        return values, written


@cache
def _plan(model: type[models.Model], with_pk: bool, vendor: str) -> _Plan:
    """`_shape`'s INSERT of `model` with the way its rows' values are read."""
    fields, head = _shape(model, with_pk, vendor)
    return _Plan(model, fields, head, vendor)


_CHECKS: dict[str, list[Callable[[object], bool]] | None] = {}


def _checks(head: str, fields: Sequence[Any]) -> list[Callable[[object], bool]] | None:
    """bulkrows.json_checks of an INSERT's fields, worked out once per INSERT
    head (a merged INSERT per model and request asked for them each time:
    about 40 us)."""
    try:
        return _CHECKS[head]
    except KeyError:
        checks = _CHECKS[head] = json_checks(fields)
        return checks


_AS_IS: dict[str, list[Callable[[object], bool] | None]] = {}


def _as_is_all(
    head: str, fields: Sequence[Any]
) -> list[Callable[[object], bool] | None]:
    """`_as_is` of an INSERT's fields (PostgreSQL), worked out once per head."""
    try:
        return _AS_IS[head]
    except KeyError:
        as_is = _AS_IS[head] = [_as_is(f) for f in fields]
        return as_is


_FIELD_AS_IS: dict[int, Callable[[object], bool] | None] = {}


def _field_as_is(field: Any) -> Callable[[object], bool] | None:
    """`_as_is(field)` (PostgreSQL), worked out once per field (by identity:
    a field's own hash is worked out on every call)."""
    try:
        return _FIELD_AS_IS[id(field)]
    except KeyError:
        as_is = _FIELD_AS_IS[id(field)] = _as_is(field)
        return as_is


def _prepare_all(fields: Sequence[Any]) -> list[Callable[[object], bool] | None]:
    return [None] * len(fields)


def _prepared(field: Any, as_is: Callable[[object], bool] | None, value: Any) -> Any:
    """The value as the field writes it: as it is when `as_is` says the field's
    preparation would return it unchanged, else prepared by the field."""
    if as_is is not None and (value is None or as_is(value)):
        return value
    return field.get_db_prep_save(value, connection)


class _Merged:
    """The rows of one merged INSERT: per row, its values in `fields`' order.

    While `checks` is set (PostgreSQL), every value so far is the field's own
    value, None or of a type JSON carries exactly (bulkrows' checks), and the
    rows go as one JSON document; else each value is prepared for the database
    or an `Sql` value, and the rows go as a VALUES list."""

    def __init__(
        self,
        index: int,
        model: type[models.Model],
        fields: list[Any],
        head: str,
        vendor: str,
    ) -> None:
        self.index, self.model, self.fields = index, model, fields
        self.rows: list[list[Any]] = []
        self.checks: list[Callable[[object], bool]] | None
        self.checks, self.as_is, self.as_is_exact = _merged_shape(
            head, fields, vendor == "postgresql"
        )

    def keep_values_list(self) -> None:
        """Leave the JSON document: prepare the values kept so far."""
        if self.checks is None:
            return
        self.checks = None
        fields, as_is = self.fields, self.as_is
        for values in self.rows:
            values[:] = [
                _prepared(f, check, value)
                for f, check, value in zip(fields, as_is, values, strict=True)
            ]

    def prepared(self, values: list[Any], written: set[int] | None = None) -> list[Any]:
        """A row's values prepared for the database (`_prepared`), but those at
        the `written` places (SQL expressions) as they are."""
        db = connections[DEFAULT_DB_ALIAS]  # once (not through the proxy)
        return [
            value
            if (written and i in written)
            or (
                as_is is not None
                and (value is None or type(value) is exact or as_is(value))
            )
            else f.get_db_prep_save(value, db)
            for i, (f, as_is, exact, value) in enumerate(
                zip(self.fields, self.as_is, self.as_is_exact, values, strict=True)
            )
        ]

    def render(self, head: str) -> Statement:
        if self.checks is not None:
            document = self._json(head)
            if document is not None:
                return _json_insert(head, self.model, self.fields), [document]
            self.keep_values_list()
        groups: list[str] = []
        params: list[Any] = []
        for values in self.rows:
            marks = []
            for value in values:
                if isinstance(value, Sql):
                    params.extend(value.params)
                    marks.append(value.sql)
                else:
                    params.append(value)
                    marks.append("%s")
            groups.append("(" + ", ".join(marks) + ")")
        return f"{head} VALUES " + ", ".join(groups), params

    def _json(self, head: str) -> str | None:
        """The rows as a JSON array of objects keyed by column (None when orjson
        refuses a value, e.g. an integer past 64 bits)."""
        columns = _columns(head, self.fields)
        try:
            return orjson.dumps(
                [dict(zip(columns, values, strict=True)) for values in self.rows]
            ).decode()
        except (TypeError, orjson.JSONEncodeError):
            return None


_MergedShape = tuple[
    list[Callable[[object], bool]] | None,
    list[Callable[[object], bool] | None],
    list[type | None],
]
_MERGED_SHAPES: dict[tuple[str, bool], _MergedShape] = {}


def _merged_shape(head: str, fields: Sequence[Any], postgresql: bool) -> _MergedShape:
    """A merged INSERT's `checks`, `as_is` and `as_is_exact` (_Merged), worked
    out once per head and vendor (the care fact's and the conversation's each
    request: about 70 look-ups). Shared lists: nobody changes them in place
    (`keep_values_list` drops `checks`, it does not empty it)."""
    key = (head, postgresql)
    shape = _MERGED_SHAPES.get(key)
    if shape is None:
        # Per field, when a value may go as it is (PostgreSQL's own preparation
        # returns it unchanged); elsewhere every value is prepared.
        as_is = _as_is_all(head, fields) if postgresql else _prepare_all(fields)
        shape = _MERGED_SHAPES[key] = (
            _checks(head, fields) if postgresql else None,
            as_is,
            # Per field, the type whose values `as_is` passes without a call.
            [_AS_IS_EXACT.get(check) for check in as_is],
        )
    return shape


_COLUMNS: dict[str, list[str]] = {}


def _columns(head: str, fields: Sequence[Any]) -> list[str]:
    """The column names of an INSERT's fields, worked out once per head (per
    flush they cost about 20 us for a conversation's 50)."""
    columns = _COLUMNS.get(head)
    if columns is None:
        columns = _COLUMNS[head] = [str(f.column) for f in fields]
    return columns


_JSON_INSERTS: dict[str, str] = {}


def _json_insert(head: str, model: type[models.Model], fields: Sequence[Any]) -> str:
    """The INSERT with `head` that reads its rows from one JSON document (the
    statement's one parameter), worked out once per head."""
    sql = _JSON_INSERTS.get(head)
    if sql is None:
        quote = connection.ops.quote_name
        table = quote(model._meta.db_table)
        picked = ", ".join(f"v.{quote(str(f.column))}" for f in fields)
        # In the rows' order, as VALUES would (serial ids follow it).
        sql = _JSON_INSERTS[head] = (
            f"{head} SELECT {picked} FROM json_populate_recordset("
            f"NULL::{table}, %s::json) WITH ORDINALITY AS v"
            " ORDER BY v.ordinality"
        )
    return sql


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


def insert_with_sequences(
    row: models.Model, *, events: int, dedupe: bool, cursor: Any = None
) -> bool:
    """Allocate the tenant's next `events` event sequences and insert `row` (a
    Message) with the first as its `seq`: one statement on PostgreSQL, two
    elsewhere. `dedupe`: skip the row when its (platform, external id) is there
    already (ON CONFLICT DO NOTHING) and return False. Sets `pk` and `seq`.

    The counter row stays locked until commit (sequences follow commit order):
    lock the conversation first, as every writer does. `events=0` (PostgreSQL):
    no sequences, the row keeps its `seq` (a write batch's `Sequences` sets it
    later, in the request's last statement). `cursor` (PostgreSQL): the
    caller's Django cursor, left open (else one of its own).
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
    counted = events > 0
    sql, items = _sequenced_insert(type(row), counted, dedupe)
    values = _row_values(row, items, events if counted else None)
    params = [tenant_id, events, *values] if counted else values
    if cursor is None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            returned = cursor.fetchone()
    else:
        cursor.execute(sql, params)
        returned = cursor.fetchone()
    if returned is None:
        return False
    inserted(row, *returned)
    return True


def _row_values(
    row: models.Model, items: Sequence["_SequencedField"], events: int | None
) -> list[Any]:
    """The row's parameters for `items` (_sequenced_insert's or
    _deduped_insert's): `events` for `seq` when the statement takes the
    sequences (not None)."""
    values: list[Any] = []
    d = row.__dict__
    db = connections[DEFAULT_DB_ALIAS]  # once (not through the proxy)
    for f, attname, plain, check, exact in items:
        if events is not None and attname == "seq":
            values.append(events)
            continue
        # The row's value as pre_save(add=True) reads it; one the field would
        # pass as it is (None or a plain type) goes as it is, anything else
        # through the field's own preparation.
        value = d[attname] if plain and attname in d else f.pre_save(row, add=True)
        if check is not None and (
            value is None or type(value) is exact or check(value)
        ):
            values.append(value)
        else:
            values.append(f.get_db_prep_save(value, db))
    return values


def inserted(row: models.Model, pk: Any, seq: Any) -> None:
    """Mark `row` saved with the key and `seq` its INSERT returned."""
    row.pk, row.seq = pk, seq  # type: ignore[attr-defined]
    row._state.adding = False
    row._state.db = connection.alias


def deduped_insert(
    row: models.Model, *, source: str, written: dict[str, str]
) -> Statement:
    """`insert_with_sequences(row, events=0, dedupe=True)`'s INSERT as a part
    of a larger statement (PostgreSQL): the row once for each row of the WITH
    query `source` (once, or not at all when it has none), the attnames in
    `written` taken from the SQL expressions over `source` they map to, not
    from the row; RETURNING id, seq (nothing for a duplicate). The caller
    applies the returned pair with `inserted`."""
    sql, items = _deduped_insert(type(row), source, tuple(written.items()))
    return sql, _row_values(row, items, None)


@cache
def _deduped_insert(
    model: type[models.Model], source: str, written: tuple[tuple[str, str], ...]
) -> tuple[str, list["_SequencedField"]]:
    """deduped_insert's statement and the fields whose values it takes from
    the row (as _sequenced_insert's)."""
    by_attname = dict(written)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    names = ", ".join(str(f.column) for f in fields)
    picked = ", ".join(by_attname.get(f.attname, "%s") for f in fields)
    sql = (
        f"INSERT INTO {model._meta.db_table} ({names}) SELECT {picked}"
        f" FROM {source}{_DEDUPE} RETURNING id, seq"
    )
    _, items = _sequenced_insert(model, False, True)
    return sql, [item for item in items if item[1] not in by_attname]


_DEDUPE = (
    " ON CONFLICT (tenant_id, platform, external_id)"
    " WHERE external_id IS NOT NULL DO NOTHING"
)

_SequencedField = tuple[Any, str, bool, Callable[[object], bool] | None, type | None]


@cache
def _sequenced_insert(
    model: type[models.Model], counted: bool, dedupe: bool
) -> tuple[str, list[_SequencedField]]:
    """insert_with_sequences' statement for `model` (PostgreSQL), and per field
    it writes: the field, its attname, whether pre_save reads it from the row's
    `__dict__` (`_reads_plainly`), the check that a value needs no preparation
    (None: always prepared) and the type whose values pass that check."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    names = [str(f.column) for f in fields]
    placeholders = ", ".join(
        "(SELECT value - %s + 1 FROM s)" if counted and f.attname == "seq" else "%s"
        for f in fields
    )
    conflict = _DEDUPE if dedupe else ""
    sql = (
        (f"WITH s AS ({_NEXT_SEQ}) " if counted else "")
        + f"INSERT INTO {model._meta.db_table}"
        f" ({', '.join(names)}) VALUES ({placeholders}){conflict}"
        " RETURNING id, seq"
    )
    items: list[_SequencedField] = []
    for f in fields:
        check = _as_is(f)
        plain = _reads_plainly(model, f)
        items.append((f, str(f.attname), plain, check, _AS_IS_EXACT.get(check)))
    return sql, items


def _is_float(value: object) -> bool:
    return type(value) is float


def _as_is(field: Any) -> Callable[[object], bool] | None:
    """The check that a value of `field` is what its preparation would return:
    bulkrows' plain types, but a float field's value only as a float (the
    field makes an int one)."""
    if field.get_internal_type() == "FloatField":
        return _is_float
    checks = json_checks([field])
    return None if checks is None else checks[0]


# The same for `_as_is`' checks (None: a value is always prepared).
_AS_IS_EXACT: dict[object, type] = {**_PASSES_ALL_OF, _is_float: float}


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
