"""The automatic away reply (R8): one per conversation, outside business hours, in the
customer's channel, not counted, not stopping the clock, delivered like any reply.

The brand of the `tenant` persona keeps the default hours (Mon-Fri 09:00-17:00 UTC);
each test pins the clock, since the rule depends on it.
"""

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from helpdesk.exceptions import PublicReplyLimitReached
from helpdesk.models import Conversation, Event, Message
from helpdesk.services import away
from helpdesk.services.inbound import InboundResult
from helpdesk.services.replies import post_reply
from social.models import SocialAccount
from tenants import hours
from tenants.brand_rules import WEEKDAYS
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User, default_business_hours
from tests.conftest import login
from tests.helpdesk.conftest import (
    DeliveryQueue,
    item,
    make_account,
    member,
    receive,
    reload,
)
from tests.helpdesk.fakes import FakeConnector

pytestmark = pytest.mark.django_db

MONDAY_EVENING = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)  # closed since 17:00
MONDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BACK_TUESDAY = "back Tuesday at 09:00 (UTC)."
HOLD = timedelta(seconds=20)  # the brand's default send_hold_seconds

Clock = Callable[[datetime], None]


@pytest.fixture(autouse=True)
def _away_replies_on(settings: Any) -> None:
    settings.AWAY_REPLIES_ENABLED = True


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    def set_now(moment: datetime) -> None:
        monkeypatch.setattr(timezone, "now", lambda: moment)

    return set_now


def arrive(
    account: SocialAccount, clock: Clock, at: datetime, **fields: Any
) -> InboundResult:
    """An item written and received at `at` (its on-commit work run)."""
    clock(at)
    return receive(account, item(created_at=at, **fields))


def outbound(tenant: Tenant) -> list[Message]:
    with tenant_context(tenant):
        return list(
            Message.objects.filter(direction="out")
            .select_related("conversation")
            .order_by("id")
        )


def set_brand(tenant: Tenant, **fields: Any) -> None:
    with tenant_context(tenant):
        Brand.objects.update(**fields)


