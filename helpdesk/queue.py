"""The inbox queue order (R10): by SLA due time, with a bounded reach window.

At time `now`, a conversation c with a running response clock (a due time) sorts
by its queue key:

- at risk (already breached, or due within its brand's window W_c):
  key(c) = due(c);
- otherwise: key(c) = max(queue_at(c), now + W_c), where queue_at is the due time
  less the reach or sentiment bonus (at most W_c, helpdesk.services.sla).

Ties go to the earlier due time, then the lower id. Conversations without a clock
(answered) come after all of them, most recent activity first, then by id.

One formula gives both cases: key = max(q, min(due, now + W)) with
q = queue_at clamped to [due - W, due] (a queue_at stored under a wider window
than the brand has now still moves no further than W). Since key <= due,
key >= due - W and key >= min(due, now + W), a conversation B placed before A
with A.due < B.due needs min(B.due, now + W_B) < A.due, hence
A.due > now + W_B (A is neither breached nor at risk for B's window) and
B.due - A.due < W_B: nothing moves past a conversation that is breached or would
breach first, and nothing moves more than its window (tests/helpdesk/
test_queue_order.py proves it with hypothesis).

`queue_key_expression(now)` is the database twin of `queue_key` (PostgreSQL and
SQLite); `inbox_conversations` orders by it and `helpdesk.pagination` pages by it.

The key is an expression no index holds, so sorting by it reads every row. A slice
of the first n rows reads a bounded range instead (`QueueQuerySet`): every key lies
in [due - W, due]. Let D_n be the n-th smallest due time among the rows with a
clock and W_max the largest window of the tenant's brands. The n rows of smallest
due have keys <= D_n, and a row with due > D_n + W_max has a key
>= due - W_max > D_n: it sorts after all n of them, so it is not among the first n.
Only rows with due <= D_n + W_max are sorted. With n or more clock rows no answered
row is among the first n; with fewer (D_n is NULL) every clock row is taken, and
answered rows only down to R_n, the n-th most recent activity among them. D_n and
R_n are scalar subqueries over the same filters (index range scans of
helpdesk_conv_due_ix and helpdesk_conv_recent_ix), so the slice stays one statement
and its order is exactly the unbounded order's first n rows.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    Case,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Func,
    Model,
    OrderBy,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, Least
from django.db.models.lookups import IsNull
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.query import Query
from django.db.models.sql.where import AND

from helpdesk.lookups import InArray, filter_ids_in, outer_join
from tenants.models import Brand

# The annotations inbox_conversations adds (helpdesk.pagination reads them back).
KEY = "queue_key"
RECENT = "queue_recent"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Stand-ins for "no bound" that both databases compare as times.
_FAR_PAST = datetime(1, 1, 2, tzinfo=UTC)
_FAR_FUTURE = datetime(9999, 12, 30, tzinfo=UTC)


@dataclass(frozen=True)
class QueueItem:
    """What the order needs of one conversation (a Conversation has all of it)."""

    id: int
    due: datetime | None  # sla_due_at: None when no clock runs (answered)
    queue_at: datetime | None
    window: timedelta  # the brand's queue_window_minutes
    last_activity: datetime


def item_of(conversation: Any) -> QueueItem:
    """The QueueItem of a Conversation whose brand is loaded."""
    return QueueItem(
        id=conversation.pk,
        due=conversation.sla_due_at,
        queue_at=conversation.queue_at,
        window=timedelta(minutes=conversation.brand.queue_window_minutes),
        last_activity=conversation.last_activity_at,
    )


def key_time(item: QueueItem, now: datetime) -> datetime | None:
    """The queue key of `item` at `now` (None without a clock)."""
    if item.due is None:
        return None
    queue_at = item.due if item.queue_at is None else item.queue_at
    bounded = min(max(queue_at, item.due - item.window), item.due)
    return max(bounded, min(item.due, now + item.window))


def queue_key(item: QueueItem, now: datetime) -> tuple[Any, ...]:
    """A sort key: the inbox order at `now` is `sorted(items, key=...)`."""
    key = key_time(item, now)
    if key is None or item.due is None:
        # Most recent first: negate the activity time (exact, in microseconds).
        return (1, _EPOCH - item.last_activity, item.id)
    return (0, key, item.due, item.id)


def queue_order[T: QueueItem](items: Iterable[T], now: datetime) -> list[T]:
    """`items` in inbox queue order at `now` (the pure twin of the SQL order)."""
    return sorted(items, key=lambda item: queue_key(item, now))


class Minutes(Func):
    """A whole number of minutes as a duration: an interval on PostgreSQL,
    microseconds on SQLite (how Django stores a DurationField there)."""

    arity = 1
    output_field = DurationField()
    template = "(%(expressions)s * INTERVAL '1 minute')"

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, tuple[str | int, ...]]:
        sql, params = self.as_sql(
            compiler, connection, template="(%(expressions)s * 60000000)", **extra
        )
        return sql, tuple(params)


def queue_key_expression(now: datetime) -> Case:
    """The queue key at `now` as a database expression over Conversation rows
    (NULL without a clock), the brand's window read through the brand join."""
    window = Minutes(F("brand__queue_window_minutes"))
    due = F("sla_due_at")
    bounded = Least(
        Greatest(
            Coalesce(F("queue_at"), due),
            ExpressionWrapper(due - window, output_field=DateTimeField()),
        ),
        due,
    )
    horizon = ExpressionWrapper(Value(now) + window, output_field=DateTimeField())
    # PostgreSQL's GREATEST and LEAST skip NULLs: say "no clock, no key" outright.
    return Case(
        When(
            sla_due_at__isnull=False,
            then=Greatest(bounded, Least(due, horizon), output_field=DateTimeField()),
        ),
        default=None,
        output_field=DateTimeField(),
    )


