"""A known author's item: the conversation (found and locked, or a new id) and
the message in one statement.

helpdesk.services.inbound._find_and_insert_message_pg writes what
_find_or_open_pg and the message's insert_with_sequences wrote in two
statements; these tests hold it to the same rows and outcomes.
"""

from typing import Any

import pytest

from helpdesk.models import Conversation, Event, Message
from helpdesk.services import inbound, writebatch
from helpdesk.services.inbound import InboundResult
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.helpdesk.conftest import item, receive
from tests.helpdesk.row_values import comparable_rows
from tests.statements import count_statements

pytestmark = pytest.mark.django_db(transaction=True)


def two_statements(
    account: SocialAccount,
    identity: Any,
    one: Any,
    origin: Any,
    cursor: Any,
    *,
    counted: bool = False,
) -> tuple[Conversation, bool, Message, bool]:
    """The path before: the conversation, then the message."""
    conversation, opened = inbound._find_or_open_pg(
        account, identity, one, origin, cursor
    )
    inbound._attach(conversation, account)
    message = inbound.customer_message(
        account.tenant, conversation, account, identity, one
    )
    inserted = writebatch.insert_with_sequences(
        message, events=0, dedupe=True, cursor=cursor
    )
    return conversation, opened, message, inserted


def stored(result: InboundResult) -> dict[str, dict[str, Any]]:
    """The item's message and conversation, without keys, texts and times."""
    keys = {"id", "external_id", "conversation_id", "author_identity_id", "seq"}
    keys |= {"contact_id", "public_thread_ref", "private_thread_ref"}
    with tenant_context(result.conversation.tenant_id):
        message = Message.objects.get(pk=result.message.pk)
        conversation = Conversation.objects.get(pk=result.conversation.pk)
    assert message.conversation_id == conversation.pk
    return comparable_rows((message, conversation), keys)


@pytest.mark.parametrize("visibility", ["public", "private"])
def test_a_known_author_s_item_is_one_statement_and_the_same_rows(
    tenant: Tenant,
    account: SocialAccount,
    monkeypatch: pytest.MonkeyPatch,
    visibility: str,
) -> None:
    results = []
    for author, merged in (("one", True), ("two", False)):
        first = receive(account, item(author=author, visibility=visibility, thread="t"))
        with monkeypatch.context() as patch:
            if not merged:
                patch.setattr(inbound, "_find_and_insert_message_pg", two_statements)
            with count_statements() as seen:
                second = receive(
                    account,
                    item(
                        author=author,
                        visibility=visibility,
                        thread="t",
                        text="Still waiting!!",
                    ),
                )
        assert second.created
        assert not second.opened
        assert second.conversation.pk == first.conversation.pk
        assert second.message.conversation is second.conversation
        message = [sql for sql in seen.sql if "INSERT INTO helpdesk_message" in sql]
        assert len(message) == 1, seen.listing()
        assert ("FOR UPDATE" in message[0]) is merged, seen.listing()
        results.append(second)
    assert stored(results[0]) == stored(results[1])
    with tenant_context(tenant):
        for result in results:
            conversation = Conversation.objects.get(pk=result.conversation.pk)
            assert conversation.customer_message_count == 2


def test_a_new_thread_of_a_known_author_opens_a_conversation(
    tenant: Tenant, account: SocialAccount
) -> None:
    first = receive(account, item(author="a", thread="t1"))
    second = receive(account, item(author="a", thread="t2"))
    assert second.opened
    assert second.conversation.pk != first.conversation.pk
    assert second.message.conversation_id == second.conversation.pk
    with tenant_context(tenant):
        assert Conversation.objects.count() == 2
        stored_message = Message.objects.get(pk=second.message.pk)
        assert stored_message.conversation_id == second.conversation.pk
        assert stored_message.seq == second.message.seq


def test_a_message_recorded_meanwhile_is_a_replay(
    tenant: Tenant, account: SocialAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = receive(account, item(external_id="dup", author="a"))
    with tenant_context(tenant):
        before = list(Conversation.objects.values_list("id", "customer_message_count"))
        messages = list(Message.objects.values_list("id", flat=True))
        events = list(Event.objects.values_list("seq", flat=True))
    real = inbound._lookup_pg

    def stale(tenant_id: int, one: Any) -> Any:
        # The lookup ran before the same message was written elsewhere.
        return False, real(tenant_id, one)[1]

    monkeypatch.setattr(inbound, "_lookup_pg", stale)
    again = receive(account, item(external_id="dup", author="a", thread="other"))
    assert not again.created
    assert again.message.pk == first.message.pk
    assert again.conversation.pk == first.conversation.pk
    with tenant_context(tenant):
        after = list(Conversation.objects.values_list("id", "customer_message_count"))
        assert after == before
        assert list(Message.objects.values_list("id", flat=True)) == messages
        assert list(Event.objects.values_list("seq", flat=True)) == events
