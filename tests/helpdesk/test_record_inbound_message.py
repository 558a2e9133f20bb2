from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from helpdesk.models import Contact, Conversation, Event, Identity, Message
from helpdesk.services.sla import reach_bonus
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.helpdesk.conftest import item, make_account, receive

pytestmark = pytest.mark.django_db


def counts(tenant: Tenant) -> tuple[int, int, int, int]:
    with tenant_context(tenant):
        return (
            Contact.objects.count(),
            Identity.objects.count(),
            Conversation.objects.count(),
            Message.objects.count(),
        )


@time_machine.travel(datetime(2026, 11, 25, 10, 5, tzinfo=UTC), tick=False)
def test_first_mention_opens_a_conversation_with_its_clock(
    tenant: Tenant, account: SocialAccount
) -> None:
    # A Wednesday, inside the brand's default hours (Mon-Fri 09:00-17:00 UTC).
    posted = timezone.now() - timedelta(minutes=5)
    result = receive(
        account, item(text="Where is my bag?", followers=40, created_at=posted)
    )
    conversation = result.conversation
    assert result.created is True
    assert (conversation.origin, conversation.channel_state, conversation.status) == (
        "mention",
        "public",
        "open",
    )
    assert conversation.customer_message_count == 1
    assert conversation.first_customer_message_at == posted
    assert (conversation.sla_kind, conversation.sla_lane) == ("first", "normal")
    assert conversation.sla_due_at == posted + timedelta(minutes=60)
    assert conversation.sla_due_soon_at == posted + timedelta(minutes=48)
    assert conversation.queue_at == conversation.sla_due_at
    assert conversation.preview == "Where is my bag?"
    assert counts(tenant) == (1, 1, 1, 1)
    with tenant_context(tenant):
        identity = Identity.objects.get()
        types = list(Event.objects.order_by("seq").values_list("type", "seq"))
    assert (identity.platform, identity.handle, identity.followers) == (
        "sandbox",
        "jo",
        40,
    )
    assert types == [("message.created", 1), ("conversation.created", 2)]
    assert result.message.seq == 1


def test_a_replayed_item_creates_nothing(
    tenant: Tenant, account: SocialAccount
) -> None:
    first = receive(account, item(external_id="post-1"))
    again = receive(account, item(external_id="post-1"))
    assert again.created is False
    assert again.message.pk == first.message.pk
    assert counts(tenant) == (1, 1, 1, 1)
    with tenant_context(tenant):
        conversation = Conversation.objects.get()
        assert Event.objects.count() == 2
    assert conversation.customer_message_count == 1


def test_same_thread_joins_and_a_new_thread_opens_another(
    tenant: Tenant, account: SocialAccount
) -> None:
    root = receive(account, item(external_id="root-1"))
    reply = receive(account, item(external_id="r-2", thread="root-1", text="Hello??"))
    other = receive(account, item(external_id="root-9"))
    assert reply.conversation.pk == root.conversation.pk
    assert other.conversation.pk != root.conversation.pk
    with tenant_context(tenant):
        conversation = Conversation.objects.get(pk=root.conversation.pk)
    assert conversation.customer_message_count == 2
    assert conversation.preview == "Hello??"


def test_private_messages_share_one_private_conversation(
    tenant: Tenant, account: SocialAccount
) -> None:
    first = receive(account, item(visibility="private", thread="dm-1"))
    second = receive(account, item(visibility="private", thread="dm-1"))
    assert first.conversation.pk == second.conversation.pk
    assert (first.conversation.origin, first.conversation.channel_state) == (
        "direct_message",
        "private",
    )
    assert first.conversation.private_thread_ref == "dm-1"


def test_a_public_post_that_does_not_tag_the_brand_is_listening(
    tenant: Tenant, account: SocialAccount
) -> None:
    result = receive(account, item(mentions=False))
    assert result.conversation.origin == "listening"
    assert result.conversation.mentions_account is False


def test_origin_given_by_the_caller_wins(
    tenant: Tenant, account: SocialAccount
) -> None:
    result = receive(account, item(kind="review", mentions=False), origin="review")
    assert result.conversation.origin == "review"


def test_a_resolved_conversation_reopens_on_a_new_message(
    tenant: Tenant, account: SocialAccount
) -> None:
    first = receive(account, item(external_id="root-1"))
    with tenant_context(tenant):
        Conversation.objects.filter(pk=first.conversation.pk).update(
            status="resolved", resolved_at=timezone.now(), sla_due_at=None, sla_kind=""
        )
    again = receive(account, item(external_id="r-2", thread="root-1"))
    assert again.conversation.pk == first.conversation.pk
    assert again.conversation.status == "open"
    assert again.conversation.resolved_at is None
    assert again.conversation.sla_due_at is not None
    assert again.conversation.sla_kind == "first"


def test_identity_profile_is_refreshed_and_the_contact_kept(
    tenant: Tenant, account: SocialAccount
) -> None:
    receive(account, item(author="c-7", handle="jo", followers=10))
    receive(account, item(author="c-7", handle="jo_new", followers=25_000))
    with tenant_context(tenant):
        identity = Identity.objects.get()
        assert Contact.objects.count() == 1
    assert (identity.handle, identity.followers) == ("jo_new", 25_000)


def test_negative_posts_are_marked_and_prioritised(
    tenant: Tenant, account: SocialAccount
) -> None:
    result = receive(
        account,
        item(text="Worst airline ever, lost my bag, TERRIBLE", followers=20_000),
    )
    assert result.conversation.sentiment == "negative"
    assert result.conversation.priority == 2


def test_reach_moves_a_customer_up_only_within_the_window() -> None:
    window = timedelta(minutes=5)
    assert reach_bonus(50, window) == timedelta(0)
    assert reach_bonus(1_000, window) == timedelta(minutes=1)
    assert reach_bonus(100_000, window) == timedelta(minutes=3)
    assert reach_bonus(10**12, window) == timedelta(minutes=5)
    assert reach_bonus(100_000, window, negative=True) == timedelta(minutes=4)
    assert reach_bonus(100_000, timedelta(minutes=2)) == timedelta(minutes=2)


def test_same_author_on_two_accounts_is_one_contact_two_conversations(
    tenant: Tenant, account: SocialAccount
) -> None:
    care = make_account(tenant, handle="acmehelp")
    receive(account, item(author="c-1"))
    receive(care, item(author="c-1"))
    assert counts(tenant) == (1, 1, 2, 2)


def test_the_same_post_id_on_another_platform_is_another_message(
    tenant: Tenant, account: SocialAccount
) -> None:
    x_account = make_account(tenant, platform="x")
    receive(account, item(external_id="123"))
    receive(x_account, item(external_id="123", platform="x"))
    assert counts(tenant)[3] == 2


def test_events_are_sent_only_after_commit(
    tenant: Tenant,
    account: SocialAccount,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        "helpdesk.events.send_all_to_group",
        lambda group, payloads: sent.extend((group, p) for p in payloads),
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        receive(account, item())
        assert sent == []
    for callback in callbacks:
        callback()
    assert [(group, p["type"], p["seq"]) for group, p in sent] == [
        (f"t{tenant.pk}", "message.created", 1),
        (f"t{tenant.pk}", "conversation.created", 2),
    ]
