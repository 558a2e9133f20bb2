"""Rollups: the statements apply_fact, count_inbound, count_reply and
upsert_rollup hand to the write batch (or run) are exactly those of the
upserts they built before rows were summed as they are added (the reference
below, kept as it was): same SQL text, same parameters, same order, for
varied facts, messages and counters, alone and many in one batch."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpdesk import histograms
from helpdesk.models import (
    AGENT_COUNTERS,
    BLOCK_SPANS,
    ROLLUP_COUNTERS,
    CareFact,
    Conversation,
    Message,
    ReportBucket,
)
from helpdesk.services import rollups, writebatch

Statement = tuple[str, list[Any]]

# --- The reference: the upserts as they were built and merged before --------

EPOCH = date(1970, 1, 1)


def ref_block_start(day: date, span: int) -> date:
    return EPOCH + timedelta(days=(day - EPOCH).days // span * span)


def ref_truncate_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ref_fact_counters(fact: CareFact) -> dict[str, int]:
    kind = fact.kind
    counters: dict[str, int] = {}
    if kind == CareFact.Kind.OPENED:
        counters = {"opened": 1, "off_hours_opened": int(fact.off_hours)}
    elif kind == CareFact.Kind.NO_REPLY:
        counters = {"no_reply": 1}
    elif kind == CareFact.Kind.FIRST_RESPONSE:
        if fact.reason == "after_no_reply":
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


REF_METRICS = {
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


def ref_fact_buckets(fact: CareFact) -> list[tuple[str, int]]:
    metrics = REF_METRICS.get(CareFact.Kind(fact.kind))
    if metrics is None:
        return []
    raw_metric, business_metric = metrics
    cells: list[tuple[str, int]] = []
    if fact.raw_seconds is not None:
        cells.append((raw_metric.value, histograms.key(fact.raw_seconds)))
    if fact.business_seconds is not None:
        cells.append((business_metric.value, histograms.key(fact.business_seconds)))
    return cells


def ref_fact_dimensions(fact: CareFact) -> dict[str, Any]:
    agent = 0 if fact.kind == CareFact.Kind.OPENED else (fact.agent_id or 0)
    return {
        "tenant_id": fact.tenant_id,
        "hour": ref_truncate_hour(fact.started_at),
        "brand_id": fact.brand_id,
        "account_id": fact.account_id or 0,
        "platform": fact.platform,
        "origin": fact.origin,
        "sentiment": fact.sentiment,
        "agent_id": agent,
        "follower_band": fact.follower_band,
    }


def ref_conversation_dimensions(
    conversation: Conversation, at: datetime, *, agent_id: int | None
) -> dict[str, Any]:
    return {
        "tenant_id": conversation.tenant_id,
        "hour": ref_truncate_hour(at),
        "brand_id": conversation.brand_id,
        "account_id": conversation.social_account_id or 0,
        "platform": conversation.platform,
        "origin": conversation.origin,
        "sentiment": conversation.sentiment,
        "agent_id": agent_id or 0,
        "follower_band": conversation.follower_band,
    }


DIMENSION_COLUMNS = (
    "tenant_id",
    "hour",
    "brand_id",
    "account_id",
    "platform",
    "origin",
    "sentiment",
    "agent_id",
    "follower_band",
)
DAILY_KEY = (
    "tenant_id",
    "brand_id",
    "account_id",
    "platform",
    "origin",
    "sentiment",
    "day",
)
AGENT_KEY = (
    "tenant_id",
    "brand_id",
    "account_id",
    "platform",
    "agent_id",
    "follower_band",
    "day",
)
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


@dataclass
class Upsert:
    table: str
    key: tuple[str, ...]
    values: tuple[str, ...]
    rows: list[list[Any]]
    added: tuple[str, ...]

    def statement(self) -> Statement:
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


def ref_merged(upserts: Sequence[Upsert]) -> list[Upsert]:
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


def ref_upsert(
    table: str,
    key: Sequence[str],
    rows: Sequence[Sequence[Any]],
    values: Sequence[str],
    added: Sequence[str] | None = None,
) -> Upsert:
    return Upsert(
        table,
        tuple(key),
        tuple(values),
        [list(row) for row in rows],
        tuple(values if added is None else added),
    )


def ref_params(dims: dict[str, Any]) -> list[Any]:
    values = [dims[column] for column in DIMENSION_COLUMNS]
    values[1] = connection.ops.adapt_datetimefield_value(values[1])
    return values


def ref_rollup_upserts(
    dims: dict[str, Any], counters: Mapping[str, int]
) -> list[Upsert]:
    if not counters:
        return []
    day = dims["hour"].date()
    changed = [name for name in ROLLUP_COUNTERS if counters.get(name)]
    upserts = [
        ref_upsert(
            table,
            key,
            [[*params, *(counters.get(name, 0) for name in ROLLUP_COUNTERS)]],
            ROLLUP_COUNTERS,
            changed,
        )
        for table, key, params in (
            (rollups.ROLLUP_TABLE, DIMENSION_COLUMNS, ref_params(dims)),
            (
                rollups.DAILY_TABLE,
                DAILY_KEY,
                [dims[c] if c != "day" else day for c in DAILY_KEY],
            ),
        )
    ]
    agent_work = [name for name in AGENT_COUNTERS if counters.get(name)]
    if agent_work:
        upserts.append(
            ref_upsert(
                rollups.AGENT_TABLE,
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
        upserts.append(
            ref_upsert(
                rollups.INBOUND_TABLE,
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
    return upserts


def ref_block_groups(dims: dict[str, Any], metric: str) -> list[tuple[int, str]]:
    groups = [(0, "")]
    if metric == ReportBucket.Metric.FIRST_RAW:
        if dims["agent_id"]:
            groups.append((dims["agent_id"], ""))
        groups.append((0, dims["follower_band"]))
    return groups


def ref_bucket_upserts(
    dims: dict[str, Any], cells: Sequence[tuple[str, int]]
) -> list[Upsert]:
    if not cells:
        return []
    base = ref_params(dims)
    hourly = ref_upsert(
        rollups.BUCKET_TABLE,
        [*DIMENSION_COLUMNS, "metric", "key"],
        [[*base, metric, bucket, 1] for metric, bucket in cells],
        ["count"],
    )
    day = dims["hour"].date()
    blocks = ref_upsert(
        rollups.BLOCK_TABLE,
        BLOCK_KEY,
        [
            [
                dims["tenant_id"],
                dims["brand_id"],
                metric,
                agent_id,
                band,
                span,
                ref_block_start(day, span),
                bucket,
                1,
            ]
            for metric, bucket in cells
            for agent_id, band in ref_block_groups(dims, metric)
            for span in BLOCK_SPANS
        ],
        ["count"],
    )
    return [hourly, blocks]


def ref_upserts(operation: "Operation") -> list[Upsert]:
    """The upserts one operation made before (not yet merged)."""
    kind, subject = operation
    if kind == "fact":
        dims = ref_fact_dimensions(subject)
        return [
            *ref_rollup_upserts(dims, ref_fact_counters(subject)),
            *ref_bucket_upserts(dims, ref_fact_buckets(subject)),
        ]
    if kind == "inbound":
        conversation, message = subject
        dims = ref_conversation_dimensions(
            conversation, message.created_at, agent_id=None
        )
        return ref_rollup_upserts(dims, {"inbound": 1})
    if kind == "reply":
        message, move = subject
        dims = ref_conversation_dimensions(
            message.conversation, message.created_at, agent_id=message.author_agent_id
        )
        return ref_rollup_upserts(
            dims, {"private_moves" if move else "public_replies": 1}
        )
    dims, counters = subject
    return ref_rollup_upserts(dims, counters)


# --- The operations, varied ----------------------------------------------------

Operation = tuple[str, Any]

ZONES = [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
moments = st.builds(
    lambda minutes, zone: (
        datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    ).astimezone(zone),
    st.integers(0, 60 * 24 * 200),
    st.sampled_from(ZONES),
)
seconds = st.one_of(st.none(), st.integers(0, 10**8), st.sampled_from([3600, 86400]))
bands = st.sampled_from(["small", "medium", "large", ""])
ids = st.integers(1, 3)


@st.composite
def facts(draw: st.DrawFn) -> CareFact:
    kind = draw(st.sampled_from([*CareFact.Kind, *CareFact.Kind.values]))
    return CareFact(
        tenant_id=draw(ids),
        conversation_id=1,
        kind=kind,
        brand_id=draw(ids),
        account_id=draw(st.one_of(st.none(), ids)),
        platform=draw(st.sampled_from(["x", "api"])),
        origin=draw(st.sampled_from(["mention", "direct_message"])),
        sentiment=draw(st.sampled_from(["neutral", "negative"])),
        follower_band=draw(bands),
        lane="normal",
        agent_id=draw(st.one_of(st.none(), ids)),
        visibility=draw(st.sampled_from(["public", "private", ""])),
        reason=draw(st.sampled_from(["", "after_no_reply", "spam"])),
        started_at=draw(moments),
        at=datetime(2026, 9, 1, tzinfo=UTC),
        raw_seconds=draw(seconds),
        business_seconds=draw(seconds),
        target_seconds=draw(seconds),
        breached=draw(st.booleans()),
        off_hours=draw(st.booleans()),
    )


@st.composite
def conversations(draw: st.DrawFn) -> Conversation:
    return Conversation(
        tenant_id=draw(ids),
        brand_id=draw(ids),
        social_account_id=draw(st.one_of(st.none(), ids)),
        platform=draw(st.sampled_from(["x", "api"])),
        origin=draw(st.sampled_from(["mention", "direct_message"])),
        sentiment=draw(st.sampled_from(["neutral", "negative"])),
        follower_band=draw(bands),
    )


@st.composite
def inbound(draw: st.DrawFn) -> Operation:
    message = Message(created_at=draw(moments))
    return ("inbound", (draw(conversations()), message))


@st.composite
def replies(draw: st.DrawFn) -> Operation:
    message = Message(
        conversation=draw(conversations()),
        created_at=draw(moments),
        author_agent_id=draw(st.one_of(st.none(), ids)),
    )
    return ("reply", (message, draw(st.booleans())))


@st.composite
def counters(draw: st.DrawFn) -> Operation:
    conversation = draw(conversations())
    dims = ref_conversation_dimensions(
        conversation, draw(moments), agent_id=draw(st.one_of(st.none(), ids))
    )
    names = st.sampled_from([*ROLLUP_COUNTERS, "not_a_counter"])
    values = draw(st.dictionaries(names, st.integers(-3, 3), max_size=6))
    return ("counters", (dims, values))


operations = st.one_of(
    st.tuples(st.just("fact"), facts()), inbound(), replies(), counters()
)


def run(operation: Operation) -> None:
    kind, subject = operation
    if kind == "fact":
        rollups.apply_fact(subject)
    elif kind == "inbound":
        rollups.count_inbound(*subject)
    elif kind == "reply":
        rollups.count_reply(subject[0], move_to_private=subject[1])
    else:
        rollups.upsert_rollup(*subject)


def in_batch(body: Callable[[], None]) -> list[Statement]:
    """What `body` leaves for the write batch's statement (nothing run)."""
    batch = writebatch.WriteBatch()
    token = writebatch._active.set(batch)
    try:
        body()
    finally:
        writebatch._active.reset(token)
    assert batch.statements == []
    return [statement for finish in batch.finishers.values() for statement in finish()]


