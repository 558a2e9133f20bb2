"""Report selectors (helpdesk.reports): exact numbers on constructed facts, read
from the rollups; another workspace's facts never appear."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytest_django import DjangoAssertNumQueries

from helpdesk import histograms
from helpdesk.models import Conversation
from helpdesk.reports import (
    ReportFilters,
    _blocks,
    report_agents,
    report_conversation_rows,
    report_fairness,
    report_heatmap,
    report_summary,
    report_timeseries,
)
from tenants.context import tenant_context
from tenants.models import Brand, Membership, SlaPolicy, Tenant, User
from tests.factories import membership_of
from tests.helpdesk.report_support import (
    first_brand,
    make_conversation,
    make_fact,
    make_message,
)

pytestmark = pytest.mark.django_db

WEEK = ReportFilters(start=date(2026, 3, 2), end=date(2026, 3, 8))


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def v(seconds: int) -> float:
    """What a percentile reads back for a duration: its bucket's value."""
    return histograms.value(histograms.key(seconds))


@dataclass
class Scenario:
    brand: Brand
    conversations: list[Conversation]


def build(tenant: Tenant, agent: User, admin: User) -> Scenario:
    """Five conversations in the week of 2 March 2026 and one the week before.

    c1 answered publicly by the agent in 10 min and resolved; c2 answered by the
    admin in 90 min (breached) and again in 20 min; c3 a DM off hours, answered
    privately by the agent in 8h20 calendar / 30 min business; c4 marked "no
    reply needed"; c5 unanswered. c6 (previous week) answered in 20 min.
    """
    brand = first_brand(tenant)
    c1 = make_conversation(tenant, follower_band="small")
    c2 = make_conversation(tenant, follower_band="medium")
    c3 = make_conversation(
        tenant, platform="facebook", origin="direct_message", follower_band="large"
    )
    c4 = make_conversation(tenant)
    c5 = make_conversation(tenant, origin="comment", sentiment="negative")
    c6 = make_conversation(tenant)
    for conversation, started, off_hours in (
        (c1, at(2, 10, 5), False),
        (c2, at(2, 11), False),
        (c3, at(3, 2), True),
        (c4, at(4, 12), False),
        (c5, at(6, 15), False),
        (c6, datetime(2026, 2, 25, 10, tzinfo=UTC), False),
    ):
        make_fact(conversation, "opened", started, off_hours=off_hours)
    make_fact(
        c1,
        "first_response",
        at(2, 10, 5),
        agent=agent,
        raw_seconds=600,
        business_seconds=600,
        visibility="public",
    )
    make_fact(
        c1,
        "resolution",
        at(2, 10, 5),
        agent=agent,
        raw_seconds=7200,
        business_seconds=3600,
        at=at(2, 12, 5),
    )
    make_fact(
        c2,
        "first_response",
        at(2, 11),
        agent=admin,
        raw_seconds=5400,
        business_seconds=5400,
        breached=True,
        visibility="public",
    )
    make_fact(c2, "breach", at(2, 11))
    make_fact(
        c2,
        "next_response",
        at(2, 14),
        agent=admin,
        raw_seconds=1200,
        business_seconds=1200,
        visibility="public",
    )
    make_fact(
        c3,
        "first_response",
        at(3, 2),
        agent=agent,
        raw_seconds=30000,
        business_seconds=1800,
        off_hours=True,
        visibility="private",
    )
    make_fact(c4, "no_reply", at(4, 12), agent=agent, reason="thanks")
    make_fact(
        c6,
        "first_response",
        datetime(2026, 2, 25, 10, tzinfo=UTC),
        agent=agent,
        raw_seconds=1200,
        business_seconds=1200,
        visibility="public",
    )
    make_message(c1, at(2, 10, 5))
    make_message(c1, at(2, 10, 30))
    make_message(c3, at(3, 2))
    make_message(c6, datetime(2026, 2, 25, 10, tzinfo=UTC))
    make_message(c1, at(2, 10, 15), kind="reply", agent_id=agent.pk)
    make_message(c1, at(2, 10, 40), kind="reply", agent_id=agent.pk)
    make_message(c2, at(2, 11, 30), kind="private_invite", agent_id=admin.pk)
    return Scenario(brand=brand, conversations=[c1, c2, c3, c4, c5, c6])


