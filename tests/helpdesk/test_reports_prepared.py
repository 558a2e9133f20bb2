"""Report statements are planned for their own values, never prepared.

The runtime connection binds values server-side and psycopg prepares a statement
once it has run DATABASE_PREPARE_THRESHOLD times (tests/test_prepared_statements.py).
A prepared report statement gets PostgreSQL's generic plan after five custom
ones: costed without its day and hour ranges (one row estimated), it walked all
of a brand's rollup rows and histogram blocks and filtered the ranges, 10x
slower than the custom plan's index ranges at 100k conversations
(tests/perf/test_reports_at_scale.py). helpdesk.reports therefore runs its
statements unprepared, each planned with its values.
"""

from datetime import UTC, date, datetime
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from helpdesk.planning import planned_for_its_values
from helpdesk.reports import (
    ReportFilters,
    report_agents,
    report_fairness,
    report_heatmap,
    report_summary,
    report_timeseries,
)
from tenants.context import tenant_context
from tenants.models import Membership, Tenant, User
from tests.factories import membership_of
from tests.helpdesk.report_support import (
    first_brand,
    make_conversation,
    make_fact,
    make_message,
)
from tests.statements import prepared_like

pytestmark = [pytest.mark.django_db, pytest.mark.sql_audit_exempt]

# Runs of each selector on one connection: past the prepare threshold (2) and
# PostgreSQL's five custom plans, where a prepared statement goes generic.
RUNS = 8


@pytest.fixture
def membership(tenant: Tenant, owner: User, agent: User) -> Membership:
    started = datetime(2026, 3, 2, 10, tzinfo=UTC)
    conversation = make_conversation(tenant)
    make_fact(conversation, "opened", started)
    make_fact(
        conversation,
        "first_response",
        started,
        agent=agent,
        raw_seconds=600,
        business_seconds=600,
        visibility="public",
    )
    make_message(conversation, started)
    return membership_of(tenant, owner)


def test_report_statements_are_never_prepared(
    tenant: Tenant, membership: Membership, agent: User
) -> None:
    assert connection.vendor == "postgresql"
    threshold = settings.DATABASE_PREPARE_THRESHOLD
    assert threshold is not None
    assert threshold < RUNS
    brand = first_brand(tenant)
    # A zone with edge hours (hourly rows beside the daily ones), plain UTC days,
    # and one agent (hourly rows only).
    week = ReportFilters(start=date(2026, 3, 2), end=date(2026, 3, 8))
    variants = [
        ReportFilters(start=week.start, end=week.end, brand_id=brand.pk),
        ReportFilters(start=week.start, end=week.end, timezone="Europe/Berlin"),
        ReportFilters(start=week.start, end=week.end, agent_id=agent.pk),
    ]
    selectors = (
        report_summary,
        report_timeseries,
        report_agents,
        report_fairness,
        report_heatmap,
    )
    with tenant_context(tenant):
        first: dict[tuple[int, int], Any] = {}
        for _ in range(RUNS):
            for v, filters in enumerate(variants):
                for s, selector in enumerate(selectors):
                    answer = selector(membership, filters)
                    # The same answer every time, whatever the plan.
                    assert first.setdefault((v, s), answer) == answer
        summary = first[(0, 0)]["period"]
        assert (summary["conversations"], summary["answered"]) == (1, 1)
        assert summary["inbound"] == 1
        assert prepared_like("%helpdesk_report%") == []
        # Preparation is on for everything else on this connection.
        assert connection.connection.prepare_threshold == threshold
        for _ in range(threshold + 1):
            with connection.cursor() as cursor:
                cursor.execute("SELECT name FROM tenants_brand WHERE id = %s", [0])
        assert prepared_like("SELECT name FROM tenants_brand%") == [
            "SELECT name FROM tenants_brand WHERE id = $1"
        ]


def test_the_threshold_comes_back_when_a_statement_fails(tenant: Tenant) -> None:
    connection.ensure_connection()
    threshold = connection.connection.prepare_threshold
    assert threshold == settings.DATABASE_PREPARE_THRESHOLD
    inside: list[int | None] = []

    def fail() -> None:
        with planned_for_its_values(connection):
            inside.append(connection.connection.prepare_threshold)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail()
    assert inside == [None]
    assert connection.connection.prepare_threshold == threshold
