"""Hourly rollups of care facts (R9): counters and mergeable histograms.

The SLA engine and the message services call these inside the transaction (and
tenant context) of the change, so a rollup moves with its fact or not at all. Each
call is one `INSERT ... ON CONFLICT (<cell key>) DO UPDATE SET n = n + EXCLUDED.n`
per row (PostgreSQL, and SQLite >= 3.24 for the demo); RLS checks the tenant
column like any other write.

Dimensions (`ROLLUP_DIMENSIONS`): the UTC hour the demand started (a fact's
`started_at`; a message's time for inbound and replies), brand, account id (0 for
none), platform, origin, sentiment, agent id (the responder for response, no-reply
and other agent facts; 0 for opened facts and inbound messages) and follower band.

Coarser levels move in the same statement (PostgreSQL: one statement with
data-modifying WITHs; SQLite: one statement per table), for reports:
`ReportDailyRollup` (the UTC day, brand, account, platform, origin and sentiment:
no agent, no follower band), `ReportDailyAgentRollup` (the UTC day, brand,
account, platform, agent and follower band: AGENT_COUNTERS),
`ReportHourlyInbound` (the hour, brand, account and platform: inbound) and
`ReportBlockBucket` (per brand and metric, the cells of blocks of 1, 4, 16 and
64 UTC days, `BLOCK_SPANS`; first responses also per agent and per follower
band). Each coarse row always equals the sum of the hourly rows (cells) it
covers.
"""

# ruff: noqa: S608 - the SQL is built from module constants; values are parameters.

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from helpdesk import histograms
from helpdesk.models import (
    AGENT_COUNTERS,
    BLOCK_SPANS,
    DAILY_DIMENSIONS,
    ROLLUP_COUNTERS,
    ROLLUP_DIMENSIONS,
    CareFact,
    Conversation,
    Message,
    ReportBlockBucket,
    ReportBucket,
    ReportDailyAgentRollup,
    ReportDailyRollup,
    ReportHourlyInbound,
    ReportRollup,
)
from helpdesk.services import writebatch
from tenants.context import tenant_context
from tenants.models import Tenant

ROLLUP_TABLE = ReportRollup._meta.db_table
BUCKET_TABLE = ReportBucket._meta.db_table
DAILY_TABLE = ReportDailyRollup._meta.db_table
BLOCK_TABLE = ReportBlockBucket._meta.db_table
# The unique keys of the coarse levels (their ON CONFLICT targets).
DAILY_KEY = ("tenant_id", "brand_id", *DAILY_DIMENSIONS[2:], "day")
AGENT_TABLE = ReportDailyAgentRollup._meta.db_table
AGENT_KEY = (
    "tenant_id",
    "brand_id",
    "account_id",
    "platform",
    "agent_id",
    "follower_band",
    "day",
)
INBOUND_TABLE = ReportHourlyInbound._meta.db_table
INBOUND_KEY = ("tenant_id", "brand_id", "hour", "account_id", "platform")
BLOCK_KEY = (
    "tenant_id",
    "brand_id",
    "metric",
    "agent_id",
    "follower_band",
    "span",
    "day",
    "key",
)
EPOCH = date(1970, 1, 1)
# Column names of the dimensions (brand is a foreign key).
DIMENSION_COLUMNS = ("tenant_id", *ROLLUP_DIMENSIONS)
# A first response given after a "no reply needed" mark: it feeds the time
# histograms only, never the rate counters (the conversation left the
# denominator when it was marked).
AFTER_NO_REPLY = "after_no_reply"

Dims = dict[str, Any]
Statement = tuple[str, list[Any]]

_OPENED = CareFact.Kind.OPENED.value
_NO_REPLY = CareFact.Kind.NO_REPLY.value
_FIRST_RESPONSE = CareFact.Kind.FIRST_RESPONSE.value
_NEXT_RESPONSE = CareFact.Kind.NEXT_RESPONSE.value
_RESOLUTION = CareFact.Kind.RESOLUTION.value
_BREACH = CareFact.Kind.BREACH.value
_KINDS = frozenset(CareFact.Kind.values)
_EPOCH_ORDINAL = EPOCH.toordinal()