@pytest.fixture
def scenario(tenant: Tenant, agent: User, admin: User) -> Scenario:
    return build(tenant, agent, admin)


@pytest.fixture
def lead(tenant: Tenant, owner: User) -> Membership:
    return membership_of(tenant, owner)


def test_filters_previous_period_has_the_same_number_of_days() -> None:
    previous = WEEK.previous()

    assert (previous.start, previous.end) == (date(2026, 2, 23), date(2026, 3, 1))
    assert previous.days == WEEK.days == 7


def test_summary_gives_exact_numbers_and_the_change(
    scenario: Scenario,
    lead: Membership,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    with tenant_context(lead.tenant), django_assert_num_queries(2):
        summary = report_summary(lead, WEEK)

    assert summary["period"] == {
        "start": date(2026, 3, 2),
        "end": date(2026, 3, 8),
        "conversations": 5,
        "needing_reply": 4,
        "answered": 3,
        "no_reply": 1,
        "unanswered": 1,
        "response_rate": 0.75,
        "public_response_rate": 2 / 3,
        "private_response_rate": 1.0,
        "answered_within_1h": 0.25,
        "answered_within_24h": 0.75,
        "first_response_p50": v(5400),
        "first_response_p90": v(5400),
        "first_response_business_p50": v(1800),
        "first_response_business_p90": v(1800),
        "next_response_p50": v(1200),
        "next_response_p90": v(1200),
        "breaches": 1,
        "breach_rate": 0.25,
        "resolution_p50": v(7200),
        "resolution_p90": v(7200),
        "off_hours_coverage": 1.0,
        "inbound": 3,
    }
    assert summary["period"]["first_response_p50"] == pytest.approx(5400, rel=0.01)
    previous = summary["previous"]
    assert (previous["conversations"], previous["answered"]) == (1, 1)
    assert previous["response_rate"] == 1.0
    assert previous["first_response_p50"] == v(1200)
    assert (previous["resolution_p50"], previous["off_hours_coverage"]) == (None, None)
    assert previous["inbound"] == 1
    change = summary["change"]
    assert change["conversations"] == 4
    assert change["response_rate"] == -0.25
    assert change["first_response_p50"] == v(5400) - v(1200)
    assert change["resolution_p50"] is None
    assert change["private_response_rate"] is None
    assert change["breach_rate"] == 0.25
    assert "start" not in change


def test_summary_in_a_brand_zone_reads_edge_hours_and_whole_days_alike(
    scenario: Scenario,
    lead: Membership,
    agent: User,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    # New York: 2 March starts at 05:00 UTC; 8 March (the DST switch) ends at
    # 04:00 UTC on 9 March, so the edges of both periods are hours.
    early = make_conversation(lead.tenant)
    late = make_conversation(lead.tenant)
    after = make_conversation(lead.tenant)
    for conversation, started, seconds in (
        (early, at(2, 4), 100),
        (late, at(9, 3, 30), 200),
        (after, at(9, 4), 300),
    ):
        make_fact(conversation, "opened", started)
        make_fact(
            conversation,
            "first_response",
            started,
            agent=agent,
            raw_seconds=seconds,
            business_seconds=seconds,
            visibility="public",
        )
    with tenant_context(lead.tenant):
        Brand.objects.filter(pk=scenario.brand.pk).update(timezone="America/New_York")
        with django_assert_num_queries(3):
            summary = report_summary(
                lead, ReportFilters(**{**vars(WEEK), "brand_id": scenario.brand.pk})
            )

    period, previous = summary["period"], summary["previous"]
    assert (period["conversations"], period["answered"]) == (6, 4)
    assert (period["first_response_p50"], period["first_response_p90"]) == (
        v(600),
        v(5400),
    )
    assert (previous["conversations"], previous["answered"]) == (2, 2)
    # {100, 1200}: lower nearest rank puts both percentiles on 100.
    assert (previous["first_response_p50"], previous["first_response_p90"]) == (
        v(100),
        v(100),
    )


def test_summary_over_months_merges_histogram_blocks_exactly(
    scenario: Scenario,
    lead: Membership,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    # 121 days: 27 January .. 1 April 2026 is one 64-day block, the rest
    # smaller blocks; the previous 121 days hold nothing.
    months = ReportFilters(start=date(2025, 12, 1), end=date(2026, 3, 31))

    with tenant_context(lead.tenant), django_assert_num_queries(2):
        summary = report_summary(lead, months)

    period = summary["period"]
    assert (period["conversations"], period["answered"], period["inbound"]) == (
        6,
        4,
        4,
    )
    assert (period["first_response_p50"], period["first_response_p90"]) == (
        v(1200),
        v(5400),
    )
    assert (period["first_response_business_p50"], period["resolution_p90"]) == (
        v(1200),
        v(7200),
    )
    assert summary["previous"]["conversations"] == 0
    assert summary["previous"]["first_response_p50"] is None


@given(
    start=st.dates(date(2025, 1, 1), date(2027, 1, 1)),
    days=st.integers(0, 400),
)
def test_histogram_blocks_cover_every_day_of_a_range_once(
    start: date, days: int
) -> None:
    end = start + timedelta(days=days)
    covered: list[date] = []
    for condition in _blocks(start, end):
        fields = dict(cast(list[tuple[str, Any]], condition.children))
        span, first, last = fields["span"], fields["day__gte"], fields["day__lt"]
        day = first
        while day < last:
            assert (day - date(1970, 1, 1)).days % span == 0
            covered.extend(day + timedelta(days=n) for n in range(span))
            day += timedelta(days=span)

    assert covered == [start + timedelta(days=n) for n in range(days)]
    # One range of 64-day blocks, at most two of each smaller span.
    assert len(_blocks(start, end)) <= 7


def test_summary_for_one_agent_counts_their_answers_against_all_demand(
    scenario: Scenario, lead: Membership, agent: User
) -> None:
    with tenant_context(lead.tenant):
        period = report_summary(
            lead, ReportFilters(**{**vars(WEEK), "agent_id": agent.pk})
        )["period"]

    assert (period["conversations"], period["needing_reply"]) == (5, 4)
    assert (period["answered"], period["response_rate"]) == (2, 0.5)
    assert (period["first_response_p50"], period["first_response_p90"]) == (
        v(600),
        v(600),
    )
    assert (period["breach_rate"], period["next_response_p50"]) == (0.0, None)


def test_summary_filters_by_platform_and_brand(
    scenario: Scenario, lead: Membership
) -> None:
    facebook = ReportFilters(
        start=WEEK.start,
        end=WEEK.end,
        platform="facebook",
        brand_id=scenario.brand.pk,
    )

    with tenant_context(lead.tenant):
        period = report_summary(lead, facebook)["period"]

    assert (period["conversations"], period["answered"], period["inbound"]) == (1, 1, 1)
    assert period["public_response_rate"] is None
    assert period["private_response_rate"] == 1.0


def test_timeseries_has_a_row_per_day_with_volume_and_times_against_target(
    scenario: Scenario, lead: Membership
) -> None:
    with tenant_context(lead.tenant):
        SlaPolicy.objects.create(brand=scenario.brand, first_response_minutes=30)
        rows = report_timeseries(
            lead,
            ReportFilters(
                start=date(2026, 3, 2), end=date(2026, 3, 4), brand_id=scenario.brand.pk
            ),
        )

    assert [row["date"] for row in rows] == [
        date(2026, 3, 2),
        date(2026, 3, 3),
        date(2026, 3, 4),
    ]
    assert rows[0] == {
        "date": date(2026, 3, 2),
        "inbound": 2,
        "inbound_by_platform": {"x": 2},
        "inbound_by_origin": {"mention": 2},
        "inbound_by_sentiment": {"neutral": 2},
        "first_response_p50": v(600),
        "first_response_p90": v(600),
        "target_seconds": 1800,
    }
    assert (rows[1]["inbound_by_origin"], rows[1]["first_response_p90"]) == (
        {"direct_message": 1},
        v(30000),
    )
    assert rows[2] == {
        "date": date(2026, 3, 4),
        "inbound": 0,
        "inbound_by_platform": {},
        "inbound_by_origin": {},
        "inbound_by_sentiment": {},
        "first_response_p50": None,
        "first_response_p90": None,
        "target_seconds": 1800,
    }


def test_timeseries_days_follow_the_brand_time_zone_and_target_fallback(
    scenario: Scenario, lead: Membership
) -> None:
    with tenant_context(lead.tenant):
        Brand.objects.filter(pk=scenario.brand.pk).update(timezone="America/New_York")
        rows = report_timeseries(
            lead,
            ReportFilters(
                start=date(2026, 3, 2), end=date(2026, 3, 3), brand_id=scenario.brand.pk
            ),
        )

    # 02:00 UTC on 3 March is 21:00 on 2 March in New York.
    assert [row["inbound"] for row in rows] == [3, 0]
    assert (rows[0]["first_response_p50"], rows[0]["first_response_p90"]) == (
        v(5400),
        v(5400),
    )
    assert rows[1]["first_response_p90"] is None
    assert rows[0]["target_seconds"] == 3600


def test_agents_table_per_agent(
    scenario: Scenario, lead: Membership, agent: User, admin: User
) -> None:
    with tenant_context(lead.tenant):
        rows = report_agents(lead, WEEK)

    assert rows == [
        {
            "agent_id": agent.pk,
            "display_name": "Andy",
            "email": "andy@acme.example",
            "answered": 2,
            "first_response_p50": v(600),
            "public_replies": 2,
            "private_moves": 0,
            "no_reply": 1,
        },
        {
            "agent_id": admin.pk,
            "display_name": "Ada",
            "email": "ada@acme.example",
            "answered": 1,
            "first_response_p50": v(5400),
            "public_replies": 0,
            "private_moves": 1,
            "no_reply": 0,
        },
    ]


def test_fairness_compares_the_bands_and_flags_a_ratio_over_1_2(
    scenario: Scenario, lead: Membership
) -> None:
    with tenant_context(lead.tenant):
        fairness = report_fairness(lead, WEEK)

    assert fairness == {
        "bands": {
            "small": {
                "answered": 1,
                "first_response_p50": v(600),
                "first_response_p90": v(600),
            },
            "medium": {
                "answered": 1,
                "first_response_p50": v(5400),
                "first_response_p90": v(5400),
            },
            "large": {
                "answered": 1,
                "first_response_p50": v(30000),
                "first_response_p90": v(30000),
            },
        },
        "ratio": v(30000) / v(600),
        "flagged": True,
    }


def test_agents_and_fairness_in_a_brand_zone_read_edge_hours_and_whole_days(
    scenario: Scenario,
    lead: Membership,
    agent: User,
    admin: User,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    # New York's week of 2 March runs from 05:00 UTC on 2 March to 04:00 UTC on
    # 9 March: c1's and c2's answers and replies fall in the edge hours of 2
    # March, c3's answer and c4's mark in whole UTC days. An answer at 04:30
    # UTC on 2 March (1 March in New York) stays out.
    early = make_conversation(lead.tenant, follower_band="small")
    make_fact(
        early,
        "first_response",
        at(2, 4, 30),
        agent=agent,
        raw_seconds=60,
        business_seconds=60,
        visibility="public",
    )
    week = ReportFilters(start=WEEK.start, end=WEEK.end, brand_id=scenario.brand.pk)
    with tenant_context(lead.tenant):
        Brand.objects.filter(pk=scenario.brand.pk).update(timezone="America/New_York")
        with django_assert_num_queries(4):
            rows = report_agents(lead, week)
        with django_assert_num_queries(3):
            fairness = report_fairness(lead, week)

    assert [
        (row["agent_id"], row["answered"], row["first_response_p50"]) for row in rows
    ] == [(agent.pk, 2, v(600)), (admin.pk, 1, v(5400))]
    assert [
        (row["public_replies"], row["private_moves"], row["no_reply"]) for row in rows
    ] == [(2, 0, 1), (0, 1, 0)]
    assert {
        band: (row["answered"], row["first_response_p50"], row["first_response_p90"])
        for band, row in fairness["bands"].items()
    } == {
        "small": (1, v(600), v(600)),
        "medium": (1, v(5400), v(5400)),
        "large": (1, v(30000), v(30000)),
    }
    assert fairness["ratio"] == v(30000) / v(600)


def test_fairness_with_one_band_has_no_ratio(
    scenario: Scenario, lead: Membership
) -> None:
    with tenant_context(lead.tenant):
        fairness = report_fairness(
            lead, ReportFilters(start=WEEK.start, end=WEEK.end, platform="facebook")
        )

    assert fairness["bands"]["large"]["answered"] == 1
    assert fairness["bands"]["small"] == {
        "answered": 0,
        "first_response_p50": None,
        "first_response_p90": None,
    }
    assert (fairness["ratio"], fairness["flagged"]) == (None, False)


def test_heatmap_counts_inbound_by_local_hour_of_week_against_staffed_hours(
    scenario: Scenario, lead: Membership
) -> None:
    with tenant_context(lead.tenant):
        Brand.objects.filter(pk=scenario.brand.pk).update(timezone="America/New_York")
        branded = report_heatmap(
            lead,
            ReportFilters(start=WEEK.start, end=WEEK.end, brand_id=scenario.brand.pk),
        )
        utc = report_heatmap(lead, WEEK)

    # 10:05 and 10:30 UTC Monday are 05:xx in New York; 02:00 UTC Tuesday is
    # 21:00 Monday.
    assert branded["timezone"] == "America/New_York"
    assert {
        (day, hour): n
        for day, hours in enumerate(branded["inbound"])
        for hour, n in enumerate(hours)
        if n
    } == {(0, 5): 2, (0, 21): 1}
    assert branded["staffed"][0] == [9 <= h < 17 for h in range(24)]
    assert branded["staffed"][5] == [False] * 24
    assert {
        (day, hour): n
        for day, hours in enumerate(utc["inbound"])
        for hour, n in enumerate(hours)
        if n
    } == {(0, 10): 2, (1, 2): 1}
    assert utc["staffed"] == [[False] * 24] * 7


def test_conversation_rows_stream_one_row_per_conversation_opened(
    scenario: Scenario, lead: Membership, agent: User, admin: User
) -> None:
    c1, c2, c3, c4, c5, _c6 = scenario.conversations

    with tenant_context(lead.tenant):
        rows = list(report_conversation_rows(lead, WEEK, chunk_size=2))

    assert [row["conversation_id"] for row in rows] == [
        c.pk for c in (c1, c2, c3, c4, c5)
    ]
    assert rows[0] == {
        "conversation_id": c1.pk,
        "brand_id": scenario.brand.pk,
        "account_id": None,
        "platform": "x",
        "origin": "mention",
        "follower_band": "small",
        "opened_at": at(2, 10, 5),
        "first_response_seconds": 600,
        "first_response_business_seconds": 600,
        "first_response_breached": False,
        "next_response_breached": False,
        "resolution_seconds": 7200,
        "resolution_business_seconds": 3600,
        "resolution_breached": False,
        "resolved_at": at(2, 12, 5),
        "agent_id": agent.pk,
    }
    assert (rows[1]["first_response_breached"], rows[1]["agent_id"]) == (True, admin.pk)
    assert rows[4]["first_response_seconds"] is None
    assert rows[4]["agent_id"] is None

    with tenant_context(lead.tenant):
        mine = list(
            report_conversation_rows(
                lead, ReportFilters(start=WEEK.start, end=WEEK.end, agent_id=admin.pk)
            )
        )
    assert [row["conversation_id"] for row in mine] == [c2.pk]


def test_another_workspace_never_appears(
    scenario: Scenario,
    lead: Membership,
    other_tenant: Tenant,
    outsider: User,
) -> None:
    theirs = make_conversation(other_tenant)
    make_fact(theirs, "opened", at(2, 10))
    make_fact(
        theirs,
        "first_response",
        at(2, 10),
        agent=outsider,
        visibility="public",
        raw_seconds=60,
        business_seconds=60,
    )
    make_message(theirs, at(2, 10))
    their_brand = first_brand(other_tenant)
    stranger = membership_of(other_tenant, outsider)

    with tenant_context(lead.tenant):
        summary = report_summary(lead, WEEK)["period"]
        agents = report_agents(lead, WEEK)
        rows = list(report_conversation_rows(lead, WEEK))
        by_their_brand = report_summary(
            lead, ReportFilters(start=WEEK.start, end=WEEK.end, brand_id=their_brand.pk)
        )["period"]
        heatmap = report_heatmap(lead, WEEK)
    with tenant_context(other_tenant):
        their_view = report_summary(stranger, WEEK)["period"]

    assert (summary["conversations"], summary["inbound"]) == (5, 3)
    assert outsider.pk not in {row["agent_id"] for row in agents}
    assert theirs.pk not in {row["conversation_id"] for row in rows}
    assert (by_their_brand["conversations"], by_their_brand["inbound"]) == (0, 0)
    assert sum(map(sum, heatmap["inbound"])) == 3
    assert (their_view["conversations"], their_view["answered"]) == (1, 1)
    assert their_view["first_response_p50"] == v(60)
