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


def test_two_agents_racing_for_the_third_public_reply_one_wins(
    tenant: Tenant, agent: User, admin: User, account: SocialAccount
) -> None:
    conversation = receive(account, item()).conversation
    with tenant_context(tenant):
        Brand.objects.update(public_reply_limit=3)
        for text in ("First answer", "Second, other answer"):
            post_reply(conversation, membership=member(tenant, agent), text=text)
            Message.objects.filter(direction="out").update(delivery_status="sent")
    memberships = [member(tenant, agent), member(tenant, admin)]
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []

    def attempt(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            with tenant_context(tenant):
                post_reply(
                    conversation,
                    membership=memberships[index],
                    text=f"Third answer from agent {index}",
                )
            outcomes.append("queued")
        except (PublicReplyLimitReached, AnotherReplyPending) as refused:
            outcomes.append(type(refused).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["PublicReplyLimitReached", "queued"]
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
    memberships = [member(tenant, agent), member(tenant, admin)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            with tenant_context(tenant):
                post_reply(
                    conversation, membership=memberships[index], text=f"Answer {index}"
                )
            outcomes.append("queued")
        except (PublicReplyLimitReached, AnotherReplyPending) as refused:
            outcomes.append(type(refused).__name__)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["PublicReplyLimitReached", "queued"]
    with tenant_context(tenant):
        assert Conversation.objects.get(pk=conversation.pk).public_reply_count == 1
        assert Message.objects.filter(direction="out").count() == 1
