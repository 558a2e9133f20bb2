"""Many rows in one statement: an INSERT of new rows and an UPDATE of changed
fields, each reading the rows from one JSON document.

Django's `bulk_update` builds one `CASE WHEN id = ... THEN ...` per row and field:
for a batch of a few hundred rows that is most of the batch's CPU (Django resolves
every `When` as an expression). Its `bulk_create` prepares every value through its
field and sends one array per column, which psycopg quotes element by element in
Python. On PostgreSQL `insert_rows` and `update_rows` send the rows as one JSON
array instead (orjson writes it; `json_populate_recordset` reads it with the
table's own column types), when every value is of a type that JSON carries as the
field would write it (see `_JSON_VALUES`); otherwise, and on other databases, they
take Django's `bulk_create` and the per-column arrays (or `bulk_update`).

`build_row` and `by_keys` make instances as `model(**values)` and `Model.from_db`
make them, without running `Model.__init__` when it would only store the values
(tenants.plain_rows): a batch makes a few hundred rows, and `__init__` (a
descriptor call per foreign key, two signals) was most of each one's cost.
Imports no helpdesk module.
"""

# ruff: noqa: S608 - table and column names come from the models; values are parameters.

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from django.db import DEFAULT_DB_ALIAS, connection, models, router
from django.db.models import BooleanField, Q
from django.db.models.base import ModelState
from django.db.models.expressions import RawSQL
from django.db.models.signals import post_init, pre_init

from tenants.base import _require_tenant_id, stamp_tenant
from tenants.plain_rows import builds_plainly


def _text(value: object) -> bool:
    return isinstance(value, str)


def _integer(value: object) -> bool:
    return type(value) is int


def _boolean(value: object) -> bool:
    return type(value) is bool


def _number(value: object) -> bool:
    # NaN and infinities have no JSON form (orjson writes null).
    return (type(value) is float and math.isfinite(value)) or type(value) is int


def _moment(value: object) -> bool:
    # Aware only: a naive time would be read in the session's time zone.
    return isinstance(value, datetime) and value.tzinfo is not None


def _uuid(value: object) -> bool:
    return isinstance(value, UUID)


# The fields whose values, when of these types (or None), json_populate_recordset
# reads as the field's own preparation would write them.
_JSON_VALUES: dict[str, Callable[[object], bool]] = {
    "CharField": _text,
    "TextField": _text,
    "SlugField": _text,
    "EmailField": _text,
    "URLField": _text,
    "IntegerField": _integer,
    "BigIntegerField": _integer,
    "SmallIntegerField": _integer,
    "PositiveIntegerField": _integer,
    "PositiveSmallIntegerField": _integer,
    "PositiveBigIntegerField": _integer,
    "BooleanField": _boolean,
    "FloatField": _number,
    "DateTimeField": _moment,
    "UUIDField": _uuid,
    "AutoField": _integer,
    "BigAutoField": _integer,
    "SmallAutoField": _integer,
}
_KEYS = ("ForeignKey", "OneToOneField", "TenantForeignKey")
_MISSING = object()


def json_checks(
    fields: Sequence[models.Field[Any, Any]],
) -> list[Callable[[object], bool]] | None:
    """Per field, the check that a (non-None) value of it is one JSON carries as
    the field would write it; None when a field has no such check."""
    checks: list[Callable[[object], bool]] = []
    for f in fields:
        kind = f.get_internal_type()
        if kind in _KEYS:
            target = f.target_field.get_internal_type()  # type: ignore[attr-defined]
            kind = target
        check = _JSON_VALUES.get(kind)
        if check is None or getattr(f, "auto_now", False):
            return None
        checks.append(check)
    return checks


def _json_rows(
    rows: Sequence[models.Model], fields: Sequence[models.Field[Any, Any]]
) -> str | None:
    """`rows`' values of `fields` as a JSON array of objects keyed by column, or
    None when a value (or a field) is not one JSON carries exactly."""
    checks = json_checks(fields)
    if checks is None:
        return None
    columns = [
        (str(f.column), f.attname, check)
        for f, check in zip(fields, checks, strict=True)
    ]
    records = []
    for row in rows:
        stored = row.__dict__
        record = {}
        for column, attname, check in columns:
            value = stored.get(attname, _MISSING)
            if value is _MISSING or (value is not None and not check(value)):
                return None
            record[column] = value
        records.append(record)
    try:
        return orjson.dumps(records).decode()
    except (TypeError, orjson.JSONEncodeError):
        return None


