"""Invariant 4 on real PostgreSQL: two agents race for the last public reply."""

import threading
from typing import Any

import pytest
from django.db import connection

from helpdesk.exceptions import AnotherReplyPending, PublicReplyLimitReached
from helpdesk.models import Conversation, Message
from helpdesk.services.replies import post_reply
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.helpdesk.conftest import item, member, receive

pytestmark = pytest.mark.django_db(transaction=True)


def race(tenant: Tenant, conversation: Conversation, members: list[Any]) -> list[str]:
    """Two agents post a public reply at the same moment, on two connections."""
    barrier = threading.Barrier(len(members))
    outcomes: list[str] = []

    def attempt(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            with tenant_context(tenant):
                post_reply(
                    conversation,
                    membership=members[index],
                    text=f"Answer from agent {index}",
                )
            outcomes.append("queued")
        except (PublicReplyLimitReached, AnotherReplyPending) as refused:
            outcomes.append(type(refused).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(members))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(outcomes)


def test_two_agents_racing_for_the_third_public_reply_one_wins(
    tenant: Tenant, agent: User, admin: User, account: SocialAccount
) -> None:
    conversation = receive(account, item()).conversation
    with tenant_context(tenant):
        Brand.objects.update(public_reply_limit=3)
        for text in ("First answer", "Second, other answer"):
            post_reply(conversation, membership=member(tenant, agent), text=text)
            Message.objects.filter(direction="out").update(delivery_status="sent")
    outcomes = race(
        tenant, conversation, [member(tenant, agent), member(tenant, admin)]
    )
    assert outcomes == ["PublicReplyLimitReached", "queued"]
    with tenant_context(tenant):
        fresh = Conversation.objects.get(pk=conversation.pk)
        public = Message.objects.filter(direction="out", visibility="public").count()
    assert fresh.public_reply_count == public == 3


def test_racing_past_the_limit_only_one_reply_is_counted(
    tenant: Tenant, agent: User, admin: User, account: SocialAccount
) -> None:
    conversation = receive(account, item()).conversation
    with tenant_context(tenant):
        Brand.objects.update(public_reply_limit=1)
    outcomes = race(
        tenant, conversation, [member(tenant, agent), member(tenant, admin)]
    )
    assert outcomes == ["PublicReplyLimitReached", "queued"]
    with tenant_context(tenant):
        assert Conversation.objects.get(pk=conversation.pk).public_reply_count == 1
        assert Message.objects.filter(direction="out").count() == 1
