"""Spreading (R13): engagement velocity against the brand's threshold flags a
conversation, moves it to the urgent lane and up the queue, and R10 still holds:
it never passes another customer's breach (helpdesk.services.spreading)."""

from datetime import datetime, timedelta

import pytest

from helpdesk.demo_spreading import seed_spreading_demo
from helpdesk.models import Conversation, Event, Identity
from helpdesk.queue import item_of, queue_order
from helpdesk.selectors import inbox_conversations
from helpdesk.services.spreading import next_read_at, record_engagement
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.factories import membership_of
from tests.helpdesk.sla_support import HOUR, T0, fresh, make_clocked

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)
URGENT = 600  # the default urgent target, seconds


def events_of(tenant: Tenant, conversation: Conversation) -> list[dict[str, object]]:
    with tenant_context(tenant):
        return [
            e.payload["changed"]
            for e in Event.objects.filter(type="conversation.updated").order_by("seq")
            if e.payload["conversation_id"] == conversation.pk
        ]


def read(
    tenant: Tenant, conversation: Conversation, total: int, *, at: datetime
) -> list[int]:
    with tenant_context(tenant):
        return record_engagement(
            tenant,
            {conversation.pk: total},
            posted={conversation.pk: conversation.created_at},
            at=at,
        )


def test_reads_back_off_with_age_and_stop_after_three_days() -> None:
    posted = T0
    assert next_read_at(posted, at=T0 + 30 * MINUTE) == T0 + 32 * MINUTE
    assert next_read_at(posted, at=T0 + 2 * 60 * MINUTE) == T0 + 130 * MINUTE
    assert next_read_at(posted, at=T0 + 10 * 60 * MINUTE) == T0 + 630 * MINUTE
    assert next_read_at(posted, at=T0 + 2 * 24 * 60 * MINUTE) == T0 + timedelta(
        days=2, hours=2
    )
    # Past three days, the next read is three days out: the conversation has
    # left the reads (social.engagement reads younger ones) by then.
    assert next_read_at(posted, at=T0 + timedelta(days=4)) == T0 + timedelta(days=7)