def insert_rows[M: models.Model](rows: Sequence[M]) -> list[M]:
    """INSERT `rows` (new instances of one model) as `bulk_create(rows)` does: a
    tenant-owned model's rows are stamped with the open tenant, each row gets its
    primary key and is saved (no signals, no `save()`). One statement."""
    if not rows:
        return list(rows)
    model = type(rows[0])
    meta = model._meta
    manager: Any = model._default_manager
    if connection.vendor != "postgresql":
        return list(manager.bulk_create(rows))
    if "tenant_id" in {f.attname for f in meta.concrete_fields} and hasattr(
        manager, "unscoped"
    ):
        tenant_id = _require_tenant_id()
        for row in rows:
            stamp_tenant(row, tenant_id)
    pk = meta.pk
    assert pk is not None  # noqa: S101 - a concrete model
    keys = [f for f in meta.concrete_fields if f.is_relation]
    for row in rows:
        stored = row.__dict__
        for f in keys:
            if stored.get(f.attname) is None and f.is_cached(row):  # type: ignore[attr-defined]
                # A related object set before it was saved: Django's check and copy.
                row._prepare_related_fields_for_save(operation_name="bulk_create")  # type: ignore[attr-defined]
                break
    if any(row.pk is not None for row in rows):
        return list(manager.bulk_create(rows))
    fields = [f for f in meta.concrete_fields if f is not pk]
    document = _json_rows(rows, fields)
    if document is None:
        return list(manager.bulk_create(rows))
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    names = ", ".join(quote(str(f.column)) for f in fields)
    picked = ", ".join(f"v.{quote(str(f.column))}" for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({names}) SELECT {picked}"
            f" FROM json_populate_recordset(NULL::{table}, %s::json) WITH ORDINALITY"
            f" AS v ORDER BY v.ordinality RETURNING {quote(str(pk.column))}",
            [document],
        )
        ids = [row[0] for row in cursor.fetchall()]
    for row, value in zip(rows, ids, strict=True):
        row.pk = value
        row._state.adding = False
        row._state.db = connection.alias
    return list(rows)


def update_rows(rows: Sequence[models.Model], names: Sequence[str]) -> None:
    """UPDATE the `names` fields of `rows` (one model, saved rows) to their current
    values, in one statement. A tenant-owned model's rows are matched on their
    tenant too (the statement names `tenant_id`, besides RLS)."""
    if not rows or not names:
        return
    model = type(rows[0])
    if connection.vendor != "postgresql":
        model._base_manager.bulk_update(rows, list(names))
        return
    meta = model._meta
    by_name: dict[str, models.Field[Any, Any]] = {}
    for f in meta.concrete_fields:
        by_name[f.name] = by_name[f.attname] = f
    fields = list({id(by_name[name]): by_name[name] for name in names}.values())
    pk_field = meta.pk
    assert pk_field is not None  # noqa: S101 - a concrete model
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    pk = quote(str(pk_field.column))
    ids = [row.pk for row in rows]
    document = _json_rows(rows, [pk_field, *fields])
    values: list[Any]
    if document is None:
        source, arrays = _arrays(rows, [pk_field, *fields])
        values = list(arrays)
        columns = [f"c{n}" for n in range(len(fields) + 1)]
    else:
        source = f"json_populate_recordset(NULL::{table}, %s::json)"
        values = [document]
        columns = [quote(str(f.column)) for f in [pk_field, *fields]]
    sets = ", ".join(
        f"{quote(str(f.column))} = v.{column}"
        for f, column in zip(fields, columns[1:], strict=True)
    )
    # `t.id = ANY(...)` as well as the join: the rows are found through the
    # primary key whatever the planner thinks of the source's rows (on tables
    # never analyzed it looped over all of the tenant's rows once per value).
    key = f"%s::{pk_field.db_type(connection)}[]"
    where, params = f"t.{pk} = v.{columns[0]} AND t.{pk} = ANY({key})", [ids]
    tenant = by_name.get("tenant_id")
    if tenant is not None and not tenant.null and tenant not in fields:
        where += ' AND t."tenant_id" = ANY(%s::bigint[])'
        params.append(sorted({row.tenant_id for row in rows}))  # type: ignore[attr-defined]
    alias = "" if document is not None else f"({', '.join(columns)})"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS t SET {sets} FROM {source} AS v{alias} WHERE {where}",
            [*values, *params],
        )