def recent_expression() -> Case:
    """Last activity for answered conversations (their order), NULL for the rest."""
    return Case(
        When(sla_due_at__isnull=True, then=F("last_activity_at")),
        default=None,
        output_field=DateTimeField(),
    )


QUEUE_ORDER: tuple[OrderBy, ...] = (
    F(KEY).asc(nulls_last=True),
    F("sla_due_at").asc(nulls_last=True),
    F(RECENT).desc(nulls_last=True),
    F("id").asc(),
)


class QueueShape(Protocol):
    """How a queryset's first rows are read without building its slice: a shape
    compiled once (helpdesk.selectors' inbox), given the values it was made with."""

    def first(self, n: int) -> list[Any] | None:
        """The first n rows in queue order, or None when this shape cannot read
        them (the caller builds the slice)."""
        ...


class QueueQuerySet[M: Model](QuerySet[M]):
    """A queryset in queue order whose slices [:n] read a bounded range.

    Slicing with an end n adds the candidate filter of the module docstring (the
    bounds are subqueries over this queryset's own filters, the cursor's included),
    so the result equals the first n rows of the unbounded order in one statement.
    Iterating without a slice sorts every row, as before.

    A queryset with a `QueueShape` (one its maker set, dropped by any clone and
    by any use of `.query`, which may change it in place) answers a slice [:n]
    with a `ShapedSlice`: the shape reads its rows, and the slice's query is built
    only if something asks for it.
    """

    _queue_bounded: bool = False
    _queue_due_floor: datetime | None = None
    _queue_recent_ceiling: datetime | None = None
    _queue_clock_done: bool = False
    _queue_base: QuerySet[Any] | None = None  # the rows before the annotations
    _queue_shape: QueueShape | None = None  # never copied by _clone

    @property
    def query(self) -> Query:
        self._queue_shape = None
        query: Query = QuerySet.query.fget(self)  # type: ignore[attr-defined]
        return query

    @query.setter
    def query(self, value: Query) -> None:
        self._queue_shape = None
        QuerySet.query.fset(self, value)  # type: ignore[attr-defined]

    def _clone(self) -> "QueueQuerySet[M]":
        clone: QueueQuerySet[M] = super()._clone()  # type: ignore[misc]
        clone._queue_bounded = self._queue_bounded
        clone._queue_due_floor = self._queue_due_floor
        clone._queue_recent_ceiling = self._queue_recent_ceiling
        clone._queue_clock_done = self._queue_clock_done
        clone._queue_base = self._queue_base
        return clone

    def queue_after(
        self, key: datetime | None, recent: datetime | None
    ) -> "QueueQuerySet[M]":
        """Record what a cursor filter (helpdesk.pagination) implies, for the bounds:
        after key k every clock row has due >= k; after an answered row (no key)
        no clock row is left and every answered row has activity <= `recent`.
        The caller filters by the cursor itself."""
        clone = self._clone()
        if key is not None:
            clone._queue_due_floor = key
        else:
            clone._queue_clock_done = True
            clone._queue_recent_ceiling = recent
        return clone

    def __getitem__(self, k: Any) -> Any:
        bounded = (
            isinstance(k, slice)
            and self._queue_bounded
            and self._result_cache is None
            and isinstance(k.stop, int)
            and k.stop > 0
        )
        if bounded:
            shape = self._queue_shape
            if shape is not None and not k.start and k.step is None:
                return ShapedSlice.of(self, k.stop, shape)
            return QuerySet.__getitem__(self.candidates(k.stop), k)
        return super().__getitem__(k)

    def _plain(self) -> "QueueQuerySet[M]":
        clone = self._clone()
        clone._queue_bounded = False
        return clone

    def candidates(self, n: int) -> "QueueQuerySet[M]":
        """This queryset limited to the candidates for its first n rows: the rows
        with due in [D_1, D_n + W_max], or with no clock and activity in
        [R_n, R_1] when there is no D_n (subscripts count this queryset's rows in
        due order and in recency order)."""
        plain = self._plain()
        # The subqueries keep every filter (the cursor's too: a filter holds its
        # own copy of the key expression) but not the annotations, which would be
        # copied and relabelled into each of them.
        bare = plain._clone()
        bare.query.annotations = {}
        bare.query.set_annotation_mask(None)
        bare.query.select_related = False
        _without_unused_joins(bare)
        clock = bare.filter(sla_due_at__isnull=False)
        answered = bare.filter(sla_due_at__isnull=True)
        # What a cursor implies, so that the subqueries below scan from there.
        if self._queue_due_floor is not None:
            clock = clock.filter(sla_due_at__gte=self._queue_due_floor)
        if self._queue_recent_ceiling is not None:
            answered = answered.filter(last_activity_at__lte=self._queue_recent_ceiling)

        def nth(rows: QuerySet[Any], field: str, index: int) -> Subquery | Value:
            if field == "sla_due_at" and self._queue_clock_done:
                return Value(None, output_field=DateTimeField())
            order = (field, "id") if field == "sla_due_at" else (f"-{field}", "id")
            values = rows.order_by(*order).values(field)
            return _Scalar(QuerySet.__getitem__(values, slice(index - 1, index)))

        widest = Subquery(
            Brand.objects.order_by("-queue_window_minutes").values(
                "queue_window_minutes"
            )[:1]
        )
        # D_n + W_max is computed inside the subquery: under row-level security
        # PostgreSQL keeps a comparison with a non-leakproof expression (the
        # addition) out of the index condition.
        if self._queue_clock_done:
            limit: Subquery | Value = Value(None, output_field=DateTimeField())
        else:
            reach = ExpressionWrapper(
                F("sla_due_at") + Minutes(widest), output_field=DateTimeField()
            )
            limits = (
                clock.order_by("sla_due_at", "id")
                .annotate(queue_limit=reach)
                .values("queue_limit")
            )
            limit = _Scalar(QuerySet.__getitem__(limits, slice(n - 1, n)))
        # CASE, not COALESCE: PostgreSQL does not count COALESCE as leakproof.
        due_limit = Case(
            When(IsNull(limit, True), then=Value(_FAR_FUTURE)),
            default=limit,
            output_field=DateTimeField(),
        )
        # Answered rows only when fewer than n clock rows remain (no D_n, so no
        # limit; a limit is missing only then, or with no brand and no row).
        recent_floor = Case(
            When(
                IsNull(limit, True),
                then=Coalesce(nth(answered, "last_activity_at", n), Value(_FAR_PAST)),
            ),
            default=Value(_FAR_FUTURE),
            output_field=DateTimeField(),
        )
        # The ranges are read from the rows before the queue order's annotations
        # (no brand join) as a UNION ALL of ids: each arm a closed range on
        # helpdesk_conv_due_ix or helpdesk_conv_recent_ix, which PostgreSQL
        # estimates as narrow. Filters added after the order only narrow
        # `plain`, which the outer query applies.
        base = self._queue_base if self._queue_base is not None else plain
        ids = base.filter(
            sla_due_at__isnull=True,
            last_activity_at__gte=recent_floor,
            last_activity_at__lte=Case(
                When(
                    IsNull(limit, True),
                    then=nth(answered, "last_activity_at", 1),
                ),
                default=Value(_FAR_PAST),
                output_field=DateTimeField(),
            ),
        ).values("pk")
        if not self._queue_clock_done:
            clock_ids = base.filter(
                sla_due_at__gte=nth(clock, "sla_due_at", 1),
                sla_due_at__lte=due_limit,
            ).values("pk")
            ids = clock_ids.order_by().union(ids.order_by(), all=True)
        return self._by_ids(plain, base, ids)

    def _by_ids(
        self, plain: "QueueQuerySet[M]", base: QuerySet[Any], ids: QuerySet[Any]
    ) -> "QueueQuerySet[M]":
        """`plain`'s rows among `ids`, read by primary key.

        The arms of `ids` already apply every filter of `base`, so the outer query
        keeps only the tenant scope and the filters added after the order (a
        cursor's): no filter of its own may tempt the planner into scanning the
        tenant's rows (a status index looks like one row on unanalyzed tables). The
        ids are an array built once, and the brand is a left join, so neither can
        drive a nested loop over the conversations.
        """
        where = plain.query.where
        first = len(base.query.where.children)
        outer = plain._clone()
        if where.connector == AND and not where.negated and first <= len(where):
            scope = self.model._default_manager.all().query.where.children
            outer.query.where.children = [*scope, *where.children[first:]]
        chosen: QuerySet[Any]
        if connections[outer.db].vendor == "postgresql":
            chosen = outer.filter(_OwnIds(ids.order_by()))
        else:
            chosen = filter_ids_in(outer, ids)
        by_ids: Any = outer_join(chosen, "brand")
        result: QueueQuerySet[M] = by_ids
        return result


