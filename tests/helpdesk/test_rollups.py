"""Rollups (R9): counters and histogram cells kept by apply_fact, count_inbound and
count_reply, equal to a recount from the facts, and rebuilt by rebuild_rollups."""

from datetime import UTC, datetime

import pytest

from helpdesk import histograms
from helpdesk.models import ReportBucket, ReportRollup
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.report_support import make_conversation, make_fact, make_message

pytestmark = pytest.mark.django_db(transaction=False)

T0 = datetime(2026, 3, 2, 9, 17, 5, tzinfo=UTC)
HOUR = datetime(2026, 3, 2, 9, tzinfo=UTC)


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
        rows = list(ReportRollup.objects.order_by("agent_id").values())
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
    assert {
        k: answered[k]
        for k in (
            "answered",
            "answered_public",
            "answered_private",
            "answered_1h",
            "answered_24h",
            "first_breached",
            "off_hours_answered_first_hour",
            "opened",
        )
    } == {
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