def by_keys[M: models.Model](
    model: type[M],
    names: Sequence[str],
    keys: Iterable[Sequence[Any]],
    *,
    where: str = "",
    params: Sequence[Any] = (),
    related: str | None = None,
    lock: bool = False,
) -> list[M]:
    """The open tenant's rows of `model` whose fields `names` equal one of `keys`
    (tuples of values, in `names`' order), each key looked up on its own: one
    statement whose outer loop is the keys (`unnest` of one array per field) and
    whose inner query, fenced by `OFFSET 0` so the planner cannot flatten it into
    a join, finds the key's rows through an index on the key. On tables never
    analyzed, a join or an `= ANY` filter was planned as a walk over all of the
    tenant's rows (PostgreSQL thinks a tenant holds a row or two).

    `where` (SQL on the table aliased `r`, with `params`) narrows each key's rows;
    `related` (a foreign key of `model`) also reads the row it points to, by
    primary key, and caches it as `select_related` does; `lock` takes FOR UPDATE
    on the rows found, key by key in `keys`' order and by id within a key, so two
    statements given keys in the same order lock shared rows in the same order.
    PostgreSQL only (the caller keeps its ORM query on other databases)."""
    keys = list(keys)
    if not keys:
        return []
    tenant_id = _require_tenant_id()
    quote = connection.ops.quote_name
    meta = model._meta
    fields = list(meta.concrete_fields)
    table = quote(meta.db_table)
    arrays: list[list[Any]] = [[key[n] for key in keys] for n in range(len(names))]
    unnest = ", ".join(
        f"%s::{_ARRAY_TYPES[meta.get_field(name).get_internal_type()]}[]"
        for name in names
    )
    matches = " AND ".join(
        f"r.{quote(str(meta.get_field(name).column))} = k.k{n}"  # type: ignore[union-attr]
        for n, name in enumerate(names)
    )
    columns = ", ".join(f"r.{quote(str(f.column))}" for f in fields)
    pk = meta.pk
    assert pk is not None  # noqa: S101 - a concrete model
    order = f" ORDER BY r.{quote(str(pk.column))} FOR UPDATE" if lock else ""
    extra = f" AND ({where})" if where else ""
    sql = (
        f"SELECT {{picked}} FROM unnest({unnest}) AS k"
        f"({', '.join(f'k{n}' for n in range(len(names)))})"
        f" CROSS JOIN LATERAL (SELECT {columns} FROM {table} AS r"
        f' WHERE r."tenant_id" = %s AND {matches}{extra}'
        f"{order or ' OFFSET 0'}) AS r"
    )
    values: list[Any] = [*arrays, tenant_id, *params]
    picked = ", ".join(f"r.{quote(str(f.column))}" for f in fields)
    other: list[models.Field[Any, Any]] = []
    link: Any = None
    if related is not None:
        link = meta.get_field(related)
        target = link.related_model._meta
        other = list(target.concrete_fields)
        inner = ", ".join(f"o.{quote(str(f.column))}" for f in other)
        sql += (
            f" CROSS JOIN LATERAL (SELECT {inner} FROM {quote(target.db_table)} AS o"
            f' WHERE o."tenant_id" = %s'
            f" AND o.{quote(str(target.pk.column))} = r.{quote(str(link.column))}"
            " OFFSET 0) AS o"
        )
        values.append(tenant_id)
        picked += ", " + ", ".join(f"o.{quote(str(f.column))}" for f in other)
    with connection.cursor() as cursor:
        cursor.execute(sql.format(picked=picked), values)
        rows = cursor.fetchall()
    alias = connection.alias
    make = row_loader(model, [f.attname for f in fields])
    found: list[M] = []
    width = len(fields)
    if link is None:
        for row in rows:
            found.append(make(alias, row))
        return found
    make_linked = row_loader(link.related_model, [f.attname for f in other])
    for row in rows:
        instance = make(alias, row[:width])
        link.set_cached_value(instance, make_linked(alias, row[width:]))
        found.append(instance)
    return found