def ref_statements(upserts: Sequence[Upsert]) -> list[Statement]:
    return [upsert.statement() for upsert in ref_merged(upserts)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operations, min_size=1, max_size=12))
def test_one_batch_gets_the_statements_of_the_merged_upserts(
    batch: list[Operation],
) -> None:
    expected = ref_statements([u for op in batch for u in ref_upserts(op)])

    def body() -> None:
        for operation in batch:
            run(operation)

    assert in_batch(body) == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_without_a_batch_each_operation_runs_its_merged_upserts(
    operation: Operation,
) -> None:
    ran: list[list[Statement]] = []
    expected = ref_statements(ref_upserts(operation))

    with mock.patch.object(writebatch, "execute", ran.append):
        run(operation)

    assert ran == ([expected] if expected else [])


@given(facts())
@settings(max_examples=300, deadline=None)
def test_fact_counters_buckets_and_dimensions_are_as_before(fact: CareFact) -> None:
    assert rollups.fact_counters(fact) == ref_fact_counters(fact)
    assert rollups.fact_buckets(fact) == ref_fact_buckets(fact)
    assert rollups.fact_dimensions(fact) == ref_fact_dimensions(fact)


def test_an_unknown_kind_still_raises() -> None:
    fact = CareFact(kind="nope", started_at=datetime(2026, 3, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match=r"'nope' is not a valid CareFact\.Kind"):
        ref_fact_buckets(fact)
    with pytest.raises(ValueError, match=r"'nope' is not a valid CareFact\.Kind"):
        rollups.apply_fact(fact)


@given(st.dates(date(1960, 1, 1), date(2100, 1, 1)), st.sampled_from(BLOCK_SPANS))
def test_block_start_is_as_before(day: date, span: int) -> None:
    assert rollups.block_start(day, span) == ref_block_start(day, span)
