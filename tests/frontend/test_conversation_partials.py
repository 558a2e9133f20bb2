"""The conversation pane's partials: message rows, the composer's states, the contact
panel. Each fragment endpoint renders the same partial the page includes."""

import re

import pytest
from django.test import Client

from helpdesk.models import Contact, Conversation, Message, SavedReply
from helpdesk.services.delivery import record_failure
from helpdesk.services.replies import move_to_private, post_reply
from social.connectors.base import ConnectorError
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.conftest import login
from tests.factories import membership_of
from tests.frontend.conftest import customer_post

pytestmark = pytest.mark.django_db


def reply(tenant: Tenant, user: User, conversation: Conversation, text: str) -> Message:
    with tenant_context(tenant):
        fresh = Conversation.objects.get(pk=conversation.pk)
        return post_reply(
            fresh, membership=membership_of(tenant, user), text=text
        ).message


def mark_sent(tenant: Tenant, message: Message) -> None:
    with tenant_context(tenant):
        Message.objects.filter(pk=message.pk).update(delivery_status="sent")


def composer(client: Client, conversation: Conversation) -> str:
    response = client.get(f"/t/acme-air/conversations/{conversation.pk}/composer/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_message_row_fragment_is_the_row_of_the_page(
    owner: User, account: SocialAccount
) -> None:
    conversation = customer_post(account, text="@acmeair where is my refund?")
    with tenant_context(account.tenant_id):
        message = Message.objects.get(conversation=conversation)
    client = login(owner)
    page = client.get(f"/t/acme-air/inbox/{conversation.pk}/").content.decode()
    row = client.get(
        f"/t/acme-air/conversations/{conversation.pk}/messages/{message.pk}/"
    ).content.decode()
    assert row.strip().startswith('<li class="msg msg-in msg-public ds-received"')
    assert row.strip() in page
    assert '<span class="badge badge-public">Public</span>' in row


def test_a_message_of_another_conversation_is_404(
    owner: User, account: SocialAccount
) -> None:
    first = customer_post(account)
    second = customer_post(account, author="c2", handle="sam")
    with tenant_context(account.tenant_id):
        message = Message.objects.get(conversation=second)
    response = login(owner).get(
        f"/t/acme-air/conversations/{first.pk}/messages/{message.pk}/"
    )
    assert response.status_code == 404


def test_the_composer_answers_a_public_post_in_public_first(
    owner: User, account: SocialAccount
) -> None:
    conversation = customer_post(account)
    html = composer(login(owner), conversation)
    assert re.search(r'value="public" checked', html)
    assert re.search(r'value="private" disabled', html)
    assert (
        "Private message unavailable: Answer publicly first, in the channel the "
        "customer chose." in html
    )
    assert "0 of 2 public replies used" in html
    assert 'data-action="move-private"' in html
    assert 'data-max="500"' in html


def test_a_private_message_is_answered_privately(
    owner: User, account: SocialAccount
) -> None:
    conversation = customer_post(account, visibility="private")
    html = composer(login(owner), conversation)
    assert re.search(r'value="private" checked', html)
    assert "Public reply unavailable: This conversation has no public thread." in html
    assert 'id="move-private-button"' not in html


def test_the_limit_used_up_disables_public_and_suggests_move_to_private(
    owner: User, agent: User, tenant: Tenant, account: SocialAccount
) -> None:
    conversation = customer_post(account)
    client = login(agent)
    first = reply(tenant, agent, conversation, "Sorry Jo, looking now")
    assert "1 of 2 public replies used" in composer(client, conversation)
    mark_sent(tenant, first)
    reply(tenant, agent, conversation, "Found it: it is on the next flight")
    html = composer(client, conversation)
    assert (
        '<span class="limit-use reached" id="limit-use">2 of 2 public replies used'
        in html
    )
    assert (
        re.search(r'value="public"\s+disabled', html)
        or 'value="public" disabled' in html
    )
    assert 'data-action="move-private"' in html
    # The public invitation cannot be posted any more; the private message can.
    assert "All 2 public replies are used" in html
    assert 'name="private_text"' in html


def test_after_move_to_private_the_private_channel_is_the_default(
    agent: User, tenant: Tenant, account: SocialAccount
) -> None:
    conversation = customer_post(account)
    with tenant_context(tenant):
        move_to_private(
            Conversation.objects.get(pk=conversation.pk),
            membership=membership_of(tenant, agent),
            public_text="Please DM us your booking reference",
        )
    client = login(agent)
    html = composer(client, conversation)
    assert re.search(r'value="private" checked', html)
    header = client.get(
        f"/t/acme-air/conversations/{conversation.pk}/header/"
    ).content.decode()
    assert "Private channel · waiting for the customer's message" in header


