"""The reply's row lock reads only the columns a reply uses
(helpdesk.services.reply_lock.CONVERSATION_COLUMNS and BRAND_COLUMNS).

A column left out would be loaded by a query of its own the first time the
reply reads it. Here the lock's row refuses such loads (Django's FETCH_RAISE),
and the reply's paths run to their end: public and private replies, the
response clock's stop with its care fact, the signature, the warnings, the
admin's override, the move to private, a workspace with a webhook endpoint
(whose events carry the conversation's state) and the API request.
"""

from typing import Any

import pytest
from django.db import transaction
from django.db.models.fetch_modes import FETCH_RAISE
from django.db.models.query import QuerySet

from helpdesk import tasks
from helpdesk.compiled import CompiledQuery
from helpdesk.models import Conversation, Message
from helpdesk.services import reply_lock
from helpdesk.services.replies import move_to_private, post_reply
from helpdesk.services.webhooks import create_webhook_endpoint
from helpdesk.webhooks import ssrf
from helpdesk.webhooks.models import WebhookDelivery
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import AuditEvent, Brand, Tenant, User
from tests.api_clients import base, token_client
from tests.helpdesk.conftest import item, make_account, member, receive, reload

pytestmark = pytest.mark.django_db(transaction=True)


def _refusing(pk: int) -> QuerySet[Conversation]:
    return reply_lock._locked(pk).fetch_mode(FETCH_RAISE)


@pytest.fixture(autouse=True)
def refuse_deferred_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reply_lock, "_LOCKED", CompiledQuery(_refusing, [int]))


def _reply(tenant: Tenant, user: User, conversation: Conversation, **kw: Any) -> Any:
    with tenant_context(tenant):
        return post_reply(conversation, membership=member(tenant, user), **kw)


def test_the_lock_reads_the_listed_columns_only(
    tenant: Tenant, account: SocialAccount
) -> None:
    conversation = receive(account, item()).conversation
    with tenant_context(tenant), transaction.atomic():
        locked = reply_lock.lock_conversation_for_reply(conversation.pk)
        conversation_columns = {f.attname for f in Conversation._meta.concrete_fields}
        brand_columns = {f.attname for f in Brand._meta.concrete_fields}
        assert locked.get_deferred_fields() == conversation_columns - set(
            reply_lock.CONVERSATION_COLUMNS
        )
        assert locked.brand.get_deferred_fields() == brand_columns - set(
            reply_lock.BRAND_COLUMNS
        )
        assert len(locked.get_deferred_fields()) == 18
        assert len(locked.brand.get_deferred_fields()) == 11


def test_a_public_first_answer_with_a_webhook_endpoint(
    tenant: Tenant,
    owner: User,
    agent: User,
    account: SocialAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ssrf, "resolve_host", lambda host, port: ["93.184.216.34"])
    monkeypatch.setattr(tasks.deliver_webhook, "apply_async", lambda *a, **k: None)
    with tenant_context(tenant):
        Brand.objects.update(signature_rules={"sandbox": " ^{initials}"})
        create_webhook_endpoint(
            member(tenant, owner), url="https://hooks.example.com/earshot"
        )
    thread = receive(account, item(text="My flight AA12 is delayed"))
    assert thread.conversation.sla_kind == "first"
    outcome = _reply(tenant, agent, thread.conversation, text="Rebooked you on AA14")
    assert (outcome.message.text, outcome.message.visibility) == (
        "Rebooked you on AA14 ^A",
        "public",
    )
    after = reload(thread.conversation)
    assert (after.public_reply_count, after.sla_kind, after.sla_due_at) == (1, "", None)
    assert after.first_response_at == outcome.message.created_at
    with tenant_context(tenant):
        payloads = {
            d.event_type: d.payload
            for d in WebhookDelivery.objects.filter(event_type="message.created")
        }
    state = payloads["message.created"]["conversation"]
    assert (state["id"], state["contact_id"], state["status"]) == (
        after.pk,
        after.contact_id,
        after.status,
    )


def test_a_private_answer_then_a_confirmed_near_duplicate(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    dm = receive(account, item(visibility="private", thread="dm-1")).conversation
    private = _reply(tenant, agent, dm, text="Here privately").message
    assert (private.visibility, private.text) == ("private", "Here privately")
    one = receive(account, item(author="a", external_id="p1")).conversation
    two = receive(account, item(author="b", external_id="p2")).conversation
    _reply(tenant, agent, one, text="We're sorry for the delay, please DM us your ref!")
    confirmed = _reply(
        tenant,
        agent,
        two,
        text="We are sorry for the delay - please DM us your ref.",
        confirm=["near_duplicate"],
    )
    assert confirmed.warnings_confirmed == frozenset({"near_duplicate"})
    assert confirmed.message.delivery_status == "scheduled"


def test_an_admin_override_at_the_limit(
    tenant: Tenant, admin: User, agent: User, account: SocialAccount
) -> None:
    with tenant_context(tenant):
        Brand.objects.update(public_reply_limit=1)
    conversation = receive(account, item()).conversation
    first = _reply(tenant, agent, conversation, text="First answer").message
    with tenant_context(tenant):
        Message.objects.filter(pk=first.pk).update(delivery_status="sent")
    outcome = _reply(
        tenant, admin, conversation, text="Boarding 14:05", override_reason="outage"
    )
    assert outcome.overridden_limit is True
    assert reload(conversation).public_reply_count == 2
    with tenant_context(tenant):
        audit = AuditEvent.objects.get(action="reply.limit_overridden")
    assert (audit.object_id, audit.data["count"]) == (str(outcome.message.pk), 2)


def test_a_move_to_private(tenant: Tenant, agent: User) -> None:
    meta = make_account(tenant, platform="facebook")
    comment = receive(meta, item(platform="facebook", kind="comment")).conversation
    with tenant_context(tenant):
        queued = move_to_private(
            comment,
            membership=member(tenant, agent),
            public_text="DM us",
            private_text="Hi Jo, what's your booking reference?",
        )
    assert [(m.kind, m.visibility) for m in queued] == [
        ("private_invite", "public"),
        ("reply", "private"),
    ]


def test_the_api_reply(tenant: Tenant, agent: User, account: SocialAccount) -> None:
    conversation = receive(account, item()).conversation
    client = token_client(tenant, agent)
    response = client.post(
        f"{base(tenant)}/conversations/{conversation.pk}/messages/",
        {"text": "On it"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["text"] == "On it"
    assert reload(conversation).last_answered_by_id == agent.pk