class ShapedSlice[M: Model](QueueQuerySet[M]):
    """The slice [:n] of a QueueQuerySet with a QueueShape: evaluating it reads
    the rows through the shape (the same statement and rows as the built slice:
    no queryset to build, clone and compile); anything else that needs its query
    (`.query`, a clone, `iterator()`, a count) builds the slice as QueueQuerySet
    does, from the queryset it was taken of, and so does a shape that declines."""

    _slice_of: "tuple[QueueQuerySet[M], int, QueueShape] | None" = None

    @classmethod
    def of(
        cls, source: QueueQuerySet[M], n: int, shape: QueueShape
    ) -> "ShapedSlice[M]":
        given: Any = source
        page = cls(model=source.model, using=given._db, hints=given._hints)
        # What the built slice would carry over from its source (a clone's).
        built: Any = page
        built._iterable_class = given._iterable_class
        built._fields = given._fields
        built._fetch_mode = given._fetch_mode
        built._prefetch_related_lookups = given._prefetch_related_lookups
        page._slice_of = (source, n, shape)
        return page

    def _built(self) -> None:
        if self._slice_of is not None:
            source, n, _ = self._slice_of
            self._slice_of = None
            built: Any = QuerySet.__getitem__(source.candidates(n), slice(n))
            self._query = built.query

    @property
    def query(self) -> Query:
        self._built()
        query: Query = QuerySet.query.fget(self)  # type: ignore[attr-defined]
        return query

    @query.setter
    def query(self, value: Query) -> None:
        self._slice_of = None
        QuerySet.query.fset(self, value)  # type: ignore[attr-defined]

    def _fetch_all(self) -> None:
        if self._result_cache is None and self._slice_of is not None:
            _, n, shape = self._slice_of
            if not getattr(self, "_prefetch_related_lookups", ()):
                self._result_cache = shape.first(n)
        super()._fetch_all()

    def __deepcopy__(self, memo: dict[int, Any]) -> "ShapedSlice[M]":
        self._built()
        copied: ShapedSlice[M] = super().__deepcopy__(memo)
        return copied


