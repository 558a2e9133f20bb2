"""Report selectors (R9, R10): care performance read from the hourly rollups.

Every selector takes the caller's `membership` (its tenant must be open) and a
`ReportFilters`, and reads `ReportRollup` counters and `ReportBucket` histogram
cells only, aggregated in SQL with a constant number of queries, never messages.
The exception is `report_conversation_rows`, which streams facts joined to their
conversations for the per-conversation CSV.

Periods are whole days `[start, end]` in the report's time zone: the chosen
brand's, else `filters.timezone` (UTC by default). A rollup hour belongs to the
day its start falls in (zones offset by a fraction of an hour round to the UTC
hour). Facts count in the hour their demand started (the customer's message), so
a period's response rate describes the demand that arrived in it.

Filters: `brand_id`, `account_id` and `platform` narrow every number. `agent_id`
narrows what agents do (answers, response times, next responses, resolutions,
replies); demand is never an agent's, so conversations, inbound, no-reply marks,
off-hours demand and breach events stay those of the other filters, and the
response rate becomes the agent's share of the demand.

Levels: whole UTC days inside a period are read from the coarse levels
(`ReportDailyRollup` counters when no agent is chosen; `ReportBlockBucket`
histogram blocks of 1, 4, 16 and 64 days when no agent, account or platform is
chosen), the hours at its edges (a zone that is not UTC) from the hourly
level; both hold the same sums, so the numbers do not depend on the level.

Durations are seconds (floats within 1% of the exact percentile, see
helpdesk.histograms; on PostgreSQL the statement sends one row per group, its
cells as arrays in key order, walked here: _group_quantiles); a rate or
share is a float in [0, 1], None when its denominator is 0, and so is a
percentile with nothing measured.
"""

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import (
    BooleanField,
    Exists,
    ExpressionWrapper,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import (
    ExtractHour,
    ExtractIsoWeekDay,
    TruncDate,
)
from django.db.models.sql.constants import CURSOR, MULTI

from helpdesk import histograms
from helpdesk.compiled import CompiledQuery
from helpdesk.models import (
    BLOCK_SPANS,
    CareFact,
    Conversation,
    ReportBlockBucket,
    ReportBucket,
    ReportDailyAgentRollup,
    ReportDailyRollup,
    ReportHourlyInbound,
    ReportRollup,
)
from helpdesk.planning import planned_for_its_values
from tenants.models import Brand, Membership
from tenants.sla import sla_policy_view

Metric = ReportBucket.Metric
DIRECT_MESSAGE = Conversation.Origin.DIRECT_MESSAGE
BANDS = ("small", "medium", "large")
FAIRNESS_LIMIT = 1.2
# Counters that describe demand (never attributed to an agent).
DEMAND = ("opened", "off_hours_opened", "no_reply", "inbound", "breaches")
# Counters that describe what agents did (narrowed by the agent filter).
WORK = (
    "answered",
    "answered_1h",
    "answered_24h",
    "off_hours_answered_first_hour",
    "first_breached",
    "next_responses",
    "next_breached",
    "resolved",
    "resolution_breached",
)
ROWS_CHUNK = 2000
# The histogram blocks' grouping that counts every duration (not per agent or
# per follower band).
ALL_DURATIONS = {"agent_id": 0, "follower_band": ""}


@dataclass(frozen=True)
class ReportFilters:
    """What a report covers: the days `start`..`end` (both included) and optional
    brand, social account, platform and agent ids. `timezone` sets the day
    boundaries when no brand is chosen (a chosen brand's own zone wins)."""

    start: date
    end: date
    brand_id: int | None = None
    account_id: int | None = None
    platform: str | None = None
    agent_id: int | None = None
    timezone: str = "UTC"

    @property
    def days(self) -> int:
        """How many days the period has (at least 1)."""
        return max((self.end - self.start).days + 1, 1)

    def previous(self) -> "ReportFilters":
        """The same filters over the same number of days just before."""
        return replace(
            self,
            start=self.start - timedelta(days=self.days),
            end=self.start - timedelta(days=1),
        )


@dataclass(frozen=True)
class _Scope:
    """A report's resolved context: the brand (if any), zone and UTC bounds."""

    filters: ReportFilters
    brand: Brand | None
    zone: ZoneInfo

    def bounds(self, filters: ReportFilters | None = None) -> tuple[datetime, datetime]:
        f = filters or self.filters
        first = datetime.combine(f.start, time(), tzinfo=self.zone)
        after = datetime.combine(f.end + timedelta(days=1), time(), tzinfo=self.zone)
        return first.astimezone(UTC), after.astimezone(UTC)


# The report's brand, its queryset built and compiled once per connection
# (helpdesk.compiled): each selector of a page reads it, and building the
# lookup cost about 1 ms of CPU each time, more than the rest of its work.
_BRAND = CompiledQuery(
    lambda pk: Brand.objects.filter(pk=pk).order_by("pk")[:1],
    [int],
)


def _scope(filters: ReportFilters) -> _Scope:
    brand = None
    if filters.brand_id is not None:
        brand = _BRAND.first(filters.brand_id)
    zone_name = brand.timezone if brand is not None else filters.timezone
    return _Scope(filters=filters, brand=brand, zone=ZoneInfo(zone_name or "UTC"))


def _dimension_filter(filters: ReportFilters) -> Q:
    """The brand, account and platform filters on rollup rows, cells or facts."""
    q = Q()
    if filters.brand_id is not None:
        q &= Q(brand_id=filters.brand_id)
    if filters.account_id is not None:
        q &= Q(account_id=filters.account_id)
    if filters.platform is not None:
        q &= Q(platform=filters.platform)
    return q


def _agent_filter(filters: ReportFilters) -> Q:
    return Q() if filters.agent_id is None else Q(agent_id=filters.agent_id)


def _in(bounds: tuple[datetime, datetime]) -> Q:
    return Q(hour__gte=bounds[0], hour__lt=bounds[1])


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


# A report's statement narrows by a few day or hour ranges OR'd together (and
# block spans); its good plan is a bitmap of index ranges, which only values
# show. Once prepared, PostgreSQL plans it generically after five custom plans,
# and the generic plan, costed without the values (one row estimated), walks all
# of the brand's rollup rows or block cells through the index and filters the
# ranges: at 100k conversations the 90-day summary took 300 ms instead of 25 ms.
# A report statement plans in well under a millisecond; nothing to save. So
# every report statement is planned for its values (helpdesk.planning).


def _fetch(queryset: QuerySet[Any]) -> list[tuple[Any, ...]]:
    """The rows of a `values_list` queryset. On PostgreSQL without Django's
    per-row converters (its values are Python's already: bool, int, date), which
    cost more than the query itself on thousands of histogram cells, and planned
    for its own values (never prepared, see planned_for_its_values)."""
    db = connections[queryset.db]
    if db.vendor != "postgresql":
        return list(queryset)
    compiler = queryset.query.get_compiler(using=queryset.db)
    db.ensure_connection()
    with planned_for_its_values(db):
        chunks = compiler.execute_sql(MULTI, chunked_fetch=False)
    return [tuple(row) for chunk in chunks or () for row in chunk]


def _arrays_sql(sql: str, groups: int) -> str:
    """SQL of one row per group of `sql`'s rows `(*groups, key, n)`: the group,
    then its keys and their counts as two arrays in key order (rows of 0 left
    out; rows of the same key stay apart, next to each other)."""
    group = ", ".join(f"g{n}" for n in range(groups))
    # Column names are ours; the values stay the inner statement's parameters.
    return (
        f"SELECT {group}, array_agg(key ORDER BY key), "  # noqa: S608
        f"array_agg(n::bigint ORDER BY key) FROM ({sql}) AS cells({group}, key, n) "
        f"WHERE n > 0 GROUP BY {group}"
    )


def _walk(
    keys: list[int], counts: list[int], shares: tuple[float, ...]
) -> list[float | None]:
    """histograms.quantiles of the cells `keys` x `counts`, given in key order
    (a key may come several times in a row, its counts adding up: the bucket
    where the running count first passes a rank is the same either way). The
    running counts are ints and each rank the same float, compared exactly."""
    running = list(accumulate(counts))
    total = running[-1] if running else 0
    if total <= 0:
        return [None] * len(shares)
    value = histograms.value
    last = len(keys) - 1
    return [
        value(keys[min(bisect_right(running, share * (total - 1)), last)])
        for share in shares
    ]


def _group_quantiles(
    queryset: QuerySet[Any], groups: int, shares: tuple[float, ...]
) -> dict[tuple[Any, ...], list[float | None]]:
    """The `shares` quantiles of the histogram of each group of a `values_list`
    queryset of rows `(*groups, key, n)` (rows of the same group and key add
    up, so a caller need not sum them first): `{group: [quantile, ...]}`,
    groups with nothing counted left out. The same floats as
    histograms.quantiles over each group's merged `{key: n}`.

    On PostgreSQL the statement sends one row per group, its cells as two
    arrays in key order (_arrays_sql), walked here; planned for its own values
    like every report statement (planned_for_its_values). Its rows cost less to
    send and read than the cells (13k for the time series' 90 days at the
    bench's 100k conversations), and less to make than the running sums of a
    window (the walk in SQL before). Elsewhere the cells are fetched and merged."""
    db = connections[queryset.db]
    if db.vendor != "postgresql":
        return _python_quantiles(_fetch(queryset), groups, shares)
    compiler = queryset.query.get_compiler(using=queryset.db)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return {}
    wrapped = (_arrays_sql(sql, groups), params)
    # The compiler runs the statement wrapped around its own query (through
    # Django's cursor, so it is logged and counted like any other).
    compiler.as_sql = lambda *args, **kwargs: wrapped
    db.ensure_connection()
    with planned_for_its_values(db):
        cursor = compiler.execute_sql(CURSOR)
    try:
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return {
        tuple(row[:groups]): _walk(row[groups], row[groups + 1], shares) for row in rows
    }


def _python_quantiles(
    rows: list[tuple[Any, ...]], groups: int, shares: tuple[float, ...]
) -> dict[tuple[Any, ...], list[float | None]]:
    """_group_quantiles computed here from the fetched rows."""
    merged: dict[tuple[Any, ...], dict[int, int]] = defaultdict(dict)
    for *group, key, n in rows:
        if n:
            cells = merged[tuple(group)]
            cells[key] = cells.get(key, 0) + int(n)
    found = {
        group: histograms.quantiles(cells, shares) for group, cells in merged.items()
    }
    return {group: values for group, values in found.items() if values[0] is not None}


# --- Levels --------------------------------------------------------------------

EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class _Split:
    """A span of time `[first, after)` as the hours at its edges (read hourly)
    and the whole UTC days `[days[0], days[1])` between them (read coarse)."""

    hours: tuple[tuple[datetime, datetime], ...]
    days: tuple[date, date] | None


def _split(first: datetime, after: datetime) -> _Split:
    first, after = first.astimezone(UTC), after.astimezone(UTC)
    midnight = datetime.combine(first.date(), time(), tzinfo=UTC)
    lo = midnight if midnight == first else midnight + timedelta(days=1)
    hi = datetime.combine(after.date(), time(), tzinfo=UTC)
    if lo >= hi:
        return _Split(hours=((first, after),) if first < after else (), days=None)
    hours = tuple(
        (start, end) for start, end in ((first, lo), (hi, after)) if start < end
    )
    return _Split(hours=hours, days=(lo.date(), hi.date()))


def _blocks(lo: date, hi: date, spans: tuple[int, ...] = ()) -> list[Q]:
    """Conditions on `ReportBlockBucket` rows covering the days `[lo, hi)`
    exactly once: the largest aligned blocks inside, smaller ones at the ends."""
    spans = spans or tuple(sorted(BLOCK_SPANS, reverse=True))
    if lo >= hi:
        return []
    span, rest = spans[0], spans[1:]
    a, b = (lo - EPOCH).days, (hi - EPOCH).days
    first, last = -(-a // span) * span, b // span * span
    if not rest:
        return [Q(span=span, day__gte=lo, day__lt=hi)]
    if first >= last:
        return _blocks(lo, hi, rest)
    inner_lo, inner_hi = EPOCH + timedelta(days=first), EPOCH + timedelta(days=last)
    return [
        *_blocks(lo, inner_lo, rest),
        Q(span=span, day__gte=inner_lo, day__lt=inner_hi),
        *_blocks(inner_hi, hi, rest),
    ]


def _any(conditions: list[Q]) -> Q:
    combined = Q(pk__in=[])
    for condition in conditions:
        combined |= condition
    return combined


def _coarse_histograms(filters: ReportFilters) -> bool:
    """Whether histogram blocks can serve these filters (they keep only brand)."""
    return (
        filters.agent_id is None
        and filters.account_id is None
        and filters.platform is None
    )


def _utc_days(scope: _Scope) -> bool:
    """Whether the report's days are UTC days (each local midnight is one)."""
    f = scope.filters
    return all(
        datetime.combine(
            f.start + timedelta(days=n), time(), tzinfo=scope.zone
        ).utcoffset()
        == timedelta(0)
        for n in range(f.days + 1)
    )


def _levels_query(
    split: _Split,
    coarse: Callable[[date, date], QuerySet[Any]],
    hourly: Callable[[Q], QuerySet[Any]],
) -> QuerySet[Any]:
    """The rows of `coarse(first day, day after)` for the split's whole UTC days
    and of `hourly(hours)` for its edge hours (UNION ALL; the caller adds rows
    of the same group)."""
    parts = []
    if split.days is not None:
        parts.append(coarse(*split.days))
    if split.hours or not parts:
        parts.append(hourly(_any(_hour_ranges([split]))))
    return parts[0] if len(parts) == 1 else parts[0].union(parts[1], all=True)


def _levels(
    split: _Split,
    coarse: Callable[[date, date], QuerySet[Any]],
    hourly: Callable[[Q], QuerySet[Any]],
) -> list[tuple[Any, ...]]:
    """One query: the rows of _levels_query."""
    return _fetch(_levels_query(split, coarse, hourly))


def _levels_quantiles(
    split: _Split,
    coarse: Callable[[date, date], QuerySet[Any]],
    hourly: Callable[[Q], QuerySet[Any]],
    shares: tuple[float, ...],
) -> dict[tuple[Any, ...], list[float | None]]:
    """One query: the `shares` quantiles of each group of _levels_query's rows
    `(group, key, n)` (_group_quantiles)."""
    return _group_quantiles(_levels_query(split, coarse, hourly), 1, shares)


# --- Summary -------------------------------------------------------------------


def _period_splits(
    scope: _Scope, periods: dict[str, ReportFilters]
) -> tuple[datetime, list[_Split]]:
    """Where the current period starts, and each period split into levels."""
    mid = scope.bounds(periods["period"])[0]
    return mid, [_split(*scope.bounds(filters)) for filters in periods.values()]


def _flag(condition: Q) -> Any:
    # A boolean expression (not CASE): the planner then knows it has two values
    # and groups by hashing in memory instead of sorting every row.
    return ExpressionWrapper(condition, output_field=BooleanField())


def _hour_ranges(splits: list[_Split]) -> list[Q]:
    return [_in(hours) for split in splits for hours in split.hours]


def _period_sums(scope: _Scope, periods: dict[str, ReportFilters]) -> dict[str, int]:
    """One query: the counters of each period, split by start channel.

    Grouped by (period, direct message or not, the agent's or not) with plain
    sums, which reads the rollup rows once (cheaper than filtered aggregates).
    With no agent chosen, whole UTC days come from the daily rows (a UNION ALL
    with the hourly rows of the edges, when there are any).
    """
    agent_id = scope.filters.agent_id
    mid, splits = _period_splits(scope, periods)
    counters = (*DEMAND, *WORK)

    def grouped(queryset: QuerySet[Any], in_period: Q) -> QuerySet[Any]:
        groups = {
            "in_period": _flag(in_period),
            "is_private": _flag(Q(origin=DIRECT_MESSAGE)),
            "is_mine": (
                Value(True, output_field=BooleanField())
                if agent_id is None
                else _flag(Q(agent_id=agent_id))
            ),
        }
        result: QuerySet[Any] = (
            queryset.filter(_dimension_filter(scope.filters))
            .annotate(**groups)
            .values(*groups)
            .annotate(**{f"sum_{counter}": Sum(counter) for counter in counters})
            .values_list(*groups, *(f"sum_{counter}" for counter in counters))
        )
        return result

    if agent_id is None:
        days = [split.days for split in splits if split.days is not None]
        hours = _hour_ranges(splits)
        parts = []
        if days:
            parts.append(
                grouped(
                    ReportDailyRollup.objects.filter(
                        _any([Q(day__gte=lo, day__lt=hi) for lo, hi in days])
                    ),
                    Q(day__gte=mid.astimezone(UTC).date()),
                )
            )
        if hours or not parts:
            parts.append(
                grouped(ReportRollup.objects.filter(_any(hours)), Q(hour__gte=mid))
            )
        rows = parts[0] if len(parts) == 1 else parts[0].union(parts[1], all=True)
    else:
        rows = grouped(
            ReportRollup.objects.filter(_both_periods(scope, periods)),
            Q(hour__gte=mid),
        )
    sums: dict[str, int] = defaultdict(int)
    for in_period, is_private, is_mine, *values in _fetch(rows):
        name = "period" if in_period else "previous"
        channel = "private" if is_private else "public"
        n = dict(zip(counters, (int(value or 0) for value in values), strict=True))
        for counter in DEMAND:
            sums[f"{name}.{counter}"] += n[counter]
        sums[f"{name}.opened_{channel}"] += n["opened"]
        sums[f"{name}.no_reply_{channel}"] += n["no_reply"]
        if is_mine:
            for counter in WORK:
                sums[f"{name}.{counter}"] += n[counter]
            sums[f"{name}.answered_{channel}"] += n["answered"]
    return sums


def _both_periods(scope: _Scope, periods: dict[str, ReportFilters]) -> Q:
    bounds = [scope.bounds(filters) for filters in periods.values()]
    return _in((min(b[0] for b in bounds), max(b[1] for b in bounds)))


SUMMARY_SHARES = (0.5, 0.9)


def _period_quantiles(
    scope: _Scope, periods: dict[str, ReportFilters], metrics: tuple[str, ...]
) -> dict[tuple[str, str], list[float | None]]:
    """One query: the p50 and p90 of each (period, metric) with a duration.

    With no agent, account or platform chosen, whole UTC days come from the
    histogram blocks (a UNION ALL with the hourly cells of the edges).
    """
    mid, splits = _period_splits(scope, periods)

    def grouped(queryset: QuerySet[Any], in_period: Q) -> QuerySet[Any]:
        result: QuerySet[Any] = (
            queryset.filter(metric__in=metrics)
            .annotate(in_period=_flag(in_period))
            .values("in_period", "metric", "key")
            .annotate(n=Sum("count"))
            .values_list("in_period", "metric", "key", "n")
        )
        return result

    hourly = ReportBucket.objects.filter(
        _dimension_filter(scope.filters), _agent_filter(scope.filters)
    )
    if _coarse_histograms(scope.filters):
        blocks = [
            condition
            for split in splits
            if split.days is not None
            for condition in _blocks(*split.days)
        ]
        hours = _hour_ranges(splits)
        parts = []
        if blocks:
            parts.append(
                grouped(
                    ReportBlockBucket.objects.filter(
                        _dimension_filter(scope.filters),
                        _any(blocks),
                        **ALL_DURATIONS,
                    ),
                    Q(day__gte=mid.astimezone(UTC).date()),
                )
            )
        if hours or not parts:
            parts.append(grouped(hourly.filter(_any(hours)), Q(hour__gte=mid)))
        cells = parts[0] if len(parts) == 1 else parts[0].union(parts[1], all=True)
    else:
        cells = grouped(hourly.filter(_both_periods(scope, periods)), Q(hour__gte=mid))
    return {
        ("period" if in_period else "previous", metric): found
        for (in_period, metric), found in _group_quantiles(
            cells, 2, SUMMARY_SHARES
        ).items()
    }


def _summary_numbers(
    sums: dict[str, int],
    found: dict[tuple[str, str], list[float | None]],
    name: str,
) -> dict[str, Any]:
    def n(counter: str) -> int:
        return sums.get(f"{name}.{counter}", 0)

    def q(metric: str, share: float) -> float | None:
        quantiles = found.get((name, metric))
        return None if quantiles is None else quantiles[SUMMARY_SHARES.index(share)]

    needing = n("opened") - n("no_reply")
    answered = n("answered")
    needing_public = n("opened_public") - n("no_reply_public")
    needing_private = n("opened_private") - n("no_reply_private")
    responses = answered + n("next_responses")
    return {
        "conversations": n("opened"),
        "needing_reply": needing,
        "answered": answered,
        "no_reply": n("no_reply"),
        "unanswered": max(needing - answered, 0),
        "response_rate": _rate(answered, needing),
        "public_response_rate": _rate(n("answered_public"), needing_public),
        "private_response_rate": _rate(n("answered_private"), needing_private),
        "answered_within_1h": _rate(n("answered_1h"), needing),
        "answered_within_24h": _rate(n("answered_24h"), needing),
        "first_response_p50": q(Metric.FIRST_RAW, 0.5),
        "first_response_p90": q(Metric.FIRST_RAW, 0.9),
        "first_response_business_p50": q(Metric.FIRST_BUSINESS, 0.5),
        "first_response_business_p90": q(Metric.FIRST_BUSINESS, 0.9),
        "next_response_p50": q(Metric.NEXT_RAW, 0.5),
        "next_response_p90": q(Metric.NEXT_RAW, 0.9),
        "breaches": n("breaches"),
        "breach_rate": _rate(n("first_breached") + n("next_breached"), responses),
        "resolution_p50": q(Metric.RESOLUTION_RAW, 0.5),
        "resolution_p90": q(Metric.RESOLUTION_RAW, 0.9),
        "off_hours_coverage": _rate(
            n("off_hours_answered_first_hour"), n("off_hours_opened")
        ),
        "inbound": n("inbound"),
    }


SUMMARY_FIELDS = (
    "conversations",
    "needing_reply",
    "answered",
    "no_reply",
    "unanswered",
    "response_rate",
    "public_response_rate",
    "private_response_rate",
    "answered_within_1h",
    "answered_within_24h",
    "first_response_p50",
    "first_response_p90",
    "first_response_business_p50",
    "first_response_business_p90",
    "next_response_p50",
    "next_response_p90",
    "breaches",
    "breach_rate",
    "resolution_p50",
    "resolution_p90",
    "off_hours_coverage",
    "inbound",
)


def report_summary(membership: Membership, filters: ReportFilters) -> dict[str, Any]:
    """The headline numbers of a period and of the period just before.

    Returns `{"period": {...}, "previous": {...}, "change": {...}}`. `period` and
    `previous` hold `start` and `end` (dates) and SUMMARY_FIELDS:
    conversations (opened), needing_reply (opened - no_reply), answered,
    no_reply, unanswered, response_rate (answered / needing_reply),
    public_response_rate and private_response_rate (by the conversation's start
    channel: a direct message is private), answered_within_1h and
    answered_within_24h (shares of needing_reply), first_response_p50/p90
    (calendar seconds), first_response_business_p50/p90, next_response_p50/p90,
    breaches (breach events), breach_rate (breached first and next responses /
    those responses), resolution_p50/p90 (calendar seconds), off_hours_coverage
    (off-hours demand answered within the first business hour / off-hours
    demand) and inbound (customer messages). `change` is period - previous for
    each of SUMMARY_FIELDS (None when either is None). At most three queries.
    """
    scope = _scope(filters)
    periods = {"period": filters, "previous": filters.previous()}
    sums = _period_sums(scope, periods)
    found = _period_quantiles(
        scope,
        periods,
        (
            Metric.FIRST_RAW,
            Metric.FIRST_BUSINESS,
            Metric.NEXT_RAW,
            Metric.RESOLUTION_RAW,
        ),
    )
    result: dict[str, Any] = {}
    for name, period in periods.items():
        result[name] = {
            "start": period.start,
            "end": period.end,
            **_summary_numbers(sums, found, name),
        }
    result["change"] = {
        field: (
            None
            if result["period"][field] is None or result["previous"][field] is None
            else result["period"][field] - result["previous"][field]
        )
        for field in SUMMARY_FIELDS
    }
    return result


# --- Time series -----------------------------------------------------------------


def report_timeseries(
    membership: Membership, filters: ReportFilters
) -> list[dict[str, Any]]:
    """One row per day of the period, in order.

    Each row: `date`, `inbound` (customer messages), `inbound_by_platform`,
    `inbound_by_origin` and `inbound_by_sentiment` (`{value: count}`, values
    with none left out), `first_response_p50` and `first_response_p90` (calendar
    seconds of the demand that started that day, None when none was answered)
    and `target_seconds` (the first-response target of the brand's SLA policy;
    with no brand, the workspace fallback's). Four queries at most.
    """
    scope = _scope(filters)
    bounds = scope.bounds()
    day = TruncDate("hour", tzinfo=scope.zone)
    where = (_dimension_filter(filters), _in(bounds))
    utc_days = _utc_days(scope)
    volume: QuerySet[Any]
    cells: QuerySet[Any]
    if utc_days:
        # The report's days are UTC days: the daily rows and one-day blocks.
        days = Q(day__gte=filters.start, day__lte=filters.end)
        volume = ReportDailyRollup.objects.filter(
            _dimension_filter(filters), days, inbound__gt=0
        ).values("day", "platform", "origin", "sentiment")
    else:
        volume = (
            ReportRollup.objects.filter(*where, inbound__gt=0)
            .annotate(day=day)
            .values("day", "platform", "origin", "sentiment")
        )
    volume = volume.annotate(n=Sum("inbound")).values_list(
        "day", "platform", "origin", "sentiment", "n"
    )
    if utc_days and _coarse_histograms(filters):
        # One cell per day and key: read as they are (_group_quantiles adds
        # a key's rows up itself; a GROUP BY here cost more than the rest).
        cells = ReportBlockBucket.objects.filter(
            _dimension_filter(filters),
            days,
            span=1,
            metric=Metric.FIRST_RAW,
            **ALL_DURATIONS,
        ).values_list("day", "key", "count")
    else:
        cells = (
            ReportBucket.objects.filter(
                *where, _agent_filter(filters), metric=Metric.FIRST_RAW
            )
            .annotate(day=day)
            .values("day", "key")
            .annotate(n=Sum("count"))
            .values_list("day", "key", "n")
        )
    target = sla_policy_view(scope.brand).first_response_minutes * 60
    rows: dict[date, dict[str, Any]] = {}
    for offset in range(filters.days):
        current = filters.start + timedelta(days=offset)
        rows[current] = {
            "date": current,
            "inbound": 0,
            "inbound_by_platform": {},
            "inbound_by_origin": {},
            "inbound_by_sentiment": {},
            "first_response_p50": None,
            "first_response_p90": None,
            "target_seconds": target,
        }
    for when, platform, origin, sentiment, n in _fetch(volume):
        row = rows.get(when)
        if row is None:
            continue
        row["inbound"] += n
        for group, value in (
            ("inbound_by_platform", platform),
            ("inbound_by_origin", origin),
            ("inbound_by_sentiment", sentiment),
        ):
            row[group][value] = row[group].get(value, 0) + n
    for (when,), (p50, p90) in _group_quantiles(cells, 1, (0.5, 0.9)).items():
        if when in rows:
            rows[when]["first_response_p50"] = p50
            rows[when]["first_response_p90"] = p90
    return list(rows.values())


# --- Agents --------------------------------------------------------------------


def report_agents(
    membership: Membership, filters: ReportFilters
) -> list[dict[str, Any]]:
    """One row per agent who did something in the period, most answers first.

    Each row: `agent_id`, `display_name` and `email` (empty when the user is no
    longer a member), `answered` (first responses), `first_response_p50`
    (calendar seconds), `public_replies`, `private_moves` and `no_reply` (marks).
    Agents with all counters zero are left out. Four queries at most: whole UTC
    days from the daily per-agent rows and the per-agent histogram blocks (the
    latter with no account or platform chosen), edge hours from the hourly level.
    """
    scope = _scope(filters)
    split = _split(*scope.bounds())
    where = (_dimension_filter(filters), _agent_filter(filters), ~Q(agent_id=0))
    counters = ("answered", "public_replies", "private_moves", "no_reply")

    def totals(queryset: QuerySet[Any]) -> QuerySet[Any]:
        result: QuerySet[Any] = (
            queryset.values("agent_id")
            .annotate(**{f"sum_{name}": Sum(name) for name in counters})
            .values_list("agent_id", *(f"sum_{name}" for name in counters))
        )
        return result

    def cells(queryset: QuerySet[Any]) -> QuerySet[Any]:
        result: QuerySet[Any] = (
            queryset.filter(metric=Metric.FIRST_RAW)
            .values("agent_id", "key")
            .annotate(n=Sum("count"))
            .values_list("agent_id", "key", "n")
        )
        return result

    sums: dict[int, list[int]] = defaultdict(lambda: [0] * len(counters))
    for agent_id, *values in _levels(
        split,
        lambda lo, hi: totals(
            ReportDailyAgentRollup.objects.filter(*where, day__gte=lo, day__lt=hi)
        ),
        lambda hours: totals(ReportRollup.objects.filter(*where, hours)),
    ):
        for n, value in enumerate(values):
            sums[agent_id][n] += int(value or 0)
    agents = [agent_id for agent_id, values in sums.items() if any(values)]
    p50s: dict[tuple[Any, ...], list[float | None]] = {}
    if not agents:
        pass  # no cells to read
    elif filters.account_id is None and filters.platform is None:
        # The agents by id (not "agent_id <> 0"): the index then finds each
        # agent's blocks instead of scanning all their cells.
        p50s = _levels_quantiles(
            split,
            lambda lo, hi: cells(
                ReportBlockBucket.objects.filter(
                    *where,
                    _any(_blocks(lo, hi)),
                    agent_id__in=agents,
                    follower_band="",
                )
            ),
            lambda hours: cells(ReportBucket.objects.filter(*where, hours)),
            (0.5,),
        )
    else:
        p50s = _group_quantiles(
            cells(ReportBucket.objects.filter(*where, _in(scope.bounds()))), 1, (0.5,)
        )
    rows: list[dict[str, Any]] = [
        {
            "agent_id": agent_id,
            "display_name": "",
            "email": "",
            "answered": answered,
            "first_response_p50": p50s.get((agent_id,), [None])[0],
            "public_replies": public,
            "private_moves": moves,
            "no_reply": no_reply,
        }
        for agent_id, (answered, public, moves, no_reply) in sums.items()
        if answered or public or moves or no_reply
    ]
    members = Membership.objects.filter(
        user_id__in=[row["agent_id"] for row in rows]
    ).values_list("user_id", "user__display_name", "user__email")
    names = {user_id: (name, email) for user_id, name, email in members}
    for row in rows:
        name, email = names.get(row["agent_id"], ("", ""))
        row["display_name"] = name or email
        row["email"] = email
    rows.sort(key=lambda row: (-row["answered"], row["display_name"], row["agent_id"]))
    return rows


# --- Fairness --------------------------------------------------------------------


def report_fairness(membership: Membership, filters: ReportFilters) -> dict[str, Any]:
    """First-response times by the author's follower band (R10).

    Returns `{"bands": {"small"|"medium"|"large": {"answered", "first_response_p50",
    "first_response_p90"}}, "ratio", "flagged"}`: `ratio` is the slowest band's
    p90 over the fastest band's p90 among bands with answers (None with fewer
    than two such bands, or a fastest p90 of 0), `flagged` is ratio > 1.2.
    Calendar seconds. Three queries at most: whole UTC days from the daily
    per-agent rows and the per-band histogram blocks (the latter with no agent,
    account or platform chosen), edge hours from the hourly level.
    """
    scope = _scope(filters)
    split = _split(*scope.bounds())
    where = (_dimension_filter(filters), _agent_filter(filters))

    def answers(queryset: QuerySet[Any]) -> QuerySet[Any]:
        result: QuerySet[Any] = (
            queryset.values("follower_band")
            .annotate(n=Sum("answered"))
            .values_list("follower_band", "n")
        )
        return result

    def cells(queryset: QuerySet[Any]) -> QuerySet[Any]:
        result: QuerySet[Any] = (
            queryset.filter(metric=Metric.FIRST_RAW)
            .values("follower_band", "key")
            .annotate(n=Sum("count"))
            .values_list("follower_band", "key", "n")
        )
        return result

    answered: dict[str, int] = defaultdict(int)
    for band, n in _levels(
        split,
        lambda lo, hi: answers(
            ReportDailyAgentRollup.objects.filter(*where, day__gte=lo, day__lt=hi)
        ),
        lambda hours: answers(ReportRollup.objects.filter(*where, hours)),
    ):
        answered[band] += int(n or 0)
    if _coarse_histograms(filters):
        found = _levels_quantiles(
            split,
            lambda lo, hi: cells(
                # The bands as a list (not "band <> ''"): the index then finds
                # each band's blocks instead of scanning all its cells.
                ReportBlockBucket.objects.filter(
                    *where,
                    _any(_blocks(lo, hi)),
                    agent_id=0,
                    follower_band__in=BANDS,
                )
            ),
            lambda hours: cells(ReportBucket.objects.filter(*where, hours)),
            (0.5, 0.9),
        )
    else:
        found = _group_quantiles(
            cells(ReportBucket.objects.filter(*where, _in(scope.bounds()))),
            1,
            (0.5, 0.9),
        )
    bands: dict[str, dict[str, Any]] = {}
    for band in BANDS:
        p50, p90 = found.get((band,), [None, None])
        bands[band] = {
            "answered": int(answered.get(band) or 0),
            "first_response_p50": p50,
            "first_response_p90": p90,
        }
    p90s = [
        row["first_response_p90"]
        for row in bands.values()
        if row["answered"] and row["first_response_p90"] is not None
    ]
    ratio = max(p90s) / min(p90s) if len(p90s) >= 2 and min(p90s) > 0 else None
    return {
        "bands": bands,
        "ratio": ratio,
        "flagged": ratio is not None and ratio > FAIRNESS_LIMIT,
    }


# --- Heatmap -------------------------------------------------------------------


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _staffed(brand: Brand | None) -> list[list[bool]]:
    """Weekday x hour: whether any business hours of the brand fall in that hour."""
    if brand is None:
        return [[False] * 24 for _ in range(7)]
    hours = brand.business_hours or {}
    if not any(hours.get(day) for day in hours):
        return [[True] * 24 for _ in range(7)]
    grid = []
    for weekday in WEEKDAYS:
        intervals = [
            (_minutes(start), _minutes(end)) for start, end in hours.get(weekday, [])
        ]
        grid.append(
            [
                any(start < (h + 1) * 60 and end > h * 60 for start, end in intervals)
                for h in range(24)
            ]
        )
    return grid


def report_heatmap(membership: Membership, filters: ReportFilters) -> dict[str, Any]:
    """Inbound volume by hour of the week against staffed hours.

    Returns `{"timezone": name, "inbound": [[int] * 24] * 7, "staffed":
    [[bool] * 24] * 7}`, weekday 0 = Monday, hours in the report's time zone.
    `staffed` marks the hours that overlap the brand's business hours (all True
    for a brand with no hours, which counts as staffed around the clock; all
    False with no brand). Two queries at most (the hourly inbound rows).
    """
    scope = _scope(filters)
    counts = (
        ReportHourlyInbound.objects.filter(
            _dimension_filter(filters), _in(scope.bounds()), inbound__gt=0
        )
        .annotate(
            weekday=ExtractIsoWeekDay("hour", tzinfo=scope.zone),
            local_hour=ExtractHour("hour", tzinfo=scope.zone),
        )
        .values("weekday", "local_hour")
        .annotate(n=Sum("inbound"))
        .values_list("weekday", "local_hour", "n")
    )
    grid = [[0] * 24 for _ in range(7)]
    for weekday, hour, n in _fetch(counts):
        grid[int(weekday) - 1][int(hour)] += int(n)
    return {
        "timezone": str(scope.zone),
        "inbound": grid,
        "staffed": _staffed(scope.brand),
    }


# --- Per-conversation rows ------------------------------------------------------


def _first_of(kind: str) -> QuerySet[CareFact]:
    return CareFact.objects.filter(
        conversation_id=OuterRef("conversation_id"), kind=kind
    ).order_by("at", "id")


def _last_of(kind: str) -> QuerySet[CareFact]:
    return CareFact.objects.filter(
        conversation_id=OuterRef("conversation_id"), kind=kind
    ).order_by("-at", "-id")


ROW_FIELDS = (
    "conversation_id",
    "brand_id",
    "account_id",
    "platform",
    "origin",
    "follower_band",
    "opened_at",
    "first_response_seconds",
    "first_response_business_seconds",
    "first_response_breached",
    "next_response_breached",
    "resolution_seconds",
    "resolution_business_seconds",
    "resolution_breached",
    "resolved_at",
    "agent_id",
)


def report_conversation_rows(
    membership: Membership, filters: ReportFilters, *, chunk_size: int = ROWS_CHUNK
) -> Iterator[dict[str, Any]]:
    """One row per conversation opened in the period, oldest first, streamed.

    Reads the "opened" facts of the period (with the brand, account and platform
    filters) and, per conversation, its first response, next responses and last
    resolution facts (subqueries); rows come from the database in chunks of
    `chunk_size`, so a year of data never sits in memory. Each row has
    ROW_FIELDS: ids, platform, origin, follower band, opened_at, the first
    response's raw and business seconds and whether it breached, whether any
    next response breached, the resolution's raw and business seconds, whether
    it breached and when it happened (resolved_at), and the first responder's
    agent id (None when unanswered). `agent_id` in the filters keeps the
    conversations that agent answered first.
    """
    scope = _scope(filters)
    first, after = scope.bounds()
    first_response = _first_of(CareFact.Kind.FIRST_RESPONSE)
    resolution = _last_of(CareFact.Kind.RESOLUTION)
    rows = (
        CareFact.objects.filter(
            _dimension_filter(filters),
            kind=CareFact.Kind.OPENED,
            started_at__gte=first,
            started_at__lt=after,
        )
        .annotate(
            first_response_seconds=Subquery(first_response.values("raw_seconds")[:1]),
            first_response_business_seconds=Subquery(
                first_response.values("business_seconds")[:1]
            ),
            first_response_breached=Subquery(first_response.values("breached")[:1]),
            first_agent_id=Subquery(
                first_response.values("agent_id")[:1], output_field=IntegerField()
            ),
            next_response_breached=Exists(
                CareFact.objects.filter(
                    conversation_id=OuterRef("conversation_id"),
                    kind=CareFact.Kind.NEXT_RESPONSE,
                    breached=True,
                )
            ),
            resolution_seconds=Subquery(resolution.values("raw_seconds")[:1]),
            resolution_business_seconds=Subquery(
                resolution.values("business_seconds")[:1]
            ),
            resolution_breached=Subquery(resolution.values("breached")[:1]),
            resolved_at=Subquery(resolution.values("at")[:1]),
        )
        .order_by("started_at", "id")
    )
    if filters.agent_id is not None:
        rows = rows.filter(first_agent_id=filters.agent_id)
    values = rows.values_list(
        "conversation_id",
        "brand_id",
        "account_id",
        "platform",
        "origin",
        "follower_band",
        "started_at",
        "first_response_seconds",
        "first_response_business_seconds",
        "first_response_breached",
        "next_response_breached",
        "resolution_seconds",
        "resolution_business_seconds",
        "resolution_breached",
        "resolved_at",
        "first_agent_id",
    )
    for row in values.iterator(chunk_size=chunk_size):
        record = dict(zip(ROW_FIELDS, row, strict=True))
        record["first_response_breached"] = bool(record["first_response_breached"])
        record["resolution_breached"] = bool(record["resolution_breached"])
        yield record