# The key columns the code below writes in order (its rows are tuples): a change
# to these constants must change it too.
_LAYOUT = {
    "DIMENSION_COLUMNS": (
        DIMENSION_COLUMNS,
        (
            "tenant_id",
            "hour",
            "brand_id",
            "account_id",
            "platform",
            "origin",
            "sentiment",
            "agent_id",
            "follower_band",
        ),
    ),
    "DAILY_KEY": (
        DAILY_KEY,
        (
            "tenant_id",
            "brand_id",
            "account_id",
            "platform",
            "origin",
            "sentiment",
            "day",
        ),
    ),
    "AGENT_KEY": (AGENT_KEY, AGENT_KEY),
    "INBOUND_KEY": (INBOUND_KEY, INBOUND_KEY),
}
for _name, (_actual, _written) in _LAYOUT.items():
    if tuple(_actual) != _written:
        raise ImproperlyConfigured(f"rollups writes {_name} as {_written}")


def truncate_hour(moment: datetime) -> datetime:
    """`moment` in UTC, truncated to its hour."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def block_start(day: date, span: int) -> date:
    """The first day of the block of `span` days (BLOCK_SPANS) holding `day`."""
    days = day.toordinal() - _EPOCH_ORDINAL
    return date.fromordinal(_EPOCH_ORDINAL + days // span * span)


def fact_counters(fact: CareFact) -> dict[str, int]:
    """The rollup counters one fact adds (all zero for an after-no-reply answer)."""
    kind = fact.kind
    counters: dict[str, int] = {}
    if kind == _OPENED:  # every create: the non-zero ones as they are
        off_hours = int(fact.off_hours)
        if off_hours:
            return {"opened": 1, "off_hours_opened": off_hours}
        return {"opened": 1}
    if kind == _NO_REPLY:
        counters = {"no_reply": 1}
    elif kind == _FIRST_RESPONSE:
        if fact.reason == AFTER_NO_REPLY:
            return {}
        raw = fact.raw_seconds
        business = fact.business_seconds
        counters = {
            "answered": 1,
            "answered_public": int(fact.visibility == "public"),
            "answered_private": int(fact.visibility == "private"),
            "answered_1h": int(raw is not None and raw <= 3600),
            "answered_24h": int(raw is not None and raw <= 86400),
            "first_breached": int(fact.breached),
            "off_hours_answered_first_hour": int(
                fact.off_hours and business is not None and business <= 3600
            ),
        }
    elif kind == _NEXT_RESPONSE:
        counters = {"next_responses": 1, "next_breached": int(fact.breached)}
    elif kind == _RESOLUTION:
        counters = {"resolved": 1, "resolution_breached": int(fact.breached)}
    elif kind == _BREACH:
        counters = {"breaches": 1}
    return {name: n for name, n in counters.items() if n}


_HISTOGRAM_METRICS = {
    CareFact.Kind.FIRST_RESPONSE: (
        ReportBucket.Metric.FIRST_RAW,
        ReportBucket.Metric.FIRST_BUSINESS,
    ),
    CareFact.Kind.NEXT_RESPONSE: (
        ReportBucket.Metric.NEXT_RAW,
        ReportBucket.Metric.NEXT_BUSINESS,
    ),
    CareFact.Kind.RESOLUTION: (
        ReportBucket.Metric.RESOLUTION_RAW,
        ReportBucket.Metric.RESOLUTION_BUSINESS,
    ),
}
# The same by plain value (a fact's kind is a str).
_HISTOGRAM_VALUES = {
    kind.value: (raw.value, business.value)
    for kind, (raw, business) in _HISTOGRAM_METRICS.items()
}
_FIRST_RAW = ReportBucket.Metric.FIRST_RAW.value


def fact_buckets(fact: CareFact) -> list[tuple[str, int]]:
    """The `(metric, bucket key)` histogram cells one fact adds one to."""
    kind = fact.kind
    metrics = _HISTOGRAM_VALUES.get(kind)
    if metrics is None:
        if kind not in _KINDS:
            CareFact.Kind(kind)  # raises ValueError, as for any unknown kind
        return []
    cells: list[tuple[str, int]] = []
    raw, business = fact.raw_seconds, fact.business_seconds
    if raw is not None:
        cells.append((metrics[0], histograms.key(raw)))
    if business is not None:
        cells.append((metrics[1], histograms.key(business)))
    return cells


def fact_dimensions(fact: CareFact) -> Dims:
    """The rollup cell a fact belongs to."""
    agent = 0 if fact.kind == _OPENED else (fact.agent_id or 0)
    return {
        "tenant_id": fact.tenant_id,
        "hour": truncate_hour(fact.started_at),
        "brand_id": fact.brand_id,
        "account_id": fact.account_id or 0,
        "platform": fact.platform,
        "origin": fact.origin,
        "sentiment": fact.sentiment,
        "agent_id": agent,
        "follower_band": fact.follower_band,
    }


def conversation_dimensions(
    conversation: Conversation, at: datetime, *, agent_id: int | None
) -> Dims:
    """The rollup cell of a message in `conversation` at `at` (by `agent_id`)."""
    return {
        "tenant_id": conversation.tenant_id,
        "hour": truncate_hour(at),
        "brand_id": conversation.brand_id,
        "account_id": conversation.social_account_id or 0,
        "platform": conversation.platform,
        "origin": conversation.origin,
        "sentiment": conversation.sentiment,
        "agent_id": agent_id or 0,
        "follower_band": conversation.follower_band,
    }


_dimension_values = itemgetter(*DIMENSION_COLUMNS)


class _Table:
    """One upsert target: `INSERT ... VALUES <rows> ON CONFLICT (key) DO UPDATE
    SET <added> = <table>.<added> + EXCLUDED.<added>`; the rows are the key's
    values, then `values`' columns."""

    def __init__(self, table: str, key: tuple[str, ...], values: tuple[str, ...]):
        self.table, self.key, self.values = table, key, values
        names = (*key, *values)
        self.head = f"INSERT INTO {table} ({', '.join(names)}) VALUES "
        self.row = "(" + ", ".join(["%s"] * len(names)) + ")"
        self.conflict = f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
        self._updates: dict[tuple[str, ...], str] = {}
        # The key's hour column: its value is adapted for the database when
        # the statement is made (PostgreSQL takes it as it is).
        self.hour = key.index("hour") if "hour" in key else None

    def sql(self, added: tuple[str, ...], rows: int) -> str:
        updates = self._updates.get(added)
        if updates is None:
            updates = ", ".join(
                f"{name} = {self.table}.{name} + EXCLUDED.{name}" for name in added
            )
            if len(self._updates) < 1024:  # the sets a process sees are few
                self._updates[added] = updates
        return self.head + ", ".join([self.row] * rows) + self.conflict + updates


