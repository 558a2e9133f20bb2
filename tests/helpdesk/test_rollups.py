"""Rollups (R9): counters and histogram cells kept by apply_fact, count_inbound and
count_reply, equal to a recount from the facts, and rebuilt by rebuild_rollups."""

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpdesk import histograms
from helpdesk.models import (
    AGENT_COUNTERS,
    BLOCK_SPANS,
    DAILY_DIMENSIONS,
    ROLLUP_COUNTERS,
    ROLLUP_DIMENSIONS,
    CareFact,
    Conversation,
    ReportBlockBucket,
    ReportBucket,
    ReportDailyAgentRollup,
    ReportDailyRollup,
    ReportHourlyInbound,
    ReportRollup,
)
from helpdesk.services import rollups
from helpdesk.services.rollups import rebuild_rollups
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.report_support import make_conversation, make_fact, make_message

T0 = datetime(2026, 3, 2, 9, 17, 5, tzinfo=UTC)
HOUR = datetime(2026, 3, 2, 9, tzinfo=UTC)

RATE_FIELDS = (
    "answered",
    "answered_public",
    "answered_private",
    "answered_1h",
    "answered_24h",
    "first_breached",
    "off_hours_answered_first_hour",
    "opened",
)


def rollup_table(tenant: Tenant) -> dict[tuple[Any, ...], dict[str, int]]:
    """The tenant's rollup rows: dimensions -> non-zero counters."""
    with tenant_context(tenant):
        rows = ReportRollup.objects.values(*ROLLUP_DIMENSIONS, *ROLLUP_COUNTERS)
        return {
            tuple(row[d] for d in ROLLUP_DIMENSIONS): {
                c: row[c] for c in ROLLUP_COUNTERS if row[c]
            }
            for row in rows
        }


def bucket_table(tenant: Tenant) -> dict[tuple[Any, ...], int]:
    """The tenant's histogram cells: (dimensions, metric, key) -> count."""
    with tenant_context(tenant):
        rows = ReportBucket.objects.values_list(
            *ROLLUP_DIMENSIONS, "metric", "key", "count"
        )
        return {tuple(row[:-1]): row[-1] for row in rows}


def daily_table(tenant: Tenant) -> dict[tuple[Any, ...], dict[str, int]]:
    """The tenant's daily rows: dimensions -> non-zero counters."""
    with tenant_context(tenant):
        rows = ReportDailyRollup.objects.values(*DAILY_DIMENSIONS, *ROLLUP_COUNTERS)
        return {
            tuple(row[d] for d in DAILY_DIMENSIONS): {
                c: row[c] for c in ROLLUP_COUNTERS if row[c]
            }
            for row in rows
        }


AGENT_DIMENSIONS = (
    "day",
    "brand_id",
    "account_id",
    "platform",
    "agent_id",
    "follower_band",
)


def agent_table(tenant: Tenant) -> dict[tuple[Any, ...], dict[str, int]]:
    """The tenant's daily per-agent rows: dimensions -> non-zero counters."""
    with tenant_context(tenant):
        rows = ReportDailyAgentRollup.objects.values(*AGENT_DIMENSIONS, *AGENT_COUNTERS)
        return {
            tuple(row[d] for d in AGENT_DIMENSIONS): {
                c: row[c] for c in AGENT_COUNTERS if row[c]
            }
            for row in rows
        }


def inbound_table(tenant: Tenant) -> dict[tuple[Any, ...], int]:
    """The tenant's hourly inbound rows: (hour, brand, account, platform) -> n."""
    with tenant_context(tenant):
        rows = ReportHourlyInbound.objects.values_list(
            "hour", "brand_id", "account_id", "platform", "inbound"
        )
        return {tuple(row[:-1]): row[-1] for row in rows}


def block_table(tenant: Tenant) -> dict[tuple[Any, ...], int]:
    """The tenant's block cells: (brand, metric, agent, band, span, day, key) ->
    count."""
    with tenant_context(tenant):
        rows = ReportBlockBucket.objects.values_list(
            "brand_id",
            "metric",
            "agent_id",
            "follower_band",
            "span",
            "day",
            "key",
            "count",
        )
        return {tuple(row[:-1]): row[-1] for row in rows}


