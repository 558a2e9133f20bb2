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
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

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


def truncate_hour(moment: datetime) -> datetime:
    """`moment` in UTC, truncated to its hour."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def block_start(day: date, span: int) -> date:
    """The first day of the block of `span` days (BLOCK_SPANS) holding `day`."""
    return EPOCH + timedelta(days=(day - EPOCH).days // span * span)


def fact_counters(fact: CareFact) -> dict[str, int]:
    """The rollup counters one fact adds (all zero for an after-no-reply answer)."""
    kind = fact.kind
    counters: dict[str, int] = {}
    if kind == CareFact.Kind.OPENED:
        counters = {"opened": 1, "off_hours_opened": int(fact.off_hours)}
    elif kind == CareFact.Kind.NO_REPLY:
        counters = {"no_reply": 1}
    elif kind == CareFact.Kind.FIRST_RESPONSE:
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
    elif kind == CareFact.Kind.NEXT_RESPONSE:
        counters = {"next_responses": 1, "next_breached": int(fact.breached)}
    elif kind == CareFact.Kind.RESOLUTION:
        counters = {"resolved": 1, "resolution_breached": int(fact.breached)}
    elif kind == CareFact.Kind.BREACH:
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


def fact_buckets(fact: CareFact) -> list[tuple[str, int]]:
    """The `(metric, bucket key)` histogram cells one fact adds one to."""
    metrics = _HISTOGRAM_METRICS.get(CareFact.Kind(fact.kind))
    if metrics is None:
        return []
    raw_metric, business_metric = metrics
    cells: list[tuple[str, int]] = []
    if fact.raw_seconds is not None:
        cells.append((raw_metric.value, histograms.key(fact.raw_seconds)))
    if fact.business_seconds is not None:
        cells.append((business_metric.value, histograms.key(fact.business_seconds)))
    return cells


def fact_dimensions(fact: CareFact) -> Dims:
    """The rollup cell a fact belongs to."""
    agent = 0 if fact.kind == CareFact.Kind.OPENED else (fact.agent_id or 0)
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


def _params(dims: Dims) -> list[Any]:
    values = [dims[column] for column in DIMENSION_COLUMNS]
    values[1] = connection.ops.adapt_datetimefield_value(values[1])
    return values


@dataclass
class Upsert:
    """One INSERT of `rows` (the key's values, then `values`' columns) into
    `table` that adds `added` (all of `values` by default) to the rows there."""

    table: str
    key: tuple[str, ...]
    values: tuple[str, ...]
    rows: list[list[Any]]
    added: tuple[str, ...]

    def statement(self) -> tuple[str, list[Any]]:
        names = [*self.key, *self.values]
        row = "(" + ", ".join(["%s"] * len(names)) + ")"
        updates = ", ".join(
            f"{name} = {self.table}.{name} + EXCLUDED.{name}" for name in self.added
        )
        return (
            f"INSERT INTO {self.table} ({', '.join(names)}) "
            f"VALUES {', '.join([row] * len(self.rows))} "
            f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {updates}",
            [value for values_row in self.rows for value in values_row],
        )


Statement = Upsert


def _merged(upserts: Sequence[Upsert]) -> list[Upsert]:
    """One upsert per table and column set, rows of the same key summed (one
    statement may not touch a row twice), in first-seen order."""
    merged: dict[tuple[str, tuple[str, ...], tuple[str, ...]], Upsert] = {}
    for upsert in upserts:
        group = (upsert.table, upsert.key, upsert.values)
        target = merged.get(group)
        if target is None:
            target = merged[group] = Upsert(
                upsert.table, upsert.key, upsert.values, [], ()
            )
        width = len(upsert.key)
        for row in upsert.rows:
            for existing in target.rows:
                if existing[:width] == row[:width]:
                    for n in range(width, len(row)):
                        existing[n] += row[n]
                    break
            else:
                target.rows.append(list(row))
        target.added = tuple(dict.fromkeys([*target.added, *upsert.added]))
    return list(merged.values())


def _execute(upserts: Sequence[Upsert]) -> None:
    """Run the upserts as one statement on PostgreSQL (all but the last in a
    data-modifying WITH, which always runs to completion), one by one elsewhere.
    Inside a write batch (helpdesk.services.writebatch) they join the batch's
    final statement, merged with the batch's other rollup rows."""
    if not upserts:
        return
    batch = writebatch.current()
    if batch is not None:
        pending: list[Upsert] = batch.data.setdefault("rollups", [])
        pending.extend(upserts)
        batch.defer_once("rollups", lambda: [u.statement() for u in _merged(pending)])
        return
    writebatch.execute([u.statement() for u in _merged(upserts)])


def _upsert(
    table: str,
    key: Sequence[str],
    rows: Sequence[Sequence[Any]],
    values: Sequence[str],
    added: Sequence[str] | None = None,
) -> Upsert:
    """One INSERT of `rows` (the key's values, then `values`' columns) that adds
    `added` (all of `values` by default) to the rows already there."""
    return Upsert(
        table,
        tuple(key),
        tuple(values),
        [list(row) for row in rows],
        tuple(values if added is None else added),
    )