class _Scalar(Subquery):
    """A scalar subquery that reads no column of the query it is used in (the
    queue's bounds): compiled in its own scope where it is used, not copied and
    relabelled into that query's aliases at each use (the n-th bound is used four
    times). Its copies (one per use: resolving an expression copies it) share
    what it compiled to on each database, so it is compiled once per statement."""

    def __init__(self, queryset: Any, **extra: Any) -> None:
        super().__init__(queryset, **extra)
        self.compiled: dict[str, tuple[str, tuple[Any, ...]]] = {}

    def get_source_expressions(self) -> list[Any]:
        return []

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        if exprs:
            raise TypeError("a scalar of its own scope has no source expressions")

    def as_sql(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, tuple[Any, ...]]:
        done = self.compiled.get(connection.alias)
        if done is None:
            sql, params = self.query.get_compiler(connection=connection).as_sql()
            done = self.compiled[connection.alias] = (f"({sql})", tuple(params))
        return done


class _OwnIds(InArray):
    """helpdesk.lookups.InArray whose ids query stays its own: it reads no column
    of the outer query, so it is compiled as it is (its tables named in its own
    scope) instead of being copied and relabelled into the outer query's aliases,
    which was about a third of building a page (queue arms and bounds included)."""

    def get_source_expressions(self) -> list[Any]:
        return [self.column]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        [self.column] = exprs

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, tuple[Any, ...]]:
        column, column_params = compiler.compile(self.column)
        inner = self.ids.query.get_compiler(connection=connection)
        ids, ids_params = inner.as_sql()
        return f"{column} = ANY(ARRAY({ids}))", (*column_params, *ids_params)


