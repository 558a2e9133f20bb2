"""The response clock (R9, R10): business-time targets, lanes, pauses, breaches.

The `tenant` persona's brand keeps the default hours (Mon-Fri 09:00-17:00 UTC) and
has no SLA policy unless a test sets one (defaults: 60 minutes, urgent 10). Every
message and reply happens at a pinned instant (tests/helpdesk/clock_support.py).
"""

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from helpdesk.models import CareFact, Event, Message
from helpdesk.services import sla
from helpdesk.services.lifecycle import mark_pending, reopen_conversation
from helpdesk.services.notes import set_tags
from helpdesk.services.replies import move_to_private
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.helpdesk.clock_support import (
    ANGRY,
    CLEARED,
    answer,
    clock_of,
    facts,
    nov,
    reload,
    set_policy,
    write,
)
from tests.helpdesk.conftest import member

pytestmark = pytest.mark.django_db

WED_10 = nov(25, 10)


def set_brand(tenant: Tenant, **fields: Any) -> None:
    with tenant_context(tenant):
        Brand.objects.update(**fields)


def test_a_friday_afternoon_message_answered_monday_counts_one_business_hour(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    friday, monday = nov(27, 16, 30), nov(30, 9, 30)
    conversation = write(account, friday)
    assert clock_of(conversation) == (
        "first",
        "normal",
        friday,
        friday,
        0,
        3600,
        monday,  # 30 minutes on Friday, 30 on Monday
        nov(30, 9, 18),  # the last 20% (12 minutes) is "due soon"
    )
    assert reload(conversation).queue_at == monday
    assert reload(conversation).follower_band == "small"
    answer(tenant, agent, conversation, monday)
    assert facts(tenant) == [
        (
            "first_response",
            friday,
            monday,
            65 * 3600,
            3600,
            3600,
            False,
            False,
            "public",
            "normal",
            agent.pk,
            "",
        )
    ]
    assert clock_of(conversation) == CLEARED
    assert (reload(conversation).queue_at, reload(conversation).first_response_at) == (
        None,
        monday,
    )


def test_the_customer_writing_again_starts_a_next_response_clock(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    answer(tenant, agent, conversation, nov(25, 10, 20))
    write(account, nov(25, 10, 30), external_id="again")
    assert clock_of(conversation) == (
        "next",
        "normal",
        nov(25, 10, 30),
        nov(25, 10, 30),
        0,
        3600,
        nov(25, 11, 30),
        nov(25, 11, 18),
    )
    with tenant_context(tenant):
        Message.objects.filter(direction="out").update(delivery_status="sent")
    answer(tenant, agent, conversation, nov(25, 12), text="Found it, on its way.")
    assert facts(tenant) == [
        (
            "first_response",
            WED_10,
            nov(25, 10, 20),
            1200,
            1200,
            3600,
            False,
            False,
            "public",
            "normal",
            agent.pk,
            "",
        ),
        (
            "next_response",
            nov(25, 10, 30),
            nov(25, 12),
            5400,
            5400,
            3600,
            True,
            False,
            "public",
            "normal",
            agent.pk,
            "",
        ),
    ]


def test_a_weekend_message_counts_from_mondays_opening_and_is_off_hours(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    saturday = nov(28, 12)
    conversation = write(account, saturday)
    assert reload(conversation).sla_due_at == nov(30, 10)
    answer(tenant, agent, conversation, nov(30, 9, 45))
    assert facts(tenant) == [
        (
            "first_response",
            saturday,
            nov(30, 9, 45),
            45 * 3600 + 45 * 60,
            45 * 60,
            3600,
            False,
            True,
            "public",
            "normal",
            agent.pk,
            "",
        )
    ]


def test_a_brand_without_weekly_hours_counts_calendar_time(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    set_brand(tenant, business_hours={})
    conversation = write(account, nov(28, 23, 30))
    assert reload(conversation).sla_due_at == nov(29, 0, 30)


def test_negative_sentiment_puts_the_clock_in_the_urgent_lane(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10, text=ANGRY)
    assert clock_of(conversation)[:2] == ("first", "urgent")
    assert clock_of(conversation)[5:] == (600, nov(25, 10, 10), nov(25, 10, 8))
    # Negative sentiment also moves it up one minute, within the queue window.
    assert reload(conversation).queue_at == nov(25, 10, 9)
    answer(tenant, agent, conversation, nov(25, 10, 12))
    assert facts(tenant) == [
        (
            "first_response",
            WED_10,
            nov(25, 10, 12),
            720,
            720,
            600,
            True,
            False,
            "public",
            "urgent",
            agent.pk,
            "",
        )
    ]


def test_a_policy_may_keep_negative_messages_in_the_normal_lane(
    tenant: Tenant, account: SocialAccount
) -> None:
    set_policy(tenant, urgent_on_negative=False, first_response_minutes=30)
    conversation = write(account, WED_10, text=ANGRY)
    assert clock_of(conversation)[:2] == ("first", "normal")
    assert clock_of(conversation)[5:7] == (1800, nov(25, 10, 30))


def test_a_negative_message_moves_a_running_clock_to_urgent_from_its_start(
    tenant: Tenant, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    assert clock_of(conversation)[1] == "normal"
    write(account, nov(25, 10, 5), text=ANGRY, external_id="angry")
    assert clock_of(conversation) == (
        "first",
        "urgent",
        WED_10,
        WED_10,
        0,
        600,
        nov(25, 10, 10),
        nov(25, 10, 8),
    )
    assert reload(conversation).queue_at == nov(25, 10, 9)


def test_an_urgent_tag_puts_the_next_clock_in_the_urgent_lane(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    set_policy(tenant, urgent_tags=["outage"])
    conversation = write(account, WED_10)
    answer(tenant, agent, conversation, nov(25, 10, 10))
    with tenant_context(tenant):
        set_tags(conversation, membership=member(tenant, agent), names=["Outage"])
    write(account, nov(25, 10, 30), external_id="again")
    assert clock_of(conversation)[:2] == ("next", "urgent")
    assert clock_of(conversation)[5:7] == (600, nov(25, 10, 40))


def test_reach_moves_the_queue_position_within_the_brands_window(
    tenant: Tenant, account: SocialAccount
) -> None:
    set_brand(tenant, queue_window_minutes=2)
    conversation = write(account, WED_10, followers=100_000)
    fresh = reload(conversation)
    assert fresh.sla_due_at == nov(25, 11)
    assert fresh.queue_at == nov(25, 10, 58)  # 3 minutes of reach, capped at 2
    assert fresh.follower_band == "large"


def test_followers_fall_in_three_bands() -> None:
    assert [sla.band_for(n) for n in (0, 99, 100, 10_000, 10_001)] == [
        "small",
        "small",
        "medium",
        "medium",
        "large",
    ]


def test_the_brands_policy_wins_over_the_workspace_fallback(
    tenant: Tenant, django_assert_num_queries: Any
) -> None:
    set_policy(tenant, brand=False, first_response_minutes=30)
    with tenant_context(tenant):
        brand = Brand.objects.get()
        with django_assert_num_queries(1):
            assert sla.policy_for(brand).first == 1800
    set_policy(
        tenant,
        first_response_minutes=20,
        next_response_minutes=40,
        resolution_minutes=480,
        urgent_first_response_minutes=5,
        urgent_next_response_minutes=7,
        urgent_tags=["vip"],
    )
    with tenant_context(tenant), django_assert_num_queries(1):
        assert sla.policy_for(brand) == sla.Targets(
            first=1200,
            next=2400,
            resolution=28800,
            urgent_first=300,
            urgent_next=420,
            urgent_on_negative=True,
            urgent_tags=("vip",),
        )


def test_without_any_policy_the_defaults_apply(tenant: Tenant) -> None:
    with tenant_context(tenant):
        targets = sla.policy_for(Brand.objects.get())
    assert targets == sla.Targets(3600, 3600, None, 600, 600, True, ())


def _reads(captured: CaptureQueriesContext) -> tuple[int, int]:
    sqls = [q["sql"] for q in captured.captured_queries]
    return (
        sum('FROM "tenants_slapolicy"' in sql for sql in sqls),
        sum('FROM "tenants_holiday"' in sql for sql in sqls),
    )


def test_policy_and_holidays_are_read_once_when_a_clock_starts_and_not_while_it_runs(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    with CaptureQueriesContext(connection) as started:
        conversation = write(account, WED_10)
    assert _reads(started) == (1, 1)
    with CaptureQueriesContext(connection) as running:
        write(account, nov(25, 10, 5), external_id="more")
    assert _reads(running) == (0, 0)
    with CaptureQueriesContext(connection) as stopped:
        answer(tenant, agent, conversation, nov(25, 10, 20))
    assert _reads(stopped) == (0, 1)


def test_waiting_on_the_customer_pauses_the_clock_and_their_message_resumes_it(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    with time_machine.travel(nov(25, 10, 20), tick=False), tenant_context(tenant):
        mark_pending(conversation, membership=member(tenant, agent))
    assert clock_of(conversation) == (
        "first",
        "normal",
        WED_10,
        None,
        1200,
        3600,
        None,
        None,
    )
    assert reload(conversation).queue_at is None
    write(account, nov(25, 11), external_id="back")
    assert clock_of(conversation) == (
        "first",
        "normal",
        WED_10,
        nov(25, 11),
        1200,
        3600,
        nov(25, 11, 40),  # 40 minutes left
        nov(25, 11, 28),  # 48 minutes in, less the 20 used
    )
    assert reload(conversation).status == "open"
    answer(tenant, agent, conversation, nov(25, 11, 10))
    [fact] = facts(tenant)
    assert fact[:7] == (
        "first_response",
        WED_10,
        nov(25, 11, 10),
        4200,
        1800,
        3600,
        False,
    )


def test_reopening_resumes_a_paused_clock_from_now(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    with time_machine.travel(nov(25, 10, 20), tick=False), tenant_context(tenant):
        mark_pending(conversation, membership=member(tenant, agent))
    with time_machine.travel(nov(25, 13), tick=False), tenant_context(tenant):
        reopen_conversation(conversation, membership=member(tenant, agent))
    assert clock_of(conversation)[3:7] == (nov(25, 13), 1200, 3600, nov(25, 13, 40))
    assert reload(conversation).queue_at == nov(25, 13, 40)


def test_without_pause_while_pending_the_clock_keeps_running(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    set_brand(tenant, pause_while_pending=False)
    conversation = write(account, WED_10)
    before = clock_of(conversation)
    with time_machine.travel(nov(25, 10, 20), tick=False), tenant_context(tenant):
        mark_pending(conversation, membership=member(tenant, agent))
    assert reload(conversation).status == "pending"
    assert clock_of(conversation) == before
    assert before[6] == nov(25, 11)


def test_a_breach_is_recorded_once_when_the_clock_is_due(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    with tenant_context(tenant):
        assert sla.record_breach(conversation, at=nov(25, 10, 59)) is None
        breach = sla.record_breach(conversation, at=nov(25, 11, 1))
        again = sla.record_breach(conversation, at=nov(25, 11, 2))
    assert breach is not None
    assert again is None
    assert conversation.sla_breached_at == nov(25, 11, 1)
    assert reload(conversation).sla_breached_at == nov(25, 11, 1)
    assert facts(tenant, "breach") == [
        (
            "breach",
            WED_10,
            nov(25, 11, 1),
            3660,
            None,
            3600,
            True,
            False,
            "",
            "normal",
            None,
            "",
        )
    ]
    answer(tenant, agent, conversation, nov(25, 11, 30))
    assert facts(tenant, "first_response")[0][4:7] == (5400, 3600, True)
    assert reload(conversation).sla_breached_at is None


def test_no_breach_without_a_running_clock(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    answer(tenant, agent, conversation, nov(25, 10, 10))
    with tenant_context(tenant):
        assert sla.record_breach(conversation, at=nov(25, 12)) is None
    assert facts(tenant, "breach") == []


def test_the_automatic_away_reply_is_no_response(
    tenant: Tenant, account: SocialAccount, settings: Any
) -> None:
    settings.AWAY_REPLIES_ENABLED = True
    monday_evening = nov(23, 20)
    conversation = write(account, monday_evening)
    with tenant_context(tenant):
        kinds = list(Message.objects.values_list("kind", flat=True).order_by("id"))
    assert kinds == ["customer", "auto_reply"]
    assert facts(tenant) == []
    assert clock_of(conversation)[:7] == (
        "first",
        "normal",
        monday_evening,
        monday_evening,
        0,
        3600,
        nov(24, 10),
    )
    assert reload(conversation).first_response_at is None


def test_moving_to_private_is_a_private_response(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    with time_machine.travel(nov(25, 10, 15), tick=False), tenant_context(tenant):
        move_to_private(
            conversation,
            membership=member(tenant, agent),
            public_text="Please send us a DM with your booking code.",
        )
    assert facts(tenant) == [
        (
            "first_response",
            WED_10,
            nov(25, 10, 15),
            900,
            900,
            3600,
            False,
            False,
            "private",
            "normal",
            agent.pk,
            "",
        )
    ]
    assert clock_of(conversation) == CLEARED


def test_a_reply_to_a_private_message_is_a_private_response(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10, visibility="private", thread="dm-1")
    answer(tenant, agent, conversation, nov(25, 10, 5))
    [fact] = facts(tenant)
    assert (fact[0], fact[3], fact[8]) == ("first_response", 300, "private")


def test_a_reply_with_no_clock_running_records_nothing(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = write(account, WED_10)
    answer(tenant, agent, conversation, nov(25, 10, 10))
    with tenant_context(tenant):
        Message.objects.filter(direction="out").update(delivery_status="sent")
    answer(tenant, agent, conversation, nov(25, 10, 20), text="One more detail.")
    with tenant_context(tenant):
        kinds = list(CareFact.objects.order_by("id").values_list("kind", flat=True))
    assert kinds == ["opened", "first_response"]
    assert reload(conversation).first_response_at == nov(25, 10, 10)
    assert clock_of(conversation) == CLEARED


def test_tagging_a_running_clock_urgent_moves_it_to_the_urgent_lane(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    set_policy(tenant, urgent_tags=["outage"])
    conversation = write(account, WED_10, followers=1_000)
    with tenant_context(tenant):
        set_tags(conversation, membership=member(tenant, agent), names=["billing"])
        assert clock_of(conversation)[:2] == ("first", "normal")
        assert sla.tags_changed_clock(reload(conversation)) == {}
        set_tags(conversation, membership=member(tenant, agent), names=["Outage"])
        event = Event.objects.order_by("-seq").values_list("payload", flat=True)[0]
    assert clock_of(conversation)[:6] == ("first", "urgent", WED_10, WED_10, 0, 600)
    current = reload(conversation)
    assert (current.sla_due_at, current.sla_due_soon_at, current.queue_at) == (
        nov(25, 10, 10),
        nov(25, 10, 8),
        nov(25, 10, 9),  # 1,000 followers: one minute
    )
    assert event["changed"] == {
        "tags": ["outage"],
        "sla_lane": "urgent",
        "sla_target_seconds": 600,
        "sla_due_at": nov(25, 10, 10).isoformat(),
        "sla_due_soon_at": nov(25, 10, 8).isoformat(),
        "queue_at": nov(25, 10, 9).isoformat(),
    }


def test_the_clock_follows_the_brands_zone_across_the_end_of_summer_time(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    set_brand(tenant, timezone="Europe/London")
    # Friday 16:30 BST (UTC+1); the clocks go back on Sunday 25 October.
    friday = datetime(2026, 10, 23, 15, 30, tzinfo=UTC)
    monday = datetime(2026, 10, 26, 9, 30, tzinfo=UTC)  # 09:30 GMT
    conversation = write(account, friday)
    assert reload(conversation).sla_due_at == monday
    answer(tenant, agent, conversation, monday)
    [fact] = facts(tenant)
    assert fact[3:7] == (66 * 3600, 3600, 3600, False)
