"""Querysets of a fixed shape, built and compiled once, run with new values.

Building a queryset (filters, select_related, annotations) and compiling it to
SQL costs 1-3 ms of CPU per call on the hot paths (the API channel's account,
a conversation by id, the inbox page), and gives the same SQL text every time;
only the values change. `CompiledQuery` builds its queryset once per database
connection with marker values in place of the caller's, keeps the compiler (the
SQL, the select list, the related-object and annotation maps, the converters)
and runs that SQL with the caller's values through the queryset's own iterable
(Django's ModelIterable, or helpdesk.lookups' subclass that attaches columns),
so the rows become the same model instances, with the same select_related
objects and annotations, as the queryset would give.

The builder may depend on its arguments and the open tenant only (never on
the time or the request); `_compile` checks this by building twice with
different markers and refuses a shape whose SQL or other parameters differ. The
open tenant's id is a value like the others: the shape is built with a marker
tenant open in the ContextVar the fail-closed managers read, so every run
carries its own `tenant_id = <id>` filter, and a run with no tenant open raises
TenantContextMissing as the manager would. RLS is unchanged: the statement is
the same text, run in the caller's transaction and tenant context.

The rows' instances are made as `Model.from_db` makes them, without going
through `Model.__init__` (`_fast_klass_info`): for a model that keeps Django's
`__init__` and `from_db` and whose field attributes are plain (no setter but
the foreign keys', which only stores the value on a new instance) and no
`pre_init`/`post_init` receiver, the instance is its `_state` (not adding, the
database, the fetch mode) and the selected columns' values in its `__dict__`
(deferred ones absent): what `__init__` leaves. Anything else takes `from_db`.
The inbox page's 26 rows with their brand, account and assignee: 2.70 -> 2.08 ms
of CPU (same process, alternating); with the list's columns only, 1.52 ms.

`first()` reads one row (`fetchone`) and makes its instances by a plan worked
out once per shape (`_RowPlan`): the converters, the model's instance, each
select_related object as RelatedPopulator makes it and the annotations, in
ModelIterable's order. A shape read by a ModelIterable subclass, with
composite columns, a parent link or a peer-tracking fetch mode, and any call
while a pre_init/post_init receiver is connected, goes through `rows()`. The
reply's row lock (a conversation, its brand, three annotations) inside whole
requests: 593/594 -> 404/521 us of CPU.

With `tenant_in_text`, the open tenant's id is written into the statement as a
number rather than sent as a parameter: one text per tenant (kept per shape and
connection, up to `_TENANT_TEXTS`), the other values still parameters. A
prepared statement is planned for its parameters' values five times, then
PostgreSQL keeps a generic plan only if its estimated cost is not above theirs;
with the tenant a parameter, the generic plan is costed for an average tenant
while the custom ones know a large tenant's rows, so for a large tenant it never
won and the inbox page was planned again on every request (pg_prepared_statements:
0 generic, 28 custom plans after 28 pages; about 1.7 ms of PostgreSQL CPU each
in tests/perf/test_read_path_at_scale.py, analyzed). With the tenant in the text
both plans are costed for that tenant and the generic one is kept after five.
The filter stays `tenant_id = <id>` in the statement (tenancy.md P14) and RLS
is unchanged.

`fetch()` sends the same statement and keeps its rows as values (`Fetched`),
for a reader that writes them out and needs no instance (the inbox list's first
page, helpdesk.list_output); `Fetched.instances()` makes the instances
`rows()` would make from those values, with no second statement.
"""

import re
import threading
import weakref
from collections.abc import Callable, Sequence
from copy import copy
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, QuerySet
from django.db.models.base import ModelState
from django.db.models.query import ModelIterable
from django.db.models.signals import post_init, pre_init

from helpdesk.lookups import ATTACHED
from tenants.base import _require_tenant_id
from tenants.context import _current_tenant_id
from tenants.plain_rows import builds_plainly

# The tenants whose own statement text one shape keeps per connection (a text is
# the statement and its compiled state: a few kilobytes).
_TENANT_TEXTS = 256
# A placeholder, or an escaped percent sign, in a compiled statement.
_PLACEHOLDER = re.compile(r"%%|%s")

_KINDS: dict[type, Callable[[int, int], Any]] = {
    int: lambda query, n: -(2**62) + 1_000 * query + n,
    str: lambda query, n: f"\x1fcompiled-marker-{query}-{n}\x1f",
    datetime: lambda query, n: datetime(1901, 2, 3, 4, 5, 6, query * 10 + n, UTC),
}


