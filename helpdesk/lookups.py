"""Query shapes whose plans do not depend on table statistics.

On a table nobody has analyzed, PostgreSQL estimates `tenant_id = <n>` (which
every tenant row carries, from the manager and from row-level security) at a row
or two, so a scan of "the tenant's rows" and a primary-key lookup cost the same to
it. Given the choice inside a join it takes the scan that needs no outer row: a
nested loop that reads every contact of the tenant for each conversation. These
helpers leave it no such choice:

- `attach_columns`: a related row's columns as correlated scalar subqueries (one
  primary-key lookup per row, planned on its own), rebuilt into the related
  instance, instead of a join the planner may turn into a scan;
- `tag_names`: a conversation's tag names as one array subquery (a list);
- `filter_ids_in`: `id = ANY(ARRAY(subquery))` on PostgreSQL, so the subquery runs
  once and the outer rows come from primary-key lookups (`IN` on SQLite);
- `outer_join`: turns an inner join into a left join, so the related table is
  never the driving side of a nested loop.
"""

import json
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Expression, F, OuterRef, QuerySet, Subquery
from django.db.models.query import ModelIterable
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.constants import LOUTER

# Annotation names of attached columns: ATTACHED + "<relation>_<n>".
ATTACHED = "attached_"


def attach_columns[M: models.Model](
    queryset: QuerySet[M], relation: str, columns: Sequence[str]
) -> QuerySet[M]:
    """`queryset` with `relation` (a forward foreign key) loaded with `columns`.

    Each column is a scalar subquery by the related primary key (the related
    model's default manager, so tenant rows stay scoped); the rows come back with
    the related instance cached, those columns loaded and the rest deferred (read
    on access). Replaces select_related for that relation.
    """
    field: Any = queryset.model._meta.get_field(relation)
    related: Any = field.related_model
    annotations = {
        f"{ATTACHED}{relation}_{n}": Subquery(
            related._default_manager.filter(pk=OuterRef(field.attname)).values(column)[
                :1
            ]
        )
        for n, column in enumerate(columns)
    }
    attached: QuerySet[M] = queryset.annotate(**annotations)
    specs = (
        *getattr(queryset._iterable_class, "specs", ()),
        (relation, tuple(columns)),
    )
    attached._iterable_class = _attaching(specs)
    return attached


def _attaching(
    specs: tuple[tuple[str, tuple[str, ...]], ...],
) -> type[ModelIterable[Any]]:
    class Attaching(ModelIterable[Any]):
        """Rebuild the attached related instances from their annotations."""

        def __iter__(self) -> Iterator[Any]:
            db = self.queryset.db
            for row in super().__iter__():
                for relation, columns in specs:
                    _attach(row, db, relation, columns)
                yield row

    Attaching.specs = specs  # type: ignore[attr-defined]
    return Attaching


def _attach(row: Any, db: str, relation: str, columns: tuple[str, ...]) -> None:
    values = {
        column: row.__dict__.pop(f"{ATTACHED}{relation}_{n}", None)
        for n, column in enumerate(columns)
    }
    field = row._meta.get_field(relation)
    key = getattr(row, field.attname)
    if key is None:
        return
    model: Any = field.related_model
    loaded = {"id": key, **values}
    if hasattr(row, "tenant_id"):
        loaded.setdefault("tenant_id", row.tenant_id)
    names = [f.attname for f in model._meta.concrete_fields if f.attname in loaded]
    field.set_cached_value(row, model.from_db(db, names, [loaded[n] for n in names]))


class TagList(models.Field):  # type: ignore[type-arg]
    """A list of names read from an array (PostgreSQL) or a JSON array (SQLite)."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> list[str]:
        if value is None:
            return []
        names = json.loads(value) if isinstance(value, str) else value
        return sorted(name for name in names if name is not None)


class NameArray(Subquery):
    """ARRAY(subquery) on PostgreSQL; a JSON array of its one column on SQLite."""

    template = "ARRAY(%(subquery)s)"

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, tuple[Any, ...]]:
        sql, params = self.as_sql(
            compiler,
            connection,
            template='(SELECT json_group_array("name") FROM (%(subquery)s))',
            **extra,
        )
        return sql, tuple(params)


def tag_names() -> NameArray:
    """The names of a conversation's tags (OuterRef `pk`), as a sorted list."""
    from helpdesk.models import ConversationTag, Tag

    name = Subquery(Tag.objects.filter(pk=OuterRef("tag_id")).values("name")[:1])
    names = (
        ConversationTag.objects.filter(conversation_id=OuterRef("pk"))
        .annotate(name=name)
        .values("name")
    )
    return NameArray(names, output_field=TagList())


class InArray(Expression):
    """`<pk> = ANY(ARRAY(<subquery>))`: a condition for filter()."""

    conditional = True
    output_field = models.BooleanField()

    def __init__(self, ids: QuerySet[Any]) -> None:
        super().__init__()
        self.column: Any = F("pk")
        self.ids: Any = Subquery(ids)

    def get_source_expressions(self) -> list[Any]:
        return [self.column, self.ids]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        self.column, self.ids = exprs

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, tuple[Any, ...]]:
        column, column_params = compiler.compile(self.column)
        ids, ids_params = compiler.compile(self.ids)
        return f"{column} = ANY(ARRAY{ids})", (*column_params, *ids_params)


def filter_ids_in[M: models.Model](
    queryset: QuerySet[M], ids: QuerySet[Any]
) -> QuerySet[M]:
    """`queryset` restricted to the primary keys `ids` selects (one column).

    On PostgreSQL the ids are an array built once (an InitPlan), then looked up by
    primary key; `pk IN (subquery)` would let the planner re-run the subquery for
    each row of a scan it misjudged as tiny.
    """
    if connections[queryset.db].vendor != "postgresql":
        return queryset.filter(pk__in=ids)
    return queryset.filter(InArray(ids.order_by()))


def outer_join[M: models.Model](queryset: QuerySet[M], relation: str) -> QuerySet[M]:
    """`queryset` with the join along `relation` (a foreign key, or a chain of them)
    made LEFT OUTER: the same rows when the keys are not null, and the joined table
    can only be the inner side of a join. select_related and expressions reuse it."""
    queryset = queryset.all()
    query = queryset.query
    joined = query.setup_joins(
        relation.split("__"), queryset.model._meta, query.get_initial_alias()
    )
    for alias in joined.joins[1:]:
        join: Any = query.alias_map[alias]
        if join.join_type != LOUTER:
            query.alias_map[alias] = join.promote()
    return queryset