_HOURLY = _Table(ROLLUP_TABLE, DIMENSION_COLUMNS, ROLLUP_COUNTERS)
_DAILY = _Table(DAILY_TABLE, DAILY_KEY, ROLLUP_COUNTERS)
_AGENT = _Table(AGENT_TABLE, AGENT_KEY, AGENT_COUNTERS)
_INBOUND = _Table(INBOUND_TABLE, INBOUND_KEY, ("inbound",))
_CELLS = _Table(BUCKET_TABLE, (*DIMENSION_COLUMNS, "metric", "key"), ("count",))
_BLOCKS = _Table(BLOCK_TABLE, BLOCK_KEY, ("count",))
_COUNT = ("count",)
_INBOUND_ADDED = ("inbound",)


class _Pending:
    """Rows to add, per table in first-seen order: per key (first seen first)
    the sum of its values, and the columns added (first seen first); one
    upsert per table. One statement may not touch a row twice: rows of one key
    are summed as they are added (a write batch's facts and messages share one
    `_Pending`), and their hour (UTC, a key value) is adapted for the database
    when the statements are made. The statements are those the upserts of each
    call, merged, made before (tests/helpdesk/test_rollups_same_statements.py).
    """

    def __init__(self) -> None:
        self.tables: dict[
            _Table, tuple[dict[tuple[Any, ...], list[Any]], dict[str, None]]
        ] = {}

    def add(
        self,
        table: _Table,
        key: tuple[Any, ...],
        values: list[Any],
        added: tuple[str, ...],
    ) -> None:
        """Add `values` (a list of the caller's, kept) to the row of `key`."""
        entry = self.tables.get(table)
        if entry is None:
            entry = self.tables[table] = ({}, {})
        rows, names = entry
        row = rows.get(key)
        if row is None:
            rows[key] = values
        else:
            for n, value in enumerate(values):
                row[n] += value
        for name in added:
            names[name] = None

    def statements(self) -> list[Statement]:
        adapt = connection.ops.adapt_datetimefield_value
        statements = []
        for table, (rows, names) in self.tables.items():
            at = table.hour
            params: list[Any] = []
            for key, values in rows.items():
                if at is None:
                    params += key
                else:
                    params += key[:at]
                    params.append(adapt(key[at]))
                    params += key[at + 1 :]
                params += values
            statements.append((table.sql(tuple(names), len(rows)), params))
        return statements