def coarse(
    hourly: dict[tuple[Any, ...], dict[str, int]], cells: dict[tuple[Any, ...], int]
) -> dict[str, dict[tuple[Any, ...], Any]]:
    """The coarse levels an hourly recount adds up to: daily rows (the UTC day,
    brand, account, platform, origin, sentiment), daily per-agent rows (day,
    brand, account, platform, agent, band; AGENT_COUNTERS), hourly inbound
    (hour, brand, account, platform) and block cells of BLOCK_SPANS days counted
    from 1970-01-01, for all durations and, for first responses, per agent (not
    0) and per band."""
    daily: dict[tuple[Any, ...], Counter[str]] = {}
    agents: dict[tuple[Any, ...], Counter[str]] = {}
    inbound: Counter[tuple[Any, ...]] = Counter()
    for key, sums in hourly.items():
        hour, brand, account, platform, origin, sentiment, agent, band = key
        day = hour.date()
        daily.setdefault(
            (day, brand, account, platform, origin, sentiment), Counter()
        ).update(sums)
        work = {name: sums[name] for name in AGENT_COUNTERS if sums.get(name)}
        if work:
            agents.setdefault(
                (day, brand, account, platform, agent, band), Counter()
            ).update(work)
        if sums.get("inbound"):
            inbound[(hour, brand, account, platform)] += sums["inbound"]
    blocks: Counter[tuple[Any, ...]] = Counter()
    epoch = datetime(1970, 1, 1, tzinfo=UTC).date()
    for (hour, brand, *_, agent, band, metric, bucket), count in cells.items():
        groups = [(0, "")]
        if metric == "first_raw":
            groups += [(agent, "")] if agent else []
            groups.append((0, band))
        for span in BLOCK_SPANS:
            start = epoch + timedelta(days=(hour.date() - epoch).days // span * span)
            for group_agent, group_band in groups:
                blocks[
                    (brand, metric, group_agent, group_band, span, start, bucket)
                ] += count
    return {
        "daily": {key: dict(sums) for key, sums in daily.items()},
        "agents": {key: dict(sums) for key, sums in agents.items()},
        "inbound": dict(inbound),
        "blocks": dict(blocks),
    }


def coarse_tables(tenant: Tenant) -> dict[str, dict[tuple[Any, ...], Any]]:
    return {
        "daily": daily_table(tenant),
        "agents": agent_table(tenant),
        "inbound": inbound_table(tenant),
        "blocks": block_table(tenant),
    }


@pytest.mark.django_db
def test_first_response_fact_adds_its_counters_and_two_histogram_cells(
    tenant: Tenant, agent: User
) -> None:
    conversation = make_conversation(tenant, origin="direct_message")
    make_fact(conversation, "opened", T0, off_hours=True)
    make_fact(
        conversation,
        "first_response",
        T0,
        agent=agent,
        visibility="private",
        raw_seconds=4000,
        business_seconds=1200,
        off_hours=True,
        breached=True,
    )

    with tenant_context(tenant):
        rows: list[dict[str, Any]] = [
            dict(row) for row in ReportRollup.objects.order_by("agent_id").values()
        ]
        cells = list(
            ReportBucket.objects.order_by("metric").values_list(
                "metric", "key", "count", "agent_id"
            )
        )
    assert len(rows) == 2
    opened, answered = rows
    assert (opened["agent_id"], opened["hour"], opened["opened"]) == (0, HOUR, 1)
    assert opened["off_hours_opened"] == 1
    assert opened["answered"] == 0
    assert answered["agent_id"] == agent.pk
    assert {k: answered[k] for k in RATE_FIELDS} == {
        "answered": 1,
        "answered_public": 0,
        "answered_private": 1,
        "answered_1h": 0,
        "answered_24h": 1,
        "first_breached": 1,
        "off_hours_answered_first_hour": 1,
        "opened": 0,
    }
    assert cells == [
        ("first_business", histograms.key(1200), 1, agent.pk),
        ("first_raw", histograms.key(4000), 1, agent.pk),
    ]


@pytest.mark.django_db
def test_one_statement_per_fact_moves_every_level_of_the_rollups(
    tenant: Tenant, agent: User
) -> None:
    conversation = make_conversation(tenant, origin="direct_message")
    fact = make_fact(
        conversation,
        "first_response",
        T0,
        apply=False,
        agent=agent,
        visibility="private",
        raw_seconds=4000,
        business_seconds=1200,
    )

    message = make_message(conversation, T0 + timedelta(days=1), apply=False)

    with tenant_context(tenant):
        with CaptureQueriesContext(connection) as fact_queries:
            rollups.apply_fact(fact)
        with CaptureQueriesContext(connection) as inbound_queries:
            rollups.count_inbound(conversation, message)

    assert len(fact_queries.captured_queries) == 1
    assert len(inbound_queries.captured_queries) == 1
    brand = conversation.brand_id
    assert daily_table(tenant) == {
        (T0.date(), brand, 0, "x", "direct_message", "neutral"): {
            "answered": 1,
            "answered_private": 1,
            "answered_24h": 1,
        },
        (T0.date() + timedelta(days=1), brand, 0, "x", "direct_message", "neutral"): {
            "inbound": 1
        },
    }
    assert agent_table(tenant) == {
        (T0.date(), brand, 0, "x", agent.pk, "small"): {"answered": 1}
    }
    assert inbound_table(tenant) == {(HOUR + timedelta(days=1), brand, 0, "x"): 1}
    # Day 20514 (2026-03-02) lies in the 4-day block of 20512, the 16-day
    # block of 20512 and the 64-day block of 20480.
    blocks = {
        (1, date(2026, 3, 2)),
        (4, date(2026, 2, 28)),
        (16, date(2026, 2, 28)),
        (64, date(2026, 1, 27)),
    }
    raw, business = histograms.key(4000), histograms.key(1200)
    assert block_table(tenant) == {
        **{
            (brand, "first_raw", agent_id, band, span, day, raw): 1
            for agent_id, band in ((0, ""), (agent.pk, ""), (0, "small"))
            for span, day in blocks
        },
        **{
            (brand, "first_business", 0, "", span, day, business): 1
            for span, day in blocks
        },
    }


@pytest.mark.django_db
def test_answer_after_no_reply_mark_feeds_only_the_histograms(
    tenant: Tenant, agent: User
) -> None:
    conversation = make_conversation(tenant)
    make_fact(
        conversation,
        "first_response",
        T0,
        agent=agent,
        visibility="public",
        raw_seconds=30,
        business_seconds=30,
        reason="after_no_reply",
    )

    assert rollup_table(tenant) == {}
    assert sorted(bucket_table(tenant).values()) == [1, 1]


@pytest.mark.django_db
def test_same_cell_adds_up_and_inbound_and_replies_count(
    tenant: Tenant, agent: User
) -> None:
    conversation = make_conversation(tenant)
    make_message(conversation, T0)
    make_message(conversation, T0.replace(minute=59))
    make_message(conversation, T0, kind="reply", agent_id=agent.pk)
    make_message(conversation, T0, kind="private_invite", agent_id=agent.pk)
    make_message(conversation, T0, kind="reply", agent_id=agent.pk)

    with tenant_context(tenant):
        rows = list(
            ReportRollup.objects.order_by("agent_id").values_list(
                "agent_id", "hour", "inbound", "public_replies", "private_moves"
            )
        )
    assert rows == [(0, HOUR, 2, 0, 0), (agent.pk, HOUR, 0, 2, 1)]


# --- Property: rollups equal a plain recount of the events ---------------------

KINDS: tuple[str, ...] = (
    "opened",
    "first_response",
    "next_response",
    "resolution",
    "no_reply",
    "breach",
    "inbound",
    "reply",
    "private_invite",
)


@dataclass(frozen=True)
class Event:
    kind: str
    conversation: int
    minutes: int
    agent: int  # 0 none, 1 agent, 2 admin
    visibility: str
    raw: int | None
    business: int | None
    breached: bool
    off_hours: bool
    after_no_reply: bool


events = st.lists(
    st.builds(
        Event,
        kind=st.sampled_from(KINDS),
        conversation=st.integers(0, 2),
        # Twelve days from T0 (day 20514) cross the 4-day blocks of 20516 and 20520.
        minutes=st.integers(0, 12 * 24 * 60),
        agent=st.integers(0, 2),
        visibility=st.sampled_from(("public", "private")),
        raw=st.none() | st.integers(0, 200_000),
        business=st.none() | st.integers(0, 10_000),
        breached=st.booleans(),
        off_hours=st.booleans(),
        after_no_reply=st.booleans(),
    ),
    max_size=25,
)

FACT_METRICS = {
    "first_response": ("first_raw", "first_business"),
    "next_response": ("next_raw", "next_business"),
    "resolution": ("resolution_raw", "resolution_business"),
}


def recount(
    event: Event, dims: dict[str, Any], agent_id: int
) -> tuple[tuple[Any, ...], Counter[str], list[tuple[str, int]]]:
    """The plain rules of the rollups, written out again for the check."""
    hour = (T0 + timedelta(minutes=event.minutes)).replace(
        minute=0, second=0, microsecond=0
    )
    counters: Counter[str] = Counter()
    cells: list[tuple[str, int]] = []
    kind = event.kind
    agent = 0 if kind in {"opened", "inbound"} else agent_id
    if kind == "inbound":
        counters["inbound"] += 1
    elif kind == "reply":
        counters["public_replies"] += 1
    elif kind == "private_invite":
        counters["private_moves"] += 1
    elif kind == "opened":
        counters["opened"] += 1
        counters["off_hours_opened"] += event.off_hours
    elif kind == "no_reply":
        counters["no_reply"] += 1
    elif kind == "breach":
        counters["breaches"] += 1
    elif kind == "next_response":
        counters["next_responses"] += 1
        counters["next_breached"] += event.breached
    elif kind == "resolution":
        counters["resolved"] += 1
        counters["resolution_breached"] += event.breached
    elif kind == "first_response" and not event.after_no_reply:
        raw, business = event.raw, event.business
        counters["answered"] += 1
        counters[f"answered_{event.visibility}"] += 1
        counters["answered_1h"] += raw is not None and raw <= 3600
        counters["answered_24h"] += raw is not None and raw <= 86400
        counters["first_breached"] += event.breached
        counters["off_hours_answered_first_hour"] += (
            event.off_hours and business is not None and business <= 3600
        )
    if kind in FACT_METRICS:
        raw_metric, business_metric = FACT_METRICS[kind]
        if event.raw is not None:
            cells.append((raw_metric, histograms.key(event.raw)))
        if event.business is not None:
            cells.append((business_metric, histograms.key(event.business)))
    key = (
        hour,
        dims["brand_id"],
        0,
        dims["platform"],
        dims["origin"],
        dims["sentiment"],
        agent,
        dims["follower_band"],
    )
    return key, counters, cells


def play(
    tenant: Tenant, agents: list[int], sequence: list[Event]
) -> tuple[dict[tuple[Any, ...], dict[str, int]], dict[tuple[Any, ...], int]]:
    """Create the events' facts and messages (applied to the rollups) and recount."""
    conversations: list[Conversation] = [
        make_conversation(tenant, platform="x", origin="mention"),
        make_conversation(
            tenant, platform="facebook", origin="direct_message", follower_band="large"
        ),
        make_conversation(tenant, platform="x", sentiment="negative"),
    ]
    expected: dict[tuple[Any, ...], Counter[str]] = {}
    expected_cells: Counter[tuple[Any, ...]] = Counter()
    for event in sequence:
        conversation = conversations[event.conversation]
        at = T0 + timedelta(minutes=event.minutes)
        agent_id = [0, *agents][event.agent]
        if event.kind in {"inbound", "reply", "private_invite"}:
            kind = "customer" if event.kind == "inbound" else event.kind
            make_message(conversation, at, kind=kind, agent_id=agent_id or None)
        else:
            make_fact(
                conversation,
                event.kind,
                at,
                agent_id=agent_id or None,
                visibility=event.visibility,
                raw_seconds=event.raw,
                business_seconds=event.business,
                breached=event.breached,
                off_hours=event.off_hours,
                reason="after_no_reply" if event.after_no_reply else "",
            )
        dims = {
            "brand_id": conversation.brand_id,
            "platform": conversation.platform,
            "origin": conversation.origin,
            "sentiment": conversation.sentiment,
            "follower_band": conversation.follower_band,
        }
        if event.kind in {"reply", "private_invite"} and not agent_id:
            # A reply without an agent is counted for agent 0 as it is queued, but
            # a rebuild only counts agents' replies; the services never queue one.
            continue
        key, counters, cells = recount(event, dims, agent_id)
        if any(counters.values()):
            expected.setdefault(key, Counter()).update(counters)
        for metric, bucket in cells:
            expected_cells[(*key, metric, bucket)] += 1
    return (
        {
            key: {name: n for name, n in counters.items() if n}
            for key, counters in expected.items()
            if any(counters.values())
        },
        dict(expected_cells),
    )


@pytest.mark.django_db
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(sequence=events)
def test_rollups_equal_a_recount_of_the_events_and_after_a_rebuild(
    tenant: Tenant, agent: User, admin: User, sequence: list[Event]
) -> None:
    with transaction.atomic():
        # Replies without an agent never happen; drop them from the sequence.
        sequence = [
            e
            for e in sequence
            if not (e.kind in {"reply", "private_invite"} and e.agent == 0)
        ]
        expected, expected_cells = play(tenant, [agent.pk, admin.pk], sequence)

        expected_coarse = coarse(expected, expected_cells)

        assert rollup_table(tenant) == expected
        assert bucket_table(tenant) == expected_cells
        assert coarse_tables(tenant) == expected_coarse

        rebuild_rollups(tenant)

        assert rollup_table(tenant) == expected
        assert bucket_table(tenant) == expected_cells
        assert coarse_tables(tenant) == expected_coarse
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_rebuild_restores_lost_rollups_and_keeps_other_tenants(
    tenant: Tenant, other_tenant: Tenant, agent: User
) -> None:
    conversation = make_conversation(tenant)
    make_fact(conversation, "opened", T0)
    make_fact(
        conversation,
        "first_response",
        T0,
        agent=agent,
        visibility="public",
        raw_seconds=1234567,
        business_seconds=0,
    )
    make_message(conversation, T0)
    make_message(conversation, T0, kind="reply", agent_id=agent.pk)
    theirs = make_conversation(other_tenant)
    make_fact(theirs, "opened", T0)
    make_message(theirs, T0)
    before, cells_before = rollup_table(tenant), bucket_table(tenant)
    theirs_before = rollup_table(other_tenant), bucket_table(other_tenant)
    with tenant_context(tenant):
        ReportRollup.objects.all().delete()
        ReportBucket.objects.filter(metric="first_raw").update(count=99)

    assert rebuild_rollups(tenant) == (2, 2)

    assert rollup_table(tenant) == before
    assert bucket_table(tenant) == cells_before
    assert (rollup_table(other_tenant), bucket_table(other_tenant)) == theirs_before


@pytest.mark.django_db
def test_rebuild_command_rebuilds_one_tenant_by_slug_or_all(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    mine, theirs = make_conversation(tenant), make_conversation(other_tenant)
    make_fact(mine, "opened", T0, apply=False)
    make_fact(theirs, "opened", T0, apply=False)

    out = StringIO()
    call_command("rebuild_rollups", "--tenant", tenant.slug, stdout=out)

    assert out.getvalue() == f"{tenant.slug}: 1 rollup rows, 0 histogram cells\n"
    assert list(rollup_table(tenant).values()) == [{"opened": 1}]
    assert rollup_table(other_tenant) == {}

    out = StringIO()
    call_command("rebuild_rollups", stdout=out)

    assert f"{other_tenant.slug}: 1 rollup rows, 0 histogram cells\n" in out.getvalue()
    assert list(rollup_table(other_tenant).values()) == [{"opened": 1}]


@pytest.mark.django_db
def test_rebuild_command_refuses_an_unknown_slug(tenant: Tenant) -> None:
    with pytest.raises(Exception, match="no workspace with slug 'nope'"):
        call_command("rebuild_rollups", "--tenant", "nope")
    assert rollup_table(tenant) == {}


def test_fact_kinds_are_all_known() -> None:
    assert set(KINDS) - {"inbound", "reply", "private_invite"} == {
        k.value for k in CareFact.Kind
    }


def bucket_edges(limit: int) -> list[int]:
    """Each integer where the bucket changes (and the one before it), up to limit."""
    edges: list[int] = [0, 1]
    low = 1
    while low < limit:
        current = histograms.key(low)
        high = low
        while histograms.key(high) == current and high < limit:
            high *= 2
        if histograms.key(high) == current:
            break
        lo, hi = high // 2, high
        while hi - lo > 1:  # smallest integer in the next bucket
            mid = (lo + hi) // 2
            if histograms.key(mid) == current:
                lo = mid
            else:
                hi = mid
        edges.extend([hi - 1, hi])
        low = hi
    return edges


@pytest.mark.django_db
def test_rebuild_computes_bucket_keys_in_sql_exactly_as_python_does() -> None:
    edges = bucket_edges(2_000_000_000)
    values = ", ".join(f"({value})" for value in edges)

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT t.v, {rollups._key_sql('t.v')} FROM (VALUES {values}) AS t(v)"
        )
        in_sql = dict(cursor.fetchall())

    assert len(edges) == 1852  # 925 bucket changes between 1 s and 63 years
    assert {value: int(key) for value, key in in_sql.items()} == {
        value: histograms.key(value) for value in edges
    }