def _fast_model(model: type[Model]) -> Any:
    """A stand-in for `model` in a klass_info: its `from_db` makes the instance
    without `__init__` when every column is given, and is `model.from_db`
    otherwise."""
    attnames = [field.attname for field in model._meta.concrete_fields]
    count = len(attnames)
    subsets: dict[tuple[str, ...], list[str]] = {}
    new = object.__new__

    def from_db(
        cls: Any,
        db: str,
        field_names: list[str],
        values: Sequence[Any],
        *,
        fetch_mode: Any = None,
    ) -> Model:
        if len(values) != count:
            # Some columns deferred: from_db gives the values to the model's
            # fields in their order, for those named.
            names = subsets.get(tuple(field_names))
            if names is None:
                named = set(field_names)
                names = [name for name in attnames if name in named]
                if len(names) != len(values):
                    return model.from_db(db, field_names, values, fetch_mode=fetch_mode)
                subsets[tuple(field_names)] = names
        else:
            names = attnames
        instance = new(model)
        state = ModelState()
        state.adding = False
        state.db = db
        if fetch_mode is not None:
            state.fetch_mode = fetch_mode
        stored = instance.__dict__
        stored["_state"] = state
        stored.update(zip(names, values, strict=True))
        return instance

    return type(
        f"Fast{model.__name__}",
        (),
        {"_meta": model._meta, "from_db": classmethod(from_db)},
    )


def _fast_klass_info(info: dict[str, Any]) -> dict[str, Any] | None:
    """The compiler's klass_info with fast stand-ins for its models, or None
    when one of them is not plain."""
    if not builds_plainly(info["model"]):
        return None
    related = []
    for child in info.get("related_klass_infos", []):
        fast = _fast_klass_info(child)
        if fast is None:
            return None
        related.append(fast)
    copied = {**info, "model": _fast_model(info["model"])}
    if "related_klass_infos" in info:
        copied["related_klass_infos"] = related
    return copied


class _Related:
    """One select_related object as RelatedPopulator makes it (no parent link)."""

    __slots__ = (
        "children",
        "end",
        "from_db",
        "init_list",
        "local_setter",
        "pk_idx",
        "remote_setter",
        "start",
    )

    def __init__(
        self, info: dict[str, Any], select: Sequence[Any], fetch_mode: Any
    ) -> None:
        fields = info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [
            column[0].target.attname for column in select[self.start : self.end]
        ]
        self.from_db = partial(info["model"].from_db, fetch_mode=fetch_mode)
        model_meta = info["model"]._meta
        self.pk_idx = self.init_list.index(model_meta.pk_fields[0].attname)
        self.children = [
            _Related(child, select, fetch_mode)
            for child in info.get("related_klass_infos", [])
        ]
        self.local_setter = info["local_setter"]
        self.remote_setter = info["remote_setter"]

    def populate(self, row: Sequence[Any], parent: Model, db: str) -> None:
        data = row[self.start : self.end]
        if data[self.pk_idx] is None:
            obj = None
        else:
            obj = self.from_db(db, self.init_list, data)
            for child in self.children:
                child.populate(row, obj, db)
        self.local_setter(parent, obj)
        if obj is not None:
            self.remote_setter(obj, parent)


def _plainly_related(info: dict[str, Any]) -> bool:
    """No related object is a parent link (RelatedPopulator's reordered case)."""
    return all(
        not child["from_parent"] and _plainly_related(child)
        for child in info.get("related_klass_infos", [])
    )