def row_loader[M: models.Model](
    model: type[M], attnames: list[str]
) -> Callable[[str, Sequence[Any]], M]:
    """`model.from_db(alias, attnames, values)` for whole rows (`attnames` are
    all of the model's concrete fields, in order): the instance's state (not
    adding, the database) and the values in its `__dict__`, what `from_db`
    leaves, without `Model.__init__` when it would do nothing else (checked
    per row for the init signals' receivers, which may come and go)."""
    if not _plain(model):

        def load(alias: str, values: Sequence[Any]) -> M:
            return model.from_db(alias, attnames, values)

        return load
    new = object.__new__

    def build(alias: str, values: Sequence[Any]) -> M:
        if pre_init.receivers or post_init.receivers:
            return model.from_db(alias, attnames, values)
        instance = new(model)
        state = ModelState()
        state.adding = False
        state.db = alias
        stored = instance.__dict__
        stored["_state"] = state
        stored.update(zip(attnames, values, strict=True))
        return instance

    return build


def _plain(model: type[models.Model]) -> bool:
    """Whether `Model.__init__` would only store `model`'s values (tenants.
    plain_rows' conditions; the init signals' receivers are the caller's to
    check, per row)."""
    plain = _PLAIN.get(model)
    if plain is None:
        plain = _PLAIN[model] = builds_plainly(model)
    return plain


_PLAIN: dict[type[models.Model], bool] = {}


def routes_plainly() -> bool:
    """Whether no database router has a say in relations: none of the configured
    ones (tenants.routers' only routes migrations) picks the database to write
    or allows relations, so a related row's descriptor takes its database."""
    return not any(
        hasattr(each, "db_for_write") or hasattr(each, "allow_relation")
        for each in router.routers
    )


@dataclass(frozen=True)
class _Relation:
    """A many-to-one field a related row may be given for, by its name."""

    pairs: tuple[tuple[str, str], ...]  # (local attname, the related row's attname)
    cache: str  # its key in the instance's fields cache
    model: type[models.Model]  # the related model (concrete)


@dataclass(frozen=True)
class _Layout:
    """What `model(**values)` stores for a model built plainly."""

    defaults: dict[str, Any]  # every attname, with its default when it is fixed
    made: tuple[tuple[str, Callable[[], Any]], ...]  # defaults made per row
    relations: dict[str, _Relation]
    attnames: frozenset[str]
    pk: str


_LAYOUTS: dict[type[models.Model], _Layout | None] = {}


def _layout(model: type[models.Model]) -> _Layout | None:
    """`model`'s layout, None when `__init__` does more than store (a generated
    field is left out of a new instance)."""
    try:
        return _LAYOUTS[model]
    except KeyError:
        pass
    opts = model._meta
    defaults: dict[str, Any] = {}
    made = []
    relations = {}
    if any(f.generated for f in opts.concrete_fields):
        _LAYOUTS[model] = None
        return None
    for f in opts.concrete_fields:
        # Django's default is the same object on every call unless the field's
        # default is a function (uuid4, dict, now): that one is called per row.
        if f.has_default() and callable(f.default):
            defaults[f.attname] = None  # keeps the field's place
            made.append((f.attname, f.get_default))
        else:
            defaults[f.attname] = f.get_default()
        remote: Any = f.remote_field
        if f.many_to_one and remote.multiple:
            relations[f.name] = _Relation(
                tuple((lh.attname, rh.attname) for lh, rh in f.related_fields),  # type: ignore[attr-defined]
                f.cache_name,  # type: ignore[attr-defined]
                remote.model._meta.concrete_model,
            )
    assert opts.pk is not None  # noqa: S101 - a concrete model
    layout = _LAYOUTS[model] = _Layout(
        defaults, tuple(made), relations, frozenset(defaults), opts.pk.attname
    )
    return layout


