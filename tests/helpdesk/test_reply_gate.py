"""The reply's gate is its row lock: the API reads the conversation once.

`access_conversation_for_reply` locks the conversation for the reply
(helpdesk.services.reply_lock) and answers 404 outside the member's workspace;
`post_reply` in the same transaction uses that row instead of locking it again.
A row locked in a transaction that has ended is locked again.
"""

import pytest
from django.http import Http404

from helpdesk.access import access_conversation_for_reply
from helpdesk.models import Conversation, Message
from helpdesk.services.inbound import InboundResult
from helpdesk.services.replies import post_reply
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.factories import membership_of
from tests.helpdesk.conftest import item, receive
from tests.statements import Statements, count_statements

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def thread(account: SocialAccount) -> InboundResult:
    return receive(account, item(text="My flight AA12 is delayed, any news?"))


def _locks(seen: Statements) -> int:
    return sum('FOR UPDATE OF "helpdesk_conversation"' in sql for sql in seen.sql)


def _replies(tenant: Tenant, conversation_id: int) -> list[str]:
    with tenant_context(tenant):
        return list(
            Message.objects.filter(
                conversation_id=conversation_id, direction=Message.Direction.OUT
            ).values_list("text", flat=True)
        )


def test_a_reply_behind_the_gate_does_not_lock_the_row_again(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    membership = membership_of(tenant, agent)
    with tenant_context(tenant), count_statements() as seen:
        conversation = access_conversation_for_reply(membership, thread.conversation.pk)
        post_reply(conversation, membership=membership, text="Checking now.")
    assert _locks(seen) == 1
    assert _replies(tenant, thread.conversation.pk) == ["Checking now."]


def test_a_row_locked_in_an_ended_transaction_is_locked_again(
    tenant: Tenant, agent: User, thread: InboundResult
) -> None:
    membership = membership_of(tenant, agent)
    with tenant_context(tenant):
        conversation = access_conversation_for_reply(membership, thread.conversation.pk)
    with tenant_context(tenant), count_statements() as seen:
        post_reply(conversation, membership=membership, text="Checking now.")
    assert _locks(seen) == 1
    assert _replies(tenant, thread.conversation.pk) == ["Checking now."]


def test_another_workspaces_conversation_is_not_found(
    tenant: Tenant,
    other_tenant: Tenant,
    outsider: User,
    thread: InboundResult,
) -> None:
    with tenant_context(tenant):
        before = Conversation.objects.get(pk=thread.conversation.pk)
    with tenant_context(other_tenant), pytest.raises(Http404):
        access_conversation_for_reply(
            membership_of(other_tenant, outsider), thread.conversation.pk
        )
    with tenant_context(tenant):
        after = Conversation.objects.get(pk=thread.conversation.pk)
    assert _replies(tenant, thread.conversation.pk) == []
    assert (after.status, after.public_reply_count, after.last_activity_at) == (
        before.status,
        before.public_reply_count,
        before.last_activity_at,
    )


def test_a_missing_conversation_is_not_found(tenant: Tenant, agent: User) -> None:
    with tenant_context(tenant), pytest.raises(Http404):
        access_conversation_for_reply(membership_of(tenant, agent), 987654321)