class _RowPlan:
    """What ModelIterable does with one row of a compiled shape, worked out once:
    the converters, the model's instance from its columns, the select_related
    objects (RelatedPopulator's steps) and the annotations. Only for a shape
    read by ModelIterable itself, with the fast stand-in models (no
    pre_init/post_init receiver), no composite column, no parent link and a
    fetch mode that tracks no peers; `of` gives None for any other."""

    __slots__ = (
        "annotations",
        "connection",
        "converters",
        "end",
        "from_db",
        "init_list",
        "related",
        "start",
    )

    @classmethod
    def of(cls, queryset: QuerySet[Any], compiled: "_Compiled") -> "_RowPlan | None":
        info = compiled.fast_klass_info
        compiler = compiled.compiler
        fields = [column[0] for column in compiler.select[0 : compiler.col_count]]
        if (
            info is None
            or queryset._iterable_class is not ModelIterable
            or queryset._known_related_objects  # type: ignore[attr-defined]
            or queryset._fetch_mode.track_peers  # type: ignore[attr-defined]
            or compiler.has_composite_fields(fields)
            or not _plainly_related(info)
        ):
            return None
        return cls(queryset, compiled, info)

    def __init__(
        self, queryset: QuerySet[Any], compiled: "_Compiled", info: dict[str, Any]
    ) -> None:
        compiler = compiled.compiler
        select = compiler.select
        fetch_mode = queryset._fetch_mode  # type: ignore[attr-defined]
        fields = info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [
            column[0].target.attname for column in select[self.start : self.end]
        ]
        self.from_db = partial(info["model"].from_db, fetch_mode=fetch_mode)
        self.related = [
            _Related(child, select, fetch_mode)
            for child in info.get("related_klass_infos", [])
        ]
        self.annotations = list(compiler.annotation_col_map.items())
        self.converters = list(compiled.converters.items())
        self.connection = compiler.connection

    def instance(self, row: Sequence[Any], db: str) -> Any:
        if self.converters:
            row = list(row)
            connection = self.connection
            for pos, (converters, expression) in self.converters:
                value = row[pos]
                for converter in converters:
                    value = converter(value, expression, connection)
                row[pos] = value
        obj = self.from_db(db, self.init_list, row[self.start : self.end])
        for related in self.related:
            related.populate(row, obj, db)
        for name, pos in self.annotations:
            setattr(obj, name, row[pos])
        return obj


class _Compiled:
    """One connection's compiled shape: the compiler and where the values go."""

    __slots__ = (
        "columns",
        "compiler",
        "converters",
        "fast_klass_info",
        "planned",
        "positions",
        "row_plan",
        "sql",
        "template",
        "tenants",
    )

    def __init__(
        self,
        compiler: Any,
        sql: str,
        template: list[Any],
        positions: list[list[int]],
    ) -> None:
        self.compiler = compiler
        self.sql = sql
        self.template = template
        self.positions = positions
        fields = [column[0] for column in compiler.select[0 : compiler.col_count]]
        self.converters: dict[int, Any] = compiler.get_converters(fields)
        self.fast_klass_info = _fast_klass_info(compiler.klass_info)
        self.columns: dict[str, int] | None = None  # at the first `fetch()`
        # Worked out at the first `first()` (it needs the built queryset).
        self.planned = False
        self.row_plan: _RowPlan | None = None
        # tenant id -> this shape with that id written in (`tenant_in_text`).
        self.tenants: dict[int, _Compiled] = {}

    def with_tenant(self, tenant_id: int) -> "_Compiled":
        """This shape with `tenant_id` written into its SQL where the open
        tenant's id was a parameter, and without those parameters; itself when
        its placeholders cannot be matched to its parameters."""
        places = set(self.positions[0])
        written = str(int(tenant_id))  # a number: nothing to quote
        seen = 0

        def place(match: re.Match[str]) -> str:
            nonlocal seen
            if match.group() == "%%":
                return "%%"
            seen += 1
            return written if seen - 1 in places else "%s"

        sql = _PLACEHOLDER.sub(place, self.sql)
        if seen != len(self.template):
            return self
        kept = [n for n in range(len(self.template)) if n not in places]
        moved = {old: new for new, old in enumerate(kept)}
        variant = copy(self)
        variant.sql = sql
        variant.template = [self.template[n] for n in kept]
        variant.positions = [
            [],
            *([moved[n] for n in value] for value in self.positions[1:]),
        ]
        variant.tenants = {}
        return variant


class _Query:
    """What ModelIterable asks of `queryset.query`: a compiler."""

    __slots__ = ("compiler",)

    def __init__(self, compiler: Any) -> None:
        self.compiler = compiler

    def get_compiler(self, using: str | None = None) -> Any:
        return self.compiler


class _Source:
    """What ModelIterable reads of a queryset."""

    __slots__ = ("_fetch_mode", "_known_related_objects", "db", "model", "query")

    def __init__(self, queryset: QuerySet[Any], compiler: Any) -> None:
        self.db = queryset.db
        self.model = queryset.model
        self.query = _Query(compiler)
        self._fetch_mode = queryset._fetch_mode  # type: ignore[attr-defined]
        self._known_related_objects: dict[Any, Any] = {}