def test_velocity_over_the_threshold_flags_spreading_and_moves_up(
    tenant: Tenant,
) -> None:
    conversation = make_clocked(tenant, created_at=T0)
    with tenant_context(tenant):
        Brand.objects.update(spreading_threshold=100)

    # First read 30 minutes after the post: 20 in 30 min is 40/h, under 100/h.
    assert read(tenant, conversation, 20, at=T0 + 30 * MINUTE) == []
    quiet = fresh(conversation)
    assert (quiet.engagement_total, quiet.engagement_per_hour) == (20, 40.0)
    assert (quiet.spreading_since, quiet.sla_lane) == (None, "normal")
    assert quiet.engagement_next_at == T0 + 32 * MINUTE
    assert events_of(tenant, conversation) == []

    # Two minutes later 20 more: 600/h.
    at = T0 + 32 * MINUTE
    assert read(tenant, conversation, 40, at=at) == [conversation.pk]
    spreading = fresh(conversation)
    assert spreading.spreading_since == at
    assert spreading.engagement_per_hour == 600.0
    # The urgent target from the clock's start (T0 + 10 min) is over: the urgent
    # target from now, never later than the due time it had (T0 + 1 h).
    assert (spreading.sla_lane, spreading.sla_target_seconds) == ("urgent", URGENT)
    assert spreading.sla_due_at == at + timedelta(seconds=URGENT)
    assert spreading.queue_at == spreading.sla_due_at - 5 * MINUTE
    assert events_of(tenant, conversation) == [
        {
            "spreading_since": at.isoformat(),
            "sla_lane": "urgent",
            "sla_target_seconds": URGENT,
            "sla_due_at": (at + timedelta(seconds=URGENT)).isoformat(),
            "sla_due_soon_at": (at + timedelta(seconds=URGENT * 8 // 10)).isoformat(),
            "queue_at": (at + 5 * MINUTE).isoformat(),
            "engagement_total": 40,
            "engagement_per_hour": 600.0,
        }
    ]

    # Still growing fast: still spreading, nothing new to tell.
    assert read(tenant, conversation, 70, at=T0 + 34 * MINUTE) == []
    assert len(events_of(tenant, conversation)) == 1

    # 60/h is under the threshold but not under half of it: the flag stays.
    read(tenant, conversation, 72, at=T0 + 36 * MINUTE)
    assert fresh(conversation).spreading_since == at
    # 30/h is under half: it ends, in an event; the lane stays urgent.
    read(tenant, conversation, 73, at=T0 + 38 * MINUTE)
    ended = fresh(conversation)
    assert (ended.spreading_since, ended.sla_lane) == (None, "urgent")
    assert events_of(tenant, conversation)[1] == {
        "spreading_since": None,
        "engagement_total": 73,
        "engagement_per_hour": 30.0,
    }


def test_reads_seconds_apart_keep_the_last_velocity(tenant: Tenant) -> None:
    conversation = make_clocked(tenant, created_at=T0)
    read(tenant, conversation, 10, at=T0 + 20 * MINUTE)
    read(tenant, conversation, 500, at=T0 + 20 * MINUTE + timedelta(seconds=5))

    after = fresh(conversation)
    assert (after.engagement_total, after.engagement_per_hour) == (500, 30.0)
    assert after.spreading_since is None


def test_a_first_read_right_after_the_post_counts_ten_minutes_at_least(
    tenant: Tenant,
) -> None:
    conversation = make_clocked(tenant, created_at=T0)
    read(tenant, conversation, 9, at=T0 + 30 * timedelta(seconds=1))

    assert fresh(conversation).engagement_per_hour == 54.0
    assert fresh(conversation).spreading_since is None


def test_spreading_never_passes_another_customers_breach(
    tenant: Tenant, owner: User
) -> None:
    now = T0 + 50 * MINUTE
    # Breached 10 minutes ago.
    breached = make_clocked(tenant, name="Breached", started=T0 - 20 * MINUTE)
    # Due in 3 minutes: at risk within the 5-minute window.
    at_risk = make_clocked(tenant, name="At risk", started=T0 - 7 * MINUTE, target=HOUR)
    # Due in 40 minutes.
    plain = make_clocked(tenant, name="Plain", started=T0 + 30 * MINUTE)
    # Posted 5 minutes ago, due in 55 minutes; it spreads now.
    viral = make_clocked(
        tenant, name="Viral", started=T0 + 45 * MINUTE, created_at=T0 + 45 * MINUTE
    )
    membership = membership_of(tenant, owner)

    def order() -> list[str]:
        with tenant_context(tenant):
            return [
                c.contact.display_name for c in inbox_conversations(membership, now=now)
            ]

    assert order() == ["Breached", "At risk", "Plain", "Viral"]

    assert read(tenant, viral, 5000, at=now) == [viral.pk]

    # Up past the plain one, never past the breach nor the one due first.
    assert order() == ["Breached", "At risk", "Viral", "Plain"]
    moved = fresh(viral)
    assert moved.sla_due_at == T0 + 55 * MINUTE  # urgent target from its start
    dues = {c.pk: fresh(c).sla_due_at for c in (breached, at_risk, viral, plain)}
    assert dues == {
        breached.pk: now - 10 * MINUTE,
        at_risk.pk: now + 3 * MINUTE,
        viral.pk: now + 5 * MINUTE,
        plain.pk: now + 40 * MINUTE,
    }
    with tenant_context(tenant):
        rows = list(inbox_conversations(membership, now=now))
        items = [item_of(c) for c in rows]
    assert [i.id for i in queue_order(items, now)] == [c.pk for c in rows]


def test_an_overdue_conversation_that_spreads_keeps_its_place_behind_earlier_breaches(
    tenant: Tenant, owner: User
) -> None:
    now = T0 + timedelta(hours=2)
    first = make_clocked(tenant, name="First breach", started=T0 - 30 * MINUTE)
    late = make_clocked(tenant, name="Late", started=T0, created_at=T0)
    membership = membership_of(tenant, owner)

    read(tenant, late, 100_000, at=now)

    later = fresh(late)
    assert later.spreading_since == now
    # Already breached (due T0 + 1 h): the due time does not move earlier.
    assert later.sla_due_at == T0 + timedelta(hours=1)
    with tenant_context(tenant):
        names = [
            c.contact.display_name for c in inbox_conversations(membership, now=now)
        ]
    assert names == ["First breach", "Late"]
    assert fresh(first).sla_due_at == T0 + 30 * MINUTE


def test_a_conversation_without_a_running_clock_is_only_flagged(tenant: Tenant) -> None:
    answered = make_clocked(tenant, started=None, created_at=T0)
    read(tenant, answered, 1000, at=T0 + 20 * MINUTE)

    after = fresh(answered)
    assert after.spreading_since == T0 + 20 * MINUTE
    assert (after.sla_lane, after.sla_due_at, after.queue_at) == ("normal", None, None)


def test_another_workspaces_conversation_is_not_touched(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = make_clocked(other_tenant, created_at=T0)
    with tenant_context(tenant):
        assert (
            record_engagement(
                tenant, {theirs.pk: 9999}, posted={theirs.pk: T0}, at=T0 + MINUTE
            )
            == []
        )
    untouched = fresh(theirs)
    assert (untouched.engagement_total, untouched.engagement_read_at) == (0, None)
    assert untouched.spreading_since is None
    assert events_of(other_tenant, theirs) == []


def test_the_demo_flags_the_widest_reaching_open_public_conversation(
    tenant: Tenant,
) -> None:
    small = make_clocked(tenant, name="Small", started=None)
    wide = make_clocked(tenant, name="Wide", started=None)
    with tenant_context(tenant):
        for conversation, followers in ((small, 40), (wide, 152_000)):
            Identity.objects.create(
                tenant=tenant,
                contact_id=conversation.contact_id,
                platform="sandbox",
                external_id=f"p{followers}",
                followers=followers,
            )
        assert seed_spreading_demo(tenant) == wide.pk

    flagged = fresh(wide)
    assert flagged.spreading_since is not None
    assert (flagged.engagement_total, flagged.engagement_per_hour) == (420, 2887.5)
    assert fresh(small).spreading_since is None