def test_an_offline_mention_gets_one_public_automatic_reply(
    tenant: Tenant,
    account: SocialAccount,
    clock: Clock,
    delivery_queue: DeliveryQueue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        result = arrive(account, clock, MONDAY_EVENING, handle="jo smith")
    [auto] = outbound(tenant)
    assert (
        auto.kind,
        auto.direction,
        auto.visibility,
        auto.delivery_status,
        auto.author_agent_id,
        auto.counts_toward_limit,
        auto.conversation_id,
    ) == (
        "auto_reply",
        "out",
        "public",
        "scheduled",
        None,
        True,
        result.conversation.pk,
    )
    assert auto.text == (
        "Hi Jo, thanks for reaching out. Our team is offline right now and "
        + BACK_TUESDAY
    )
    # The brand's hold (R5), then enqueued on commit like an agent's reply.
    assert auto.send_after == MONDAY_EVENING + HOLD
    assert delivery_queue.calls == [((tenant.pk, auto.pk), MONDAY_EVENING + HOLD)]
    # A public brand post in the thread (R3: it counts), but not an answer: the
    # response clock and the queue are untouched.
    conversation = reload(result.conversation)
    assert conversation.public_reply_count == 1
    assert conversation.first_response_at is None
    assert conversation.last_answered_by_id is None
    # The clock counts business time: the (negative, so urgent) 10-minute target
    # runs from Tuesday's opening; negative sentiment moves it up one minute.
    tuesday_opening = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert conversation.sla_due_at == tuesday_opening + timedelta(minutes=10)
    assert conversation.queue_at == tuesday_opening + timedelta(minutes=9)
    with tenant_context(tenant):
        events = list(Event.objects.order_by("seq").values_list("type", "payload"))
    assert [kind for kind, _ in events] == [
        "message.created",
        "conversation.created",
        "message.created",
        "conversation.updated",
    ]
    assert events[3][1]["changed"] == {"public_reply_count": 1}
    assert events[2][1]["message_id"] == auto.pk
    assert events[2][1]["changed"]["kind"] == "auto_reply"
    assert auto.seq == events[2][1]["seq"]


def test_the_automatic_reply_is_delivered_in_the_thread_by_the_task(
    tenant: Tenant,
    account: SocialAccount,
    clock: Clock,
    delivery_queue: DeliveryQueue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        result = arrive(account, clock, MONDAY_EVENING, external_id="post-1")
    with django_capture_on_commit_callbacks(execute=True):
        assert delivery_queue.run_due() == ["sent"]
    [sent] = FakeConnector.sent
    assert (sent.visibility, sent.in_reply_to) == ("public", "post-1")
    assert sent.text.endswith(BACK_TUESDAY)
    [auto] = outbound(tenant)
    assert auto.delivery_status == "sent"
    assert auto.external_id is not None
    assert reload(result.conversation).public_reply_count == 1


def test_more_messages_while_offline_get_no_second_reply(
    tenant: Tenant,
    account: SocialAccount,
    clock: Clock,
    delivery_queue: DeliveryQueue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = arrive(account, clock, MONDAY_EVENING, external_id="p1")
        for minutes in (1, 2, 3, 4):
            later = MONDAY_EVENING + timedelta(minutes=minutes)
            again = arrive(
                account, clock, later, external_id=f"p1-{minutes}", thread="p1"
            )
            assert again.conversation.pk == first.conversation.pk
    assert [m.kind for m in outbound(tenant)] == ["auto_reply"]
    assert len(delivery_queue.calls) == 1
    assert reload(first.conversation).customer_message_count == 5


def test_no_automatic_reply_while_online(
    tenant: Tenant,
    account: SocialAccount,
    clock: Clock,
    delivery_queue: DeliveryQueue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        arrive(account, clock, MONDAY_NOON)
    assert outbound(tenant) == []
    assert delivery_queue.calls == []


def test_an_online_brand_is_not_searched_for_its_next_change(
    tenant: Tenant,
    account: SocialAccount,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Open around the clock: no change in the nine days the search walks.
    set_brand(tenant, business_hours={day: [["00:00", "24:00"]] for day in WEEKDAYS})
    searched: list[datetime] = []
    search = hours.next_change

    def next_change(brand: Brand, at: datetime) -> datetime | None:
        searched.append(at)
        return search(brand, at)

    monkeypatch.setattr(hours, "next_change", next_change)
    monkeypatch.setattr(away, "next_change", next_change, raising=False)
    arrive(account, clock, MONDAY_EVENING)
    assert outbound(tenant) == []
    assert searched == []
    # Offline, it is searched once, from the item's time.
    set_brand(tenant, business_hours=default_business_hours())
    arrive(account, clock, MONDAY_EVENING, author="cust-2")
    assert searched == [MONDAY_EVENING]
    assert [m.text.endswith(BACK_TUESDAY) for m in outbound(tenant)] == [True]


def test_recorded_history_can_skip_it(
    tenant: Tenant,
    account: SocialAccount,
    clock: Clock,
    delivery_queue: DeliveryQueue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    clock(MONDAY_EVENING)
    with django_capture_on_commit_callbacks(execute=True):
        result = receive(account, item(created_at=MONDAY_EVENING), away_reply=False)
    assert result.created
    assert outbound(tenant) == []
    assert delivery_queue.calls == []


def test_a_conversation_opened_online_gets_none_when_the_customer_writes_at_night(
    tenant: Tenant, account: SocialAccount, clock: Clock
) -> None:
    arrive(account, clock, MONDAY_NOON, external_id="p2")
    arrive(account, clock, MONDAY_EVENING, external_id="p2-1", thread="p2")
    assert outbound(tenant) == []


def test_an_offline_private_message_gets_a_private_reply(
    tenant: Tenant,
    account: SocialAccount,
    clock: Clock,
    delivery_queue: DeliveryQueue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        result = arrive(
            account, clock, MONDAY_EVENING, visibility="private", thread="dm-7"
        )
    [auto] = outbound(tenant)
    assert (auto.kind, auto.visibility) == ("auto_reply", "private")
    with django_capture_on_commit_callbacks(execute=True):
        assert delivery_queue.run_due() == ["sent"]
    [sent] = FakeConnector.sent
    assert (sent.visibility, sent.in_reply_to) == ("private", "dm-7")
    conversation = reload(result.conversation)
    assert (conversation.public_reply_count, conversation.first_response_at) == (
        0,
        None,
    )


def test_untagged_posts_found_by_listening_get_none(
    tenant: Tenant, account: SocialAccount, clock: Clock
) -> None:
    clock(MONDAY_EVENING)
    result = receive(
        account, item(created_at=MONDAY_EVENING, mentions=False), origin="listening"
    )
    assert result.conversation.origin == Conversation.Origin.LISTENING
    assert outbound(tenant) == []


def test_reviews_get_none(tenant: Tenant, account: SocialAccount, clock: Clock) -> None:
    result = arrive(account, clock, MONDAY_EVENING, kind="review", mentions=False)
    assert result.conversation.origin == Conversation.Origin.REVIEW
    assert outbound(tenant) == []


def test_none_where_the_platform_cannot_answer_in_that_channel(
    tenant: Tenant, clock: Clock
) -> None:
    # X answers publicly only posts that mention the account; this comment did not.
    x_account = make_account(tenant, platform="x")
    result = arrive(
        x_account, clock, MONDAY_EVENING, platform="x", kind="comment", mentions=False
    )
    assert result.conversation.origin == Conversation.Origin.COMMENT
    assert outbound(tenant) == []


def test_an_item_that_arrives_after_the_team_is_back_gets_none(
    tenant: Tenant, account: SocialAccount, clock: Clock
) -> None:
    # Written at 08:55, recorded at 09:05: "back at 09:00" would already be past.
    clock(datetime(2026, 11, 24, 9, 5, tzinfo=UTC))
    receive(account, item(created_at=datetime(2026, 11, 24, 8, 55, tzinfo=UTC)))
    assert outbound(tenant) == []


@pytest.mark.parametrize(
    ("display_name", "greeting"),
    [
        ("José-María O'Neil", "Hi José-María,"),
        ("Zoë, frequent flyer", "Hi Zoë,"),
        ("@rival_airline", "Hi there,"),
        ("#boycott now", "Hi there,"),
        ("https://spam.example", "Hi there,"),
        ("", "Hi there,"),
    ],
)
def test_the_greeting_uses_only_a_plain_first_name(
    tenant: Tenant,
    account: SocialAccount,
    clock: Clock,
    display_name: str,
    greeting: str,
) -> None:
    clock(MONDAY_EVENING)
    inbound = item(created_at=MONDAY_EVENING)
    inbound = replace(
        inbound, author=replace(inbound.author, display_name=display_name)
    )
    receive(account, inbound)
    [auto] = outbound(tenant)
    assert auto.text.startswith(f"{greeting} thanks for reaching out.")


def test_an_old_item_from_a_backfill_gets_none(
    tenant: Tenant, account: SocialAccount, clock: Clock
) -> None:
    # The first poll of an account connected at night finds older mentions.
    clock(MONDAY_EVENING + timedelta(minutes=31))
    receive(account, item(created_at=MONDAY_EVENING, external_id="old"))
    assert outbound(tenant) == []
    receive(
        account,
        item(created_at=MONDAY_EVENING + timedelta(minutes=1), author="cust-2"),
    )
    [auto] = outbound(tenant)
    assert auto.send_after == MONDAY_EVENING + timedelta(minutes=31) + HOLD


def test_a_brand_without_business_hours_promises_nothing(
    tenant: Tenant, account: SocialAccount, clock: Clock
) -> None:
    set_brand(tenant, business_hours={})
    arrive(account, clock, MONDAY_EVENING)
    assert outbound(tenant) == []


def test_switched_off_by_the_setting(
    settings: Any, tenant: Tenant, account: SocialAccount, clock: Clock
) -> None:
    settings.AWAY_REPLIES_ENABLED = False
    arrive(account, clock, MONDAY_EVENING)
    assert outbound(tenant) == []


def test_a_brand_is_read_on_its_own_clock_across_daylight_saving(
    tenant: Tenant, account: SocialAccount, clock: Clock
) -> None:
    set_brand(tenant, timezone="Europe/Berlin")
    # Saturday 28 March 2026, 13:00 in Berlin (CET); clocks spring forward on Sunday.
    saturday = arrive(
        account, clock, datetime(2026, 3, 28, 12, 0, tzinfo=UTC), external_id="s1"
    )
    [auto] = outbound(tenant)
    assert auto.conversation_id == saturday.conversation.pk
    assert auto.text.endswith("back Monday at 09:00 (Europe/Berlin).")
    # Monday 07:30 UTC is 09:30 in Berlin (CEST): open, though before 09:00 in UTC.
    arrive(
        account,
        clock,
        datetime(2026, 3, 30, 7, 30, tzinfo=UTC),
        external_id="m1",
        author="cust-2",
    )
    # Friday 16:30 UTC is 17:30 in Berlin (CET): closed, though open in UTC.
    friday = arrive(
        account,
        clock,
        datetime(2026, 3, 27, 16, 30, tzinfo=UTC),
        external_id="f1",
        author="cust-3",
    )
    assert [m.conversation_id for m in outbound(tenant)] == [
        saturday.conversation.pk,
        friday.conversation.pk,
    ]


def test_the_automatic_reply_counts_toward_the_limit_without_blocking_an_answer(
    tenant: Tenant, agent: User, account: SocialAccount, clock: Clock
) -> None:
    result = arrive(account, clock, MONDAY_EVENING)
    [auto] = outbound(tenant)
    assert auto.delivery_status == "scheduled"  # still in its hold
    answered_at = MONDAY_EVENING + timedelta(seconds=7)
    clock(answered_at)
    with tenant_context(tenant):
        reply = post_reply(
            result.conversation, membership=member(tenant, agent), text="Hi Jo!"
        ).message
    assert (reply.kind, reply.visibility, reply.counts_toward_limit) == (
        "reply",
        "public",
        True,
    )
    conversation = reload(result.conversation)
    assert conversation.public_reply_count == 2
    assert conversation.first_response_at == answered_at
    # R3: the automatic reply was one of the brand's public replies in this thread.
    with tenant_context(tenant), pytest.raises(PublicReplyLimitReached):
        post_reply(conversation, membership=member(tenant, agent), text="Again")


def test_the_thread_shows_it_as_an_automatic_reply(
    tenant: Tenant, owner: User, account: SocialAccount, clock: Clock
) -> None:
    result = arrive(account, clock, MONDAY_EVENING)
    [auto] = outbound(tenant)
    page = login(owner).get(
        f"/t/{tenant.slug}/conversations/{result.conversation.pk}/messages/{auto.pk}/"
    )
    assert page.status_code == 200
    body = page.content.decode()
    assert '<span class="author">Automatic reply</span>' in body
    assert "Our team is offline right now" in body