def _pending() -> tuple[_Pending, bool]:
    """The active write batch's pending rows (registered with it on first use),
    or new ones to run at once (True)."""
    batch = writebatch.current()
    if batch is None:
        return _Pending(), True
    pending: _Pending | None = batch.data.get("rollups")
    if pending is None:
        pending = batch.data["rollups"] = _Pending()
        batch.defer_once("rollups", pending.statements)
    return pending, False


class _Plan:
    """Where a counters mapping's names go: (name, index) in ROLLUP_COUNTERS
    order, then in AGENT_COUNTERS order (names of neither are ignored)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.rollup = tuple(
            (name, n) for n, name in enumerate(ROLLUP_COUNTERS) if name in names
        )
        self.agent = tuple(
            (name, n) for n, name in enumerate(AGENT_COUNTERS) if name in names
        )
        self.inbound = "inbound" in names


_PLANS: dict[tuple[str, ...], _Plan] = {}
_ZERO_COUNTERS = [0] * len(ROLLUP_COUNTERS)
_ZERO_AGENT = [0] * len(AGENT_COUNTERS)


def _plan(counters: Mapping[str, int]) -> _Plan:
    names = tuple(counters)
    plan = _PLANS.get(names)
    if plan is None:
        plan = _Plan(names)
        if len(_PLANS) < 1024:  # the callers' sets of names are few
            _PLANS[names] = plan
    return plan


def _add_counters(
    pending: _Pending, hourly: tuple[Any, ...], counters: Mapping[str, int]
) -> None:
    """Add `counters` to the hourly row `hourly` (DIMENSION_COLUMNS' values)
    and to its daily, daily per-agent and hourly inbound rows."""
    plan = _plan(counters)
    values = _ZERO_COUNTERS.copy()
    changed = []
    for name, n in plan.rollup:
        value = values[n] = counters[name]
        if value:
            changed.append(name)
    added = tuple(changed)
    tenant_id, hour, brand_id, account_id, platform, origin, sentiment = hourly[:7]
    day = hour.date()
    pending.add(_HOURLY, hourly, values, added)
    pending.add(
        _DAILY,
        (tenant_id, brand_id, account_id, platform, origin, sentiment, day),
        values.copy(),
        added,
    )
    if plan.agent:
        agent_values = _ZERO_AGENT.copy()
        agent_work = []
        for name, n in plan.agent:
            value = agent_values[n] = counters[name]
            if value:
                agent_work.append(name)
        if agent_work:
            pending.add(
                _AGENT,
                (tenant_id, brand_id, account_id, platform, *hourly[7:9], day),
                agent_values,
                tuple(agent_work),
            )
    if plan.inbound:
        inbound = counters["inbound"]
        if inbound:
            pending.add(
                _INBOUND,
                (tenant_id, brand_id, hour, account_id, platform),
                [inbound],
                _INBOUND_ADDED,
            )


def _add_cells(
    pending: _Pending, hourly: tuple[Any, ...], cells: Sequence[tuple[str, int]]
) -> None:
    """Add one to each `(metric, bucket key)` histogram cell of the hourly row
    `hourly` and to its block cells (every span; first responses also per agent
    and per follower band)."""
    tenant_id, hour, brand_id = hourly[:3]
    agent_id, band = hourly[7:9]
    day = hour.date()
    starts = [(span, block_start(day, span)) for span in BLOCK_SPANS]
    for metric, bucket in cells:
        pending.add(_CELLS, (*hourly, metric, bucket), [1], _COUNT)
    for metric, bucket in cells:
        groups = [(0, "")]
        if metric == _FIRST_RAW:
            if agent_id:
                groups.append((agent_id, ""))
            groups.append((0, band))
        for group_agent, group_band in groups:
            for span, start in starts:
                pending.add(
                    _BLOCKS,
                    (
                        tenant_id,
                        brand_id,
                        metric,
                        group_agent,
                        group_band,
                        span,
                        start,
                        bucket,
                    ),
                    [1],
                    _COUNT,
                )


def _run(pending: _Pending, now: bool) -> None:
    if now:
        writebatch.execute(pending.statements())


def upsert_rollup(dims: Dims, counters: Mapping[str, int]) -> None:
    """Add `counters` to the hourly rollup row of `dims` (and its daily cells),
    creating it if needed; joins the active write batch when there is one."""
    if not counters:
        return
    pending, now = _pending()
    _add_counters(pending, _dimension_values(dims), counters)
    _run(pending, now)


def apply_fact(fact: CareFact) -> None:
    """Add one just-created fact to its rollup row and histogram cells.

    Call once per fact, inside the transaction that created it. Counters follow
    `fact_counters` (a first response after a "no reply needed" mark adds none);
    response and resolution facts add their raw and business seconds to the
    histogram cells of their metrics, at every level (hourly, daily, blocks).
    One statement on PostgreSQL (at most four elsewhere).
    """
    hour = truncate_hour(fact.started_at)
    counters = fact_counters(fact)
    cells = fact_buckets(fact)
    if not counters and not cells:
        return
    hourly = (
        fact.tenant_id,
        hour,
        fact.brand_id,
        fact.account_id or 0,
        fact.platform,
        fact.origin,
        fact.sentiment,
        0 if fact.kind == _OPENED else (fact.agent_id or 0),
        fact.follower_band,
    )
    pending, now = _pending()
    if counters:
        _add_counters(pending, hourly, counters)
    if cells:
        _add_cells(pending, hourly, cells)
    _run(pending, now)


def _count_message(
    conversation: Conversation, at: datetime, agent_id: int, counter: str
) -> None:
    hourly = (
        conversation.tenant_id,
        truncate_hour(at),
        conversation.brand_id,
        conversation.social_account_id or 0,
        conversation.platform,
        conversation.origin,
        conversation.sentiment,
        agent_id,
        conversation.follower_band,
    )
    pending, now = _pending()
    _add_counters(pending, hourly, {counter: 1})
    _run(pending, now)


def count_inbound(conversation: Conversation, message: Message) -> None:
    """Count one inbound customer message in its hour's rollup row.

    The cell is the message's UTC hour with the conversation's dimensions and
    agent 0 (and its day's row). One statement on PostgreSQL; call inside the
    transaction that stored the message.
    """
    _count_message(conversation, message.created_at, 0, "inbound")


def count_reply(message: Message, *, move_to_private: bool) -> None:
    """Count one queued public reply or move to private for its agent.

    The cell is the message's UTC hour, its conversation's dimensions and its
    author agent (0 when none), and its day's row. One statement on PostgreSQL
    (plus loading the conversation when
    the message does not carry it already).
    """
    counter = "private_moves" if move_to_private else "public_replies"
    _count_message(
        message.conversation,
        message.created_at,
        message.author_agent_id or 0,
        counter,
    )


# --- Rebuild -----------------------------------------------------------------

FACT_TABLE = CareFact._meta.db_table
MESSAGE_TABLE = Message._meta.db_table
CONVERSATION_TABLE = Conversation._meta.db_table


def _hour_sql(column: str) -> str:
    """SQL for `column` (a timestamp) truncated to its UTC hour."""
    if connection.vendor == "postgresql":
        return f"date_trunc('hour', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    return f"strftime('%%Y-%%m-%%d %%H:00:00', {column})"


def _key_sql(column: str) -> str:
    """SQL for `histograms.key(column)`: the same floating-point steps as
    ddsketch's LogarithmicMapping (ceil(log(v) / log(2) * multiplier) + offset),
    which PostgreSQL and SQLite (through Django's LN) compute with the C library's
    log, as Python does."""
    value = f"(CASE WHEN {column} < 1 THEN 1.0 ELSE {column} * 1.0 END)"
    return (
        f"CAST(CEILING(LN({value}) / LN(2.0) * {histograms.MULTIPLIER!r}) "
        f"+ {histograms.OFFSET!r} AS INTEGER)"
    )


def _fact_counter_sql() -> str:
    """One SELECT list entry per counter, computed from a fact row `f`."""
    first = "f.kind = 'first_response' AND f.reason <> 'after_no_reply'"
    cases = {
        "opened": "f.kind = 'opened'",
        "off_hours_opened": "f.kind = 'opened' AND f.off_hours",
        "no_reply": "f.kind = 'no_reply'",
        "answered": first,
        "answered_public": f"{first} AND f.visibility = 'public'",
        "answered_private": f"{first} AND f.visibility = 'private'",
        "answered_1h": f"{first} AND f.raw_seconds <= 3600",
        "answered_24h": f"{first} AND f.raw_seconds <= 86400",
        "off_hours_answered_first_hour": (
            f"{first} AND f.off_hours AND f.business_seconds <= 3600"
        ),
        "first_breached": f"{first} AND f.breached",
        "next_responses": "f.kind = 'next_response'",
        "next_breached": "f.kind = 'next_response' AND f.breached",
        "resolved": "f.kind = 'resolution'",
        "resolution_breached": "f.kind = 'resolution' AND f.breached",
        "breaches": "f.kind = 'breach'",
    }
    return ", ".join(
        f"CASE WHEN {cases[name]} THEN 1 ELSE 0 END AS {name}"
        if name in cases
        else f"0 AS {name}"
        for name in ROLLUP_COUNTERS
    )


def _message_counter_sql(counters: Mapping[str, str]) -> str:
    return ", ".join(
        f"{counters[name]} AS {name}" if name in counters else f"0 AS {name}"
        for name in ROLLUP_COUNTERS
    )


def _rebuild_rollups_sql() -> str:
    dims = ", ".join(DIMENSION_COLUMNS)
    counters = ", ".join(ROLLUP_COUNTERS)
    sums = ", ".join(f"SUM({name})" for name in ROLLUP_COUNTERS)
    conversation_dims = (
        "c.brand_id, COALESCE(c.social_account_id, 0) AS account_id, c.platform, "
        "c.origin, c.sentiment"
    )
    facts = (
        f"SELECT f.tenant_id, {_hour_sql('f.started_at')} AS hour, f.brand_id, "
        "COALESCE(f.account_id, 0) AS account_id, f.platform, f.origin, "
        "f.sentiment, CASE WHEN f.kind = 'opened' THEN 0 "
        "ELSE COALESCE(f.agent_id, 0) END AS agent_id, f.follower_band, "
        f"{_fact_counter_sql()} FROM {FACT_TABLE} f "
        "WHERE f.\"tenant_id\" = %s AND NOT (f.kind = 'first_response' "
        "AND f.reason = 'after_no_reply')"
    )
    inbound = (
        f"SELECT m.tenant_id, {_hour_sql('m.created_at')} AS hour, "
        f"{conversation_dims}, 0 AS agent_id, c.follower_band, "
        f"{_message_counter_sql({'inbound': '1'})} FROM {MESSAGE_TABLE} m "
        f"JOIN {CONVERSATION_TABLE} c ON c.tenant_id = m.tenant_id "
        "AND c.id = m.conversation_id "
        "WHERE m.\"tenant_id\" = %s AND m.kind = 'customer' AND m.direction = 'in'"
    )
    replies = (
        f"SELECT m.tenant_id, {_hour_sql('m.created_at')} AS hour, "
        f"{conversation_dims}, m.author_agent_id AS agent_id, c.follower_band, "
        + _message_counter_sql(
            {
                "public_replies": (
                    "CASE WHEN m.kind = 'reply' AND m.visibility = 'public' "
                    "THEN 1 ELSE 0 END"
                ),
                "private_moves": (
                    "CASE WHEN m.kind = 'private_invite' THEN 1 ELSE 0 END"
                ),
            }
        )
        + f" FROM {MESSAGE_TABLE} m "
        f"JOIN {CONVERSATION_TABLE} c ON c.tenant_id = m.tenant_id "
        "AND c.id = m.conversation_id "
        "WHERE m.\"tenant_id\" = %s AND m.kind IN ('reply', 'private_invite') "
        "AND m.author_agent_id IS NOT NULL "
        "AND (m.kind = 'private_invite' OR m.visibility = 'public')"
    )
    return (
        f"INSERT INTO {ROLLUP_TABLE} ({dims}, {counters}) "
        f"SELECT {dims}, {sums} FROM ({facts} UNION ALL {inbound} UNION ALL "
        f"{replies}) AS cells GROUP BY {dims} ORDER BY brand_id, hour"
    )


def _rebuild_buckets_sql() -> str:
    dims = ", ".join(DIMENSION_COLUMNS)
    selects = []
    for kind, (raw_metric, business_metric) in _HISTOGRAM_METRICS.items():
        for metric, column in (
            (raw_metric, "f.raw_seconds"),
            (business_metric, "f.business_seconds"),
        ):
            selects.append(
                f"SELECT f.tenant_id, {_hour_sql('f.started_at')} AS hour, "
                "f.brand_id, COALESCE(f.account_id, 0) AS account_id, f.platform, "
                "f.origin, f.sentiment, COALESCE(f.agent_id, 0) AS agent_id, "
                f"f.follower_band, '{metric.value}' AS metric, "
                f"{_key_sql(column)} AS key FROM {FACT_TABLE} f "
                f"WHERE f.\"tenant_id\" = %s AND f.kind = '{kind.value}' "
                f"AND {column} IS NOT NULL"
            )
    return (
        f"INSERT INTO {BUCKET_TABLE} ({dims}, metric, key, count) "
        f"SELECT {dims}, metric, key, COUNT(*) FROM ({' UNION ALL '.join(selects)}) "
        f"AS cells GROUP BY {dims}, metric, key ORDER BY brand_id, metric, hour"
    )


def _day_sql(column: str) -> str:
    """SQL for the UTC date of `column` (a timestamp)."""
    if connection.vendor == "postgresql":
        return f"CAST({column} AT TIME ZONE 'UTC' AS date)"
    return f"date({column})"


def _block_sql(day: str, span: str) -> str:
    """SQL for `block_start(day, span)` (days since 1970-01-01, floored to a
    multiple of the span; the data lies after 1970, so division truncates as
    floor does)."""
    if connection.vendor == "postgresql":
        return f"DATE '1970-01-01' + (({day} - DATE '1970-01-01') / {span}) * {span}"
    return (
        f"date('1970-01-01', '+' || ((CAST(julianday({day}) - 2440587.5 AS INTEGER) "
        f"/ {span}) * {span}) || ' days')"
    )


def _rebuild_daily_sql() -> str:
    """The daily rows from the tenant's (just rebuilt) hourly rows."""
    groups = ", ".join(f"r.{column}" for column in DAILY_KEY if column != "day")
    day = _day_sql("r.hour")
    sums = ", ".join(f"SUM(r.{name})" for name in ROLLUP_COUNTERS)
    return (
        f"INSERT INTO {DAILY_TABLE} ({', '.join(DAILY_KEY)}, "
        f"{', '.join(ROLLUP_COUNTERS)}) SELECT {groups}, {day}, {sums} "
        f'FROM {ROLLUP_TABLE} r WHERE r."tenant_id" = %s GROUP BY {groups}, {day} '
        f"ORDER BY r.brand_id, {day}"
    )


def _rebuild_agent_sql() -> str:
    """The daily per-agent rows from the tenant's (just rebuilt) hourly rows."""
    groups = ", ".join(f"r.{column}" for column in AGENT_KEY if column != "day")
    day = _day_sql("r.hour")
    sums = ", ".join(f"SUM(r.{name})" for name in AGENT_COUNTERS)
    return (
        f"INSERT INTO {AGENT_TABLE} ({', '.join(AGENT_KEY)}, "
        f"{', '.join(AGENT_COUNTERS)}) SELECT {groups}, {day}, {sums} "
        f'FROM {ROLLUP_TABLE} r WHERE r."tenant_id" = %s GROUP BY {groups}, {day} '
        f"HAVING {' + '.join(f'SUM(r.{name})' for name in AGENT_COUNTERS)} > 0 "
        f"ORDER BY r.brand_id, {day}"
    )


def _rebuild_inbound_sql() -> str:
    """The hourly inbound rows from the tenant's (just rebuilt) hourly rows."""
    groups = ", ".join(f"r.{column}" for column in INBOUND_KEY)
    return (
        f"INSERT INTO {INBOUND_TABLE} ({', '.join(INBOUND_KEY)}, inbound) "
        f"SELECT {groups}, SUM(r.inbound) FROM {ROLLUP_TABLE} r "
        f'WHERE r."tenant_id" = %s AND r.inbound > 0 GROUP BY {groups} '
        "ORDER BY r.brand_id, r.hour"
    )


def _rebuild_blocks_sql() -> str:
    """The block cells from the tenant's (just rebuilt) hourly cells: every
    cell for all (0, ""); first responses also per agent (not 0) and per band."""
    spans = " UNION ALL ".join(f"SELECT {span} AS span" for span in BLOCK_SPANS)
    first = ReportBucket.Metric.FIRST_RAW.value
    columns = "b.tenant_id, b.brand_id, b.metric, {}, b.hour, b.key, b.count"
    groupings = " UNION ALL ".join(
        f"SELECT {columns.format(grouping)} FROM {BUCKET_TABLE} b "
        f'WHERE b."tenant_id" = %s{condition}'
        for grouping, condition in (
            ("0 AS agent_id, '' AS follower_band", ""),
            (
                "b.agent_id, '' AS follower_band",
                f" AND b.metric = '{first}' AND b.agent_id <> 0",
            ),
            ("0 AS agent_id, b.follower_band", f" AND b.metric = '{first}'"),
        )
    )
    start = _block_sql(_day_sql("c.hour"), "s.span")
    keys = "c.tenant_id, c.brand_id, c.metric, c.agent_id, c.follower_band"
    return (
        f"INSERT INTO {BLOCK_TABLE} ({', '.join(BLOCK_KEY)}, count) "
        f"SELECT {keys}, s.span, {start}, c.key, SUM(c.count) "
        f"FROM ({groupings}) c CROSS JOIN ({spans}) s "
        f"GROUP BY {keys}, s.span, {start}, c.key "
        f"ORDER BY {keys}, s.span, {start}, c.key"
    )


def rebuild_rollups(tenant: Tenant | int) -> tuple[int, int]:
    """Delete the tenant's rollups and histogram cells and recompute them.

    Set-based: one DELETE and one INSERT ... SELECT per table, from the tenant's
    `CareFact` rows, its inbound customer messages (dimensions from their
    conversation as it is now) and its agents' messages: a public reply (kind
    reply, visibility public) or a move to private (kind private_invite). A DM
    reply counts as neither, as when it is queued. Then the coarse levels
    (daily rows, daily per-agent rows, hourly inbound rows and block cells),
    summed from the new hourly rows and cells. Each INSERT writes its rows in
    the order report reads use (brand, then time; block cells in their key's
    order), so a brand's period lies on few pages: in a hash aggregate's order
    nearly every cell a report read was on a page of its own. Opens
    the tenant's context (a savepoint when it is open already). Returns the number
    of hourly rollup rows and histogram cells written.
    """
    tenant_id = int(tenant if isinstance(tenant, int) else tenant.pk)
    with tenant_context(tenant_id), connection.cursor() as cursor:
        cursor.execute(
            f'DELETE FROM {ROLLUP_TABLE} WHERE "{ROLLUP_TABLE}"."tenant_id" = %s',
            [tenant_id],
        )
        cursor.execute(
            f'DELETE FROM {BUCKET_TABLE} WHERE "{BUCKET_TABLE}"."tenant_id" = %s',
            [tenant_id],
        )
        cursor.execute(_rebuild_rollups_sql(), [tenant_id] * 3)
        rows = cursor.rowcount
        cursor.execute(_rebuild_buckets_sql(), [tenant_id] * 6)
        cells = cursor.rowcount
        for table in (DAILY_TABLE, AGENT_TABLE, INBOUND_TABLE, BLOCK_TABLE):
            cursor.execute(
                f'DELETE FROM {table} WHERE "{table}"."tenant_id" = %s', [tenant_id]
            )
        cursor.execute(_rebuild_daily_sql(), [tenant_id])
        cursor.execute(_rebuild_agent_sql(), [tenant_id])
        cursor.execute(_rebuild_inbound_sql(), [tenant_id])
        cursor.execute(_rebuild_blocks_sql(), [tenant_id] * 3)
    return rows, cells
