"""A new author's item: contact, identity and message in one statement.

helpdesk.services.inbound._insert_author_and_message_pg writes what
_insert_identity_pg and the message's insert_with_sequences wrote in two
statements. These tests hold it to the same rows, the same instances and the
same outcomes when another worker got there first (the identity, or the
message).
"""

from typing import Any

import pytest

from helpdesk import metrics
from helpdesk.models import Contact, Conversation, Event, Identity, Message
from helpdesk.services import inbound
from helpdesk.services.inbound import InboundResult
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.helpdesk.conftest import item, receive
from tests.helpdesk.row_values import comparable_rows
from tests.statements import count_statements

pytestmark = pytest.mark.django_db(transaction=True)


def two_statements(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path before: the new-author statement declines, so the identity and
    the message go as two statements."""
    monkeypatch.setattr(
        inbound,
        "_insert_author_and_message_pg",
        lambda account, one, origin, cursor: (None, None),
    )


def stored(result: InboundResult) -> dict[str, dict[str, Any]]:
    """The item's rows, without their keys, external ids and times."""
    keys = {"id", "external_id", "conversation_id", "author_identity_id"}
    keys |= {"contact_id"}
    keys |= {"seq", "public_thread_ref", "private_thread_ref", "preview", "text"}
    with tenant_context(result.conversation.tenant_id):
        message = Message.objects.get(pk=result.message.pk)
        conversation = Conversation.objects.get(pk=result.conversation.pk)
        assert message.author_identity_id is not None
        identity = Identity.objects.get(pk=message.author_identity_id)
        contact = Contact.objects.get(pk=identity.contact_id)
        assert message.conversation_id == conversation.pk
        assert conversation.contact_id == contact.pk
    return comparable_rows((message, conversation, identity, contact), keys)


def test_a_new_author_s_item_is_written_in_one_statement(
    tenant: Tenant, account: SocialAccount
) -> None:
    with count_statements() as seen:
        result = receive(account, item(author="new-1", visibility="private"))
    assert result.created
    assert result.opened
    contact = [sql for sql in seen.sql if "INSERT INTO helpdesk_contact" in sql]
    message = [sql for sql in seen.sql if "INSERT INTO helpdesk_message" in sql]
    assert len(contact) == 1, seen.listing()
    assert message == contact, seen.listing()
    with tenant_context(tenant):
        assert Contact.objects.count() == 1
        assert Identity.objects.get().pk == result.message.author_identity_id
        assert Conversation.objects.get().pk == result.message.conversation_id


def test_the_rows_and_instances_are_the_two_statements_ones(
    tenant: Tenant, account: SocialAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    for visibility in ("public", "private"):
        one = receive(account, item(author=f"one-{visibility}", visibility=visibility))
        with monkeypatch.context() as patch:
            two_statements(patch)
            two = receive(
                account, item(author=f"two-{visibility}", visibility=visibility)
            )
        assert stored(one) == stored(two)
        for result in (one, two):
            message, conversation = result.message, result.conversation
            # The instances hold the keys the statement made, and the rows
            # they cache are those instances.
            assert message.conversation is conversation
            identity = message.author_identity
            assert identity is not None
            assert identity.pk == message.author_identity_id
            assert identity.contact_id == conversation.contact_id
            assert not message._state.adding
            assert not conversation._state.adding
            with tenant_context(tenant):
                row = Message.objects.get(pk=message.pk)
            assert (row.seq, row.conversation_id) == (message.seq, conversation.pk)
            assert row.author_identity_id == message.author_identity_id


def test_an_identity_made_meanwhile_is_used_and_our_contact_goes(
    tenant: Tenant, account: SocialAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = receive(account, item(author="same", visibility="private"))
    real = inbound._lookup_pg
    calls: list[bool] = []

    def stale(tenant_id: int, one: Any) -> Any:
        calls.append(True)
        # The first lookup ran before the other worker's identity existed.
        return (False, None) if len(calls) == 1 else real(tenant_id, one)

    monkeypatch.setattr(inbound, "_lookup_pg", stale)
    counted: list[str] = []
    monkeypatch.setattr(metrics, "count_ingested", counted.append)
    second = receive(account, item(author="same", visibility="private"))
    assert len(calls) == 2  # the stale one, then the identity that conflicted
    assert counted == ["sandbox"]  # the item once, as before
    assert second.created
    assert not second.opened
    assert second.conversation.pk == first.conversation.pk
    with tenant_context(tenant):
        assert Contact.objects.count() == 1
        assert Identity.objects.count() == 1
        assert Conversation.objects.get().customer_message_count == 2
        assert (
            Message.objects.filter(
                author_identity_id=first.message.author_identity_id
            ).count()
            == 2
        )


def test_a_message_recorded_meanwhile_is_a_replay(
    tenant: Tenant, account: SocialAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = receive(account, item(external_id="dup", author="a"))
    with tenant_context(tenant):
        before = (Conversation.objects.count(), Message.objects.count())
        events = list(Event.objects.values_list("seq", flat=True))
    # Another author's push of the same message id whose lookup ran before the
    # first was written.
    monkeypatch.setattr(inbound, "_lookup_pg", lambda tenant_id, one: (False, None))
    again = receive(account, item(external_id="dup", author="b"))
    assert not again.created
    assert again.message.pk == first.message.pk
    assert again.conversation.pk == first.conversation.pk
    with tenant_context(tenant):
        assert (Conversation.objects.count(), Message.objects.count()) == before
        assert list(Event.objects.values_list("seq", flat=True)) == events
        # As before: the author's identity (and contact) stay written.
        assert Identity.objects.filter(external_id="b").count() == 1
