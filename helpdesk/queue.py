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
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    Case,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Func,
    OrderBy,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, Least
from django.db.models.sql.compiler import SQLCompiler

# The annotations inbox_conversations adds (helpdesk.pagination reads them back).
KEY = "queue_key"
RECENT = "queue_recent"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def with_queue_order[Q: QuerySet[Any]](queryset: Q, now: datetime) -> Q:
    """Annotate the queue key at `now` (and the answered rows' recency); order by it.

    Annotating again (a later page's `now`) replaces the earlier annotations.
    """
    annotated = queryset.annotate(
        **{KEY: queue_key_expression(now), RECENT: recent_expression()}
    )
    return annotated.order_by(*QUEUE_ORDER)