class CompiledQuery[M: Model]:
    """`build(*values)` compiled once per connection; `rows(*values)` runs it.

    `kinds`: the type of each value (int, str or datetime), in `build`'s order.
    Every value must reach the SQL as a parameter, unchanged (a filter's value,
    not a part of its shape: a None, an empty list or a different lookup makes
    another shape, so give each shape its own CompiledQuery). `tenant_in_text`:
    the open tenant's id written into the statement (module docstring).
    """

    def __init__(
        self,
        build: Callable[..., QuerySet[M]],
        kinds: Sequence[type],
        *,
        using: str = DEFAULT_DB_ALIAS,
        tenant_in_text: bool = False,
    ) -> None:
        self.build = build
        self.kinds = (int, *kinds)  # the open tenant's id first
        self.using = using
        self.tenant_in_text = tenant_in_text
        self._states: weakref.WeakKeyDictionary[BaseDatabaseWrapper, _Compiled] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def _markers(self, round_: int) -> list[Any]:
        return [_KINDS[kind](round_, n) for n, kind in enumerate(self.kinds)]

    def _compile(self, connection: BaseDatabaseWrapper) -> _Compiled:
        shapes = []
        for round_ in (1, 2):
            markers = self._markers(round_)
            opened = _current_tenant_id.set(markers[0])
            try:
                queryset = self.build(*markers[1:])
                compiler = queryset.query.get_compiler(using=self.using)
                sql, params = compiler.as_sql()
            finally:
                _current_tenant_id.reset(opened)
            shapes.append((queryset, compiler, sql, list(params), markers))
        (queryset, compiler, sql, params, markers) = shapes[0]
        if queryset._prefetch_related_lookups or not issubclass(  # type: ignore[attr-defined]
            queryset._iterable_class, ModelIterable
        ):
            raise ValueError("only model rows without prefetches can be compiled")
        (_, _, other_sql, other_params, other_markers) = shapes[1]
        if sql != other_sql or len(params) != len(other_params):
            raise ValueError("the query's SQL depends on its values")
        positions: list[list[int]] = [[] for _ in markers]
        for index, (value, other) in enumerate(zip(params, other_params, strict=True)):
            found = [n for n, marker in enumerate(markers) if value == marker]
            if found and other == other_markers[found[0]]:
                positions[found[0]].append(index)
            elif value != other:
                raise ValueError(f"parameter {index} changes without a value")
        if not all(positions):
            raise ValueError("a value does not reach the SQL as a parameter")
        compiled = _Compiled(compiler, sql, params, positions)
        self._states[connection] = compiled
        self._queryset = queryset
        return compiled

    def rows(self, *values: Any) -> list[M]:
        """The queryset's rows for these values (model instances)."""
        compiled, params = self._bind(values)
        return self._run(compiled, params)

    def _bind(self, values: Sequence[Any]) -> tuple[_Compiled, list[Any]]:
        """This connection's compiled shape and its parameters for `values`."""
        values = (_require_tenant_id(), *values)
        connection = connections[self.using]
        compiled = self._states.get(connection)
        if compiled is None:
            with self._lock:
                compiled = self._compile(connection)
        if self.tenant_in_text and type(values[0]) is int:
            variant = compiled.tenants.get(values[0])
            if variant is None:
                variant = compiled.with_tenant(values[0])
                if len(compiled.tenants) < _TENANT_TEXTS:
                    compiled.tenants[values[0]] = variant
            compiled = variant
        params = list(compiled.template)
        for value, kind, places in zip(
            values, self.kinds, compiled.positions, strict=True
        ):
            if type(value) is not kind and not isinstance(value, kind):
                raise TypeError(f"expected {kind.__name__}, got {value!r}")
            for place in places:
                params[place] = value
        return compiled, params

    def _run(
        self,
        compiled: _Compiled,
        params: list[Any],
        fetched: list[Any] | None = None,
    ) -> list[M]:
        klass_info = compiled.fast_klass_info
        if klass_info is None or pre_init.receivers or post_init.receivers:
            klass_info = compiled.compiler.klass_info
        compiler = _Bound(compiled, params, klass_info, fetched)
        # ModelIterable or a subclass (helpdesk.lookups' attaching one).
        iterable: Any = self._queryset._iterable_class
        rows: list[M] = list(iterable(cast(Any, _Source(self._queryset, compiler))))
        return rows

    def fetch(self, *values: Any) -> "Fetched[M]":
        """The rows of `rows(*values)` as the statement returns them, before
        they become instances (`Fetched`): for a reader that writes values
        out and needs no model instance. The same statement, sent once."""
        compiled, params = self._bind(values)
        with connections[self.using].cursor() as cursor:
            cursor.execute(compiled.sql, params)
            raw = cursor.fetchall()
        compiler = compiled.compiler
        if compiler.has_extra_select:  # what SQLCompiler.execute_sql leaves out
            raw = [row[: compiler.col_count] for row in raw]
        return Fetched(self, compiled, params, raw)

    def first(self, *values: Any) -> M | None:
        """The first of `rows(*values)`, or None. A shape whose rows ModelIterable
        would make plainly (`_RowPlan`) reads one row and makes its instances
        by the plan; any other goes through `rows`."""
        compiled, params = self._bind(values)
        if not compiled.planned:
            compiled.row_plan = _RowPlan.of(self._queryset, compiled)
            compiled.planned = True
        plan = compiled.row_plan
        if plan is None or pre_init.receivers or post_init.receivers:
            found = self._run(compiled, params)
            return found[0] if found else None
        db = self._queryset.db  # what ModelIterable reads: the router's answer
        with connections[self.using].cursor() as cursor:
            cursor.execute(compiled.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        instance: M = plan.instance(row, db)
        return instance


class _Bound:
    """The compiled compiler with one call's parameters (read-only delegation);
    with `fetched`, the rows that statement already returned."""

    __slots__ = ("_compiled", "_fetched", "_params", "klass_info")

    def __init__(
        self,
        compiled: _Compiled,
        params: list[Any],
        klass_info: dict[str, Any],
        fetched: list[Any] | None = None,
    ) -> None:
        self._compiled = compiled
        self._params = params
        self.klass_info = klass_info
        self._fetched = fetched

    def __getattr__(self, name: str) -> Any:
        return getattr(self._compiled.compiler, name)

    def as_sql(self, *args: Any, **kwargs: Any) -> tuple[str, list[Any]]:
        return self._compiled.sql, self._params

    def get_converters(self, expressions: Any) -> dict[int, Any]:
        return self._compiled.converters

    def execute_sql(self, *args: Any, **kwargs: Any) -> Any:
        if self._fetched is not None:
            return [self._fetched]  # MULTI's answer: the rows in one chunk
        compiler = self._compiled.compiler
        return type(compiler).execute_sql(self, *args, **kwargs)

    def results_iter(self, *args: Any, **kwargs: Any) -> Any:
        compiler = self._compiled.compiler
        return type(compiler).results_iter(self, *args, **kwargs)


def _column_names(compiler: Any, iterable: Any) -> dict[str, int]:
    """Where each value of a compiled shape's row is (see `Fetched.columns`)."""
    select = compiler.select
    names: dict[str, int] = {}

    def add(info: dict[str, Any], prefix: str) -> None:
        for index in info["select_fields"]:
            names[prefix + select[index][0].target.attname] = index
        for child in info.get("related_klass_infos", []):
            field = child["field"]
            name = field.related_query_name() if child["reverse"] else field.name
            add(child, f"{prefix}{name}__")

    add(compiler.klass_info, "")
    # helpdesk.lookups.attach_columns' annotations, by what they hold.
    attached = {
        f"{ATTACHED}{relation}_{n}": f"{relation}__{column}"
        for relation, columns in getattr(iterable, "specs", ())
        for n, column in enumerate(columns)
    }
    for name, index in compiler.annotation_col_map.items():
        names[attached.get(name, name)] = index
    return names


class Fetched[M: Model]:
    """One run of a compiled shape whose rows are not made into instances yet.

    `rows`: the statement's rows with the converters applied, the values
    ModelIterable gives the instances (lists when a converter ran, tuples
    otherwise). `columns`: where each value is in a row: the model's loaded
    fields by attname (`brand_id`), a select_related object's as
    `<relation>__<attname>` (`brand__name`), a column attached by
    helpdesk.lookups.attach_columns as `<relation>__<column>`
    (`contact__display_name`) and any other annotation by its name.
    `instances()` makes the rows `CompiledQuery.rows` would give from the same
    values, with no statement."""

    __slots__ = ("_compiled", "_params", "_query", "_raw", "columns", "rows")

    def __init__(
        self,
        query: CompiledQuery[M],
        compiled: _Compiled,
        params: list[Any],
        raw: list[Any],
    ) -> None:
        self._query = query
        self._compiled = compiled
        self._params = params
        self._raw = raw
        compiler = compiled.compiler
        if compiled.columns is None:
            compiled.columns = _column_names(compiler, query._queryset._iterable_class)
        self.columns: dict[str, int] = compiled.columns
        converters = compiled.converters
        self.rows: list[Sequence[Any]] = (
            list(compiler.apply_converters(raw, converters)) if converters else raw
        )

    def head(self, count: int) -> "Fetched[M]":
        """The first `count` rows (the same instances would be made of them)."""
        head = copy(self)
        head._raw = self._raw[:count]
        head.rows = self.rows[:count]
        return head

    def instances(self) -> list[M]:
        """These rows as `CompiledQuery.rows` makes them (model instances)."""
        return self._query._run(self._compiled, self._params, self._raw)