def build_row[M: models.Model](model: type[M], /, **values: Any) -> M:
    """`model(**values)`, the same instance (values, defaults, cached related
    rows, database, state), without `Model.__init__` when it would only store
    them: keywords are fields' names or attnames or `pk`; a default made by a
    function (uuid4, now) is made for each row; a related row given by its
    field's name sets the key and is cached as its descriptor does (the
    database of the first such row becomes the instance's, as Django's router
    sets it when no router decides). Anything else (such routers, receivers of
    the init signals, a one-to-one or an unknown keyword, a field given twice)
    is `model(**values)` itself."""
    if (
        pre_init.receivers
        or post_init.receivers
        or not _plain(model)
        or not routes_plainly()
    ):
        return model(**values)
    layout = _layout(model)
    if layout is None or ("pk" in values and layout.pk in values):
        return model(**values)
    stored = layout.defaults.copy()
    for attname, make in layout.made:
        stored[attname] = make()
    state = ModelState()
    cache: dict[str, Any] | None = None
    relations, attnames = layout.relations, layout.attnames
    for name, value in values.items():
        relation = relations.get(name)
        if relation is None:
            if name == "pk":
                name = layout.pk
            elif name not in attnames:
                return model(**values)
            stored[name] = value
            continue
        if value is not None and not isinstance(value, relation.model):
            return model(**values)  # Django's ValueError
        for attname, _ in relation.pairs:
            if attname in values:
                return model(**values)
        if value is None:
            for attname, _ in relation.pairs:
                stored[attname] = None
        else:
            if state.db is None:
                state.db = value._state.db or DEFAULT_DB_ALIAS
            if value._state.db is None or value._state.db != state.db:
                return model(**values)  # the router's own checks and errors
            for attname, target in relation.pairs:
                stored[attname] = getattr(value, target)
        if cache is None:
            cache = state.fields_cache
        cache[relation.cache] = value
    instance = object.__new__(model)
    instance.__dict__["_state"] = state
    instance.__dict__.update(stored)
    return instance


def _arrays(
    rows: Sequence[models.Model], columns: Sequence[models.Field[Any, Any]]
) -> tuple[str, list[list[Any]]]:
    """`unnest` of one array per column, each value prepared by its field."""
    arrays = [
        [f.get_db_prep_save(getattr(row, f.attname), connection) for row in rows]
        for f in columns
    ]
    unnest = ", ".join(f"%s::{f.db_type(connection)}[]" for f in columns)
    return f"unnest({unnest})", arrays


_ARRAY_TYPES = {
    "CharField": "text",
    "TextField": "text",
    "AutoField": "bigint",
    "BigAutoField": "bigint",
    "IntegerField": "bigint",
    "BigIntegerField": "bigint",
    "PositiveIntegerField": "bigint",
    "ForeignKey": "bigint",
    "TenantForeignKey": "bigint",
}


def any_of(model: type[models.Model], name: str, values: Iterable[Any]) -> RawSQL | Q:
    """A filter: `model`'s field `name` equals one of `values`, as `= ANY` of one
    array parameter. Unlike `name__in`, Django prepares no value one by one and the
    statement's text does not change with the number of values (psycopg parses a
    text with many placeholders again on every call). Integer and text fields.
    SQLite (the demo) has no arrays: there it is `name__in`."""
    field = model._meta.get_field(name)
    kind = _ARRAY_TYPES[field.get_internal_type()]
    if connection.vendor != "postgresql":
        return Q(**{f"{name}__in": list(values)})
    quote = connection.ops.quote_name
    column = f"{quote(model._meta.db_table)}.{quote(str(field.column))}"  # type: ignore[union-attr]
    # The column is the model's, the values a parameter.
    return RawSQL(  # noqa: S611
        f"{column} = ANY(%s::{kind}[])", [list(values)], output_field=BooleanField()
    )