def _without_unused_joins(queryset: QuerySet[Any]) -> None:
    """Leave out of `queryset`'s FROM clause (in place) the joins its filters do
    not read: the bounds and ranges select ids, and the brand join that the
    page's select_related made (helpdesk.lookups.outer_join) only cost planning
    in each of them and kept the assignee index from answering them alone."""
    query = queryset.query
    columns: Any = query
    needed = set(columns._gen_col_aliases([query.where]))
    for alias in reversed(list(query.alias_map)):
        join: Any = query.alias_map[alias]
        if alias in needed:
            parent = getattr(join, "parent_alias", None)
            if parent is not None:
                needed.add(parent)
        elif getattr(join, "parent_alias", None) is not None:
            query.alias_refcount[alias] = 0


def with_queue_order(queryset: QuerySet[Any], now: datetime) -> QueueQuerySet[Any]:
    """Annotate the queue key at `now` (and the answered rows' recency); order by it.

    Annotating again (a later page's `now`) replaces the earlier annotations. The
    result is a QueueQuerySet: its slices [:n] sort only the candidates.
    """
    base = getattr(queryset, "_queue_base", None)
    if base is None:
        base = queryset.order_by()
        # The bounds read only ids and filters from it: without the caller's
        # annotations (subqueries per row) nothing has to copy and relabel them
        # into each arm.
        base.query.annotations = {}
        base.query.set_annotation_mask(None)
        base.query.select_related = False
        _without_unused_joins(base)
    annotated = queryset.annotate(
        **{KEY: queue_key_expression(now), RECENT: recent_expression()}
    ).order_by(*QUEUE_ORDER)
    if isinstance(annotated, QueueQuerySet):
        ordered = annotated._clone()
    else:
        ordered = QueueQuerySet(
            model=annotated.model,
            query=annotated.query.chain(),
            using=annotated._db,
            hints=annotated._hints,
        )
        lookups = getattr(annotated, "_prefetch_related_lookups", ())
        setattr(ordered, "_prefetch_related_lookups", tuple(lookups))  # noqa: B010
        ordered._iterable_class = annotated._iterable_class
    ordered._queue_bounded = True
    ordered._queue_base = base
    return ordered