def _rollup_statements(dims: Dims, counters: Mapping[str, int]) -> list[Statement]:
    if not counters:
        return []
    day = dims["hour"].date()
    changed = [name for name in ROLLUP_COUNTERS if counters.get(name)]
    statements = [
        _upsert(
            table,
            key,
            [[*params, *(counters.get(name, 0) for name in ROLLUP_COUNTERS)]],
            ROLLUP_COUNTERS,
            changed,
        )
        for table, key, params in (
            (ROLLUP_TABLE, DIMENSION_COLUMNS, _params(dims)),
            (
                DAILY_TABLE,
                DAILY_KEY,
                [dims[c] if c != "day" else day for c in DAILY_KEY],
            ),
        )
    ]
    agent_work = [name for name in AGENT_COUNTERS if counters.get(name)]
    if agent_work:
        statements.append(
            _upsert(
                AGENT_TABLE,
                AGENT_KEY,
                [
                    [
                        *(dims[c] if c != "day" else day for c in AGENT_KEY),
                        *(counters.get(name, 0) for name in AGENT_COUNTERS),
                    ]
                ],
                AGENT_COUNTERS,
                agent_work,
            )
        )
    if counters.get("inbound"):
        hour = connection.ops.adapt_datetimefield_value(dims["hour"])
        statements.append(
            _upsert(
                INBOUND_TABLE,
                INBOUND_KEY,
                [
                    [
                        *(dims[c] if c != "hour" else hour for c in INBOUND_KEY),
                        counters["inbound"],
                    ]
                ],
                ["inbound"],
            )
        )
    return statements


def _block_groups(dims: Dims, metric: str) -> list[tuple[int, str]]:
    """The (agent_id, follower_band) groupings a cell of `metric` counts in."""
    groups = [(0, "")]
    if metric == ReportBucket.Metric.FIRST_RAW:
        if dims["agent_id"]:
            groups.append((dims["agent_id"], ""))
        groups.append((0, dims["follower_band"]))
    return groups


def _bucket_statements(dims: Dims, cells: Sequence[tuple[str, int]]) -> list[Statement]:
    if not cells:
        return []
    base = _params(dims)
    hourly = _upsert(
        BUCKET_TABLE,
        [*DIMENSION_COLUMNS, "metric", "key"],
        [[*base, metric, bucket, 1] for metric, bucket in cells],
        ["count"],
    )
    day = dims["hour"].date()
    blocks = _upsert(
        BLOCK_TABLE,
        BLOCK_KEY,
        [
            [
                dims["tenant_id"],
                dims["brand_id"],
                metric,
                agent_id,
                band,
                span,
                block_start(day, span),
                bucket,
                1,
            ]
            for metric, bucket in cells
            for agent_id, band in _block_groups(dims, metric)
            for span in BLOCK_SPANS
        ],
        ["count"],
    )
    return [hourly, blocks]


def upsert_rollup(dims: Dims, counters: Mapping[str, int]) -> None:
    """Add `counters` to the hourly rollup row of `dims` (and its daily cells),
    creating it if needed; joins the active write batch when there is one."""
    _execute(_rollup_statements(dims, counters))


def apply_fact(fact: CareFact) -> None:
    """Add one just-created fact to its rollup row and histogram cells.

    Call once per fact, inside the transaction that created it. Counters follow
    `fact_counters` (a first response after a "no reply needed" mark adds none);
    response and resolution facts add their raw and business seconds to the
    histogram cells of their metrics, at every level (hourly, daily, blocks).
    One statement on PostgreSQL (at most four elsewhere).
    """
    dims = fact_dimensions(fact)
    _execute(
        [
            *_rollup_statements(dims, fact_counters(fact)),
            *_bucket_statements(dims, fact_buckets(fact)),
        ]
    )


def count_inbound(conversation: Conversation, message: Message) -> None:
    """Count one inbound customer message in its hour's rollup row.

    The cell is the message's UTC hour with the conversation's dimensions and
    agent 0 (and its day's row). One statement on PostgreSQL; call inside the
    transaction that stored the message.
    """
    dims = conversation_dimensions(conversation, message.created_at, agent_id=None)
    upsert_rollup(dims, {"inbound": 1})


def count_reply(message: Message, *, move_to_private: bool) -> None:
    """Count one queued public reply or move to private for its agent.

    The cell is the message's UTC hour, its conversation's dimensions and its
    author agent (0 when none), and its day's row. One statement on PostgreSQL
    (plus loading the conversation when
    the message does not carry it already).
    """
    dims = conversation_dimensions(
        message.conversation, message.created_at, agent_id=message.author_agent_id
    )
    counter = "private_moves" if move_to_private else "public_replies"
    upsert_rollup(dims, {counter: 1})


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
        f"{replies}) AS cells GROUP BY {dims}"
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
        f"AS cells GROUP BY {dims}, metric, key"
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
        f'FROM {ROLLUP_TABLE} r WHERE r."tenant_id" = %s GROUP BY {groups}, {day}'
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
        f"HAVING {' + '.join(f'SUM(r.{name})' for name in AGENT_COUNTERS)} > 0"
    )


def _rebuild_inbound_sql() -> str:
    """The hourly inbound rows from the tenant's (just rebuilt) hourly rows."""
    groups = ", ".join(f"r.{column}" for column in INBOUND_KEY)
    return (
        f"INSERT INTO {INBOUND_TABLE} ({', '.join(INBOUND_KEY)}, inbound) "
        f"SELECT {groups}, SUM(r.inbound) FROM {ROLLUP_TABLE} r "
        f'WHERE r."tenant_id" = %s AND r.inbound > 0 GROUP BY {groups}'
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
        f"GROUP BY {keys}, s.span, {start}, c.key"
    )


def rebuild_rollups(tenant: Tenant | int) -> tuple[int, int]:
    """Delete the tenant's rollups and histogram cells and recompute them.

    Set-based: one DELETE and one INSERT ... SELECT per table, from the tenant's
    `CareFact` rows, its inbound customer messages (dimensions from their
    conversation as it is now) and its agents' messages: a public reply (kind
    reply, visibility public) or a move to private (kind private_invite). A DM
    reply counts as neither, as when it is queued. Then the coarse levels
    (daily rows, daily per-agent rows, hourly inbound rows and block cells),
    summed from the new hourly rows and cells. Opens
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
