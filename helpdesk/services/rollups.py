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
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import connection

from helpdesk import histograms
from helpdesk.models import (
    ROLLUP_COUNTERS,
    ROLLUP_DIMENSIONS,
    CareFact,
    Conversation,
    Message,
    ReportBucket,
    ReportRollup,
)

ROLLUP_TABLE = ReportRollup._meta.db_table
BUCKET_TABLE = ReportBucket._meta.db_table
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


def _upsert_rollup(dims: Dims, counters: Mapping[str, int]) -> None:
    if not counters:
        return
    columns = [*DIMENSION_COLUMNS, *ROLLUP_COUNTERS]
    placeholders = ", ".join(["%s"] * len(columns))
    updates = ", ".join(
        f"{name} = {ROLLUP_TABLE}.{name} + EXCLUDED.{name}" for name in counters
    )
    sql = (
        f"INSERT INTO {ROLLUP_TABLE} ({', '.join(columns)}) VALUES ({placeholders}) "  # noqa: S608 - identifiers are constants; values are parameters
        f"ON CONFLICT ({', '.join(DIMENSION_COLUMNS)}) DO UPDATE SET {updates}"
    )
    params = [*_params(dims), *(counters.get(name, 0) for name in ROLLUP_COUNTERS)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _upsert_buckets(dims: Dims, cells: Sequence[tuple[str, int]]) -> None:
    if not cells:
        return
    columns = [*DIMENSION_COLUMNS, "metric", "key", "count"]
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = (
        f"INSERT INTO {BUCKET_TABLE} ({', '.join(columns)}) "  # noqa: S608 - identifiers are constants; values are parameters
        f"VALUES {', '.join([row] * len(cells))} "
        f"ON CONFLICT ({', '.join(DIMENSION_COLUMNS)}, metric, key) "
        f"DO UPDATE SET count = {BUCKET_TABLE}.count + EXCLUDED.count"
    )
    base = _params(dims)
    params: list[Any] = []
    for metric, bucket in cells:
        params.extend([*base, metric, bucket, 1])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def apply_fact(fact: CareFact) -> None:
    """Add one just-created fact to its rollup row and histogram cells.

    Call once per fact, inside the transaction that created it. Counters follow
    `fact_counters` (a first response after a "no reply needed" mark adds none);
    response and resolution facts add their raw and business seconds to the
    histogram cells of their metrics. At most two statements.
    """
    dims = fact_dimensions(fact)
    _upsert_rollup(dims, fact_counters(fact))
    _upsert_buckets(dims, fact_buckets(fact))


def count_inbound(conversation: Conversation, message: Message) -> None:
    """Count one inbound customer message in its hour's rollup row.

    The cell is the message's UTC hour with the conversation's dimensions and
    agent 0. One statement; call inside the transaction that stored the message.
    """
    dims = conversation_dimensions(conversation, message.created_at, agent_id=None)
    _upsert_rollup(dims, {"inbound": 1})


def count_reply(message: Message, *, move_to_private: bool) -> None:
    """Count one queued public reply or move to private for its agent.

    The cell is the message's UTC hour, its conversation's dimensions and its
    author agent (0 when none). One statement (plus loading the conversation when
    the message does not carry it already).
    """
    dims = conversation_dimensions(
        message.conversation, message.created_at, agent_id=message.author_agent_id
    )
    counter = "private_moves" if move_to_private else "public_replies"
    _upsert_rollup(dims, {counter: 1})
