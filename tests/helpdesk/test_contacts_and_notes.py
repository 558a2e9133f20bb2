import pytest
from django.http import Http404

from helpdesk.access import access_contact, access_conversation, access_message
from helpdesk.exceptions import HelpdeskError, InvalidTransition
from helpdesk.models import Contact, Conversation, Identity, Note
from helpdesk.services.contacts import merge_contacts
from helpdesk.services.notes import add_note, set_tags
from helpdesk.services.replies import post_reply
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import AuditEvent, Tenant, User
from tests.helpdesk.conftest import item, make_account, member, receive

pytestmark = pytest.mark.django_db


def test_merging_moves_identities_and_history_and_is_audited(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    x_account = make_account(tenant, platform="x")
    on_sandbox = receive(account, item(author="s-1", handle="jo")).conversation
    on_x = receive(
        x_account, item(author="x-1", handle="jo_x", platform="x")
    ).conversation
    with tenant_context(tenant):
        source = Contact.objects.get(pk=on_x.contact_id)
        target = Contact.objects.get(pk=on_sandbox.contact_id)
        source.email = "jo@example.com"
        source.save(update_fields=["email"])
        merged = merge_contacts(member(tenant, agent), source=source, target=target)
        identities = sorted(
            Identity.objects.filter(contact=target).values_list("platform", flat=True)
        )
        conversations = Conversation.objects.filter(contact=target).count()
        source.refresh_from_db()
        audit = AuditEvent.objects.get(action="contact.merged")
    assert identities == ["sandbox", "x"]
    assert conversations == 2
    assert merged.email == "jo@example.com"
    assert source.merged_into_id == target.pk
    assert audit.data == {"source_id": source.pk, "identities": 1, "conversations": 1}
    follow_up = receive(x_account, item(author="x-1", platform="x", external_id="x-2"))
    assert follow_up.conversation.contact_id == target.pk


def test_a_contact_cannot_merge_into_itself(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    conversation = receive(account, item()).conversation
    with tenant_context(tenant):
        contact = Contact.objects.get(pk=conversation.contact_id)
        with pytest.raises(InvalidTransition):
            merge_contacts(member(tenant, agent), source=contact, target=contact)
        assert AuditEvent.objects.filter(action="contact.merged").count() == 0


def test_notes_and_tags(tenant: Tenant, agent: User, account: SocialAccount) -> None:
    conversation = receive(account, item()).conversation
    with tenant_context(tenant):
        note = add_note(
            conversation, membership=member(tenant, agent), text="VIP, flies weekly"
        )
        with pytest.raises(HelpdeskError, match="Write the note first"):
            add_note(conversation, membership=member(tenant, agent), text=" ")
        assert set_tags(
            conversation, membership=member(tenant, agent), names=["Baggage", "vip"]
        ) == [
            "baggage",
            "vip",
        ]
        assert set_tags(
            conversation, membership=member(tenant, agent), names=["vip", "refund"]
        ) == [
            "refund",
            "vip",
        ]
        tags = sorted(conversation.tags.values_list("name", flat=True))
        notes = list(Note.objects.values_list("text", flat=True))
    assert tags == ["refund", "vip"]
    assert notes == ["VIP, flies weekly"]
    assert note.author_id == agent.pk


def test_gates_give_404_for_another_workspaces_objects(
    tenant: Tenant,
    other_tenant: Tenant,
    agent: User,
    outsider: User,
    account: SocialAccount,
) -> None:
    conversation = receive(account, item()).conversation
    with tenant_context(tenant):
        message = post_reply(
            conversation, membership=member(tenant, agent), text="Hi"
        ).message
        assert (
            access_conversation(member(tenant, agent), conversation.pk).pk
            == conversation.pk
        )
    with tenant_context(other_tenant):
        charlie = member(other_tenant, outsider)
        with pytest.raises(Http404):
            access_conversation(charlie, conversation.pk)
        with pytest.raises(Http404):
            access_message(charlie, message.pk)
        with pytest.raises(Http404):
            access_contact(charlie, conversation.contact_id)