def test_a_held_reply_shows_its_countdown_and_only_its_author_may_undo_or_edit(
    owner: User, agent: User, tenant: Tenant, account: SocialAccount
) -> None:
    with tenant_context(tenant):
        Brand.objects.update(signature_rules={"sandbox": " ^{initials}"})
    conversation = customer_post(account)
    message = reply(tenant, agent, conversation, "On it, Jo")
    path = f"/t/acme-air/conversations/{conversation.pk}/messages/{message.pk}/"
    mine = login(agent).get(path).content.decode()
    assert re.search(r'Sending in <span data-countdown="[^"]+">(19|20)</span> s', mine)
    assert f'data-action="undo" data-message-id="{message.pk}"' in mine
    assert f'data-action="edit" data-message-id="{message.pk}"' in mine
    # The edit box holds the text without the signature, which is added again.
    assert '<textarea id="edit-' in mine
    assert ">On it, Jo</textarea>" in mine
    theirs = login(owner).get(path).content.decode()
    assert "Sending in" in theirs
    assert 'data-action="undo"' not in theirs
    notice = composer(login(owner), conversation)
    assert "Andy's public reply is about to be sent" in notice


def test_a_failed_delivery_shows_the_platforms_reason_and_retry(
    agent: User, viewer: User, tenant: Tenant, account: SocialAccount
) -> None:
    conversation = customer_post(account)
    message = reply(tenant, agent, conversation, "Sorry about that")
    with tenant_context(tenant):
        Message.objects.filter(pk=message.pk).update(delivery_status="sending")
        record_failure(
            message.pk,
            ConnectorError("Duplicate content: this reply was posted already."),
            final=True,
        )
    path = f"/t/acme-air/conversations/{conversation.pk}/messages/{message.pk}/"
    html = login(agent).get(path).content.decode()
    assert (
        "Not delivered. Sandbox said: <q>Duplicate content: this reply was posted "
        "already.</q>" in html
    )
    assert f'data-action="retry" data-message-id="{message.pk}"' in html
    assert 'data-action="retry"' not in login(viewer).get(path).content.decode()


def test_a_viewer_reads_but_cannot_reply_or_act(
    viewer: User, account: SocialAccount
) -> None:
    conversation = customer_post(account)
    html = login(viewer).get(f"/t/acme-air/inbox/{conversation.pk}/").content.decode()
    assert "You have view-only access to this workspace." in html
    assert 'id="reply-form"' not in html
    assert 'id="assignee-select"' not in html
    assert 'data-action="status"' not in html


def test_saved_replies_are_filled_for_this_customer_and_agent(
    agent: User, tenant: Tenant, account: SocialAccount
) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()
        brand.signature_rules = {"sandbox": " ^{initials}"}
        brand.save(update_fields=["signature_rules"])
        SavedReply.objects.create(
            tenant=tenant,
            brand=brand,
            title="Delay",
            body="Hi {first_name}, {agent_name} here, sorry about {brand_name}.",
        )
    conversation = customer_post(account, handle="jo")
    html = composer(login(agent), conversation)
    assert 'data-text="Hi Jo, Andy here, sorry about Acme Air.">Delay</option>' in html
    assert 'data-signature=" ^A"' in html
    assert "Signed <code>^A</code>" in html


def test_the_contact_panel_shows_identities_history_and_merge_candidates(
    owner: User, tenant: Tenant, account: SocialAccount
) -> None:
    earlier = customer_post(account, handle="jo", followers=152_000, text="first")
    later = customer_post(account, handle="jo", followers=152_000, text="second")
    with tenant_context(tenant):
        Conversation.objects.filter(pk=earlier.pk).update(preview="My bag is lost")
        twin = Contact.objects.create(tenant=tenant, display_name="Jo Martin")
        Contact.objects.create(tenant=tenant, display_name="Someone else")
    client = login(owner)
    panel = client.get(
        f"/t/acme-air/conversations/{later.pk}/contact/"
    ).content.decode()
    assert "152k followers" in panel
    assert "My bag is lost" in panel
    assert f'href="/t/acme-air/inbox/{earlier.pk}/"' in panel
    assert "Merge with another contact" in panel
    found = client.get(
        f"/t/acme-air/contacts/{later.contact_id}/merge-candidates/?q=jo"
    ).content.decode()
    assert f'data-other-id="{twin.pk}"' in found
    assert "Someone else" not in found
