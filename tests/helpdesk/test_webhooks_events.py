"""The event fan-out: which deliveries each change writes (the outbox)."""

import contextlib
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import Settings as SettingsWrapper

from helpdesk import events
from helpdesk.models import Contact, Event, WebhookDelivery, WebhookEndpoint
from helpdesk.services.contacts import merge_contacts
from helpdesk.services.webhook_outbox import (
    has_active_endpoints,
    notify_account_status_changed,
    queue_webhook_deliveries,
)
from helpdesk.services.webhooks import disable_webhook_endpoint
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.factories import membership_of
from tests.helpdesk.conftest import item, receive
from tests.helpdesk.webhook_support import (  # noqa: F401 - fixtures
    FakeDns,
    WebhookQueue,
    add_endpoint,
    fake_dns_fixture,
    webhook_queue_fixture,
)

pytestmark = pytest.mark.django_db

URL = "https://hooks.example.com/earshot"


@pytest.fixture(autouse=True)
def _fixtures(fake_dns: FakeDns, webhook_queue: WebhookQueue) -> None:
    """No real DNS, and deliveries are captured rather than sent."""


def deliveries(tenant: Tenant) -> list[tuple[str, dict[str, Any], int]]:
    with tenant_context(tenant):
        return [
            (d.event_type, d.payload, d.endpoint_id)
            for d in WebhookDelivery.objects.order_by("id")
        ]


def event_data(tenant: Tenant, type: str) -> dict[str, Any]:
    """What emit() pushed to browsers for `type`, less its type and sequence."""
    with tenant_context(tenant):
        payload = Event.objects.filter(type=type).latest("seq").payload
    return {k: v for k, v in payload.items() if k not in {"type", "seq"}}


def test_nothing_is_queued_without_endpoints(
    tenant: Tenant, account: SocialAccount
) -> None:
    receive(account, item())
    assert deliveries(tenant) == []


def test_a_tenant_without_endpoints_costs_one_cache_read_per_event(
    tenant: Tenant,
) -> None:
    with tenant_context(tenant):
        assert has_active_endpoints(tenant.pk) is False  # fills the cache
        with CaptureQueriesContext(connection) as queries:
            for _ in range(5):
                assert queue_webhook_deliveries(tenant.pk, "message.created", {}) == []
        assert queries.captured_queries == []


def test_inbound_message_queues_message_and_conversation_created(
    tenant: Tenant, owner: User, account: SocialAccount
) -> None:
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    result = receive(account, item(text="Where is my bag?"))
    message_data = {
        "conversation_id": result.conversation.pk,
        "brand_id": result.conversation.brand_id,
        "message_id": result.message.pk,
        "changed": {"direction": "in", "visibility": "public"},
    }
    assert event_data(tenant, "message.created") == message_data
    conversation_data = event_data(tenant, "conversation.created")
    assert conversation_data["conversation_id"] == result.conversation.pk
    conversation_state = {
        "id": result.conversation.pk,
        "brand_id": result.conversation.brand_id,
        "account_id": account.pk,
        "contact_id": result.conversation.contact_id,
        "platform": "sandbox",
        "origin": "mention",
        "status": "open",
        "channel_state": "public",
        "assignee_id": None,
        "public_thread_ref": result.message.external_id,
    }
    message_state = {
        "id": result.message.pk,
        "conversation_id": result.conversation.pk,
        "account_id": account.pk,
        "platform": "sandbox",
        "direction": "in",
        "visibility": "public",
        "kind": "customer",
        "text": "Where is my bag?",
        "delivery_status": "received",
        "external_id": result.message.external_id,
        "in_reply_to": "",
        "agent": None,
    }
    # Integrations get the current state too, so they need not call back.
    assert deliveries(tenant) == [
        (
            "message.created",
            {
                **message_data,
                "message": message_state,
                "conversation": conversation_state,
            },
            endpoint.pk,
        ),
        (
            "conversation.created",
            {**conversation_data, "conversation": conversation_state},
            endpoint.pk,
        ),
    ]


@pytest.mark.parametrize(
    ("type", "fields"),
    [
        (
            "conversation.created",
            {"conversation_id": 1, "brand_id": 2, "changed": {"status": "open"}},
        ),
        (
            "conversation.updated",
            {"conversation_id": 1, "brand_id": 2, "changed": {"assignee_id": 9}},
        ),
        (
            "message.created",
            {
                "conversation_id": 1,
                "brand_id": 2,
                "message_id": 3,
                "changed": {"direction": "out", "visibility": "public"},
            },
        ),
        (
            "message.updated",
            {
                "conversation_id": 1,
                "brand_id": 2,
                "message_id": 3,
                "changed": {"delivery_status": "sent", "external_url": "https://x"},
            },
        ),
    ],
)
def test_every_durable_event_is_queued_with_its_fields_as_data(
    tenant: Tenant, owner: User, type: events.DurableType, fields: dict[str, Any]
) -> None:
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    with tenant_context(tenant):
        events.emit(tenant.pk, type, **fields)
        (delivery,) = WebhookDelivery.objects.all()
    assert (delivery.event_type, delivery.payload) == (type, fields)
    assert delivery.endpoint_id == endpoint.pk
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert delivery.attempts == 0
    assert delivery.next_attempt_at == delivery.created_at


def test_contact_merge_is_queued(tenant: Tenant, owner: User, agent: User) -> None:
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    with tenant_context(tenant):
        source = Contact.objects.create(display_name="Jo (X)")
        target = Contact.objects.create(display_name="Jo")
        merge_contacts(membership_of(tenant, agent), source=source, target=target)
    assert deliveries(tenant) == [
        (
            "contact.merged",
            {
                "contact_id": target.pk,
                "merged_contact_id": source.pk,
                "identities_moved": 0,
                "conversations_moved": 0,
            },
            endpoint.pk,
        )
    ]


def test_account_status_change_is_queued_only_when_it_changes(
    tenant: Tenant, owner: User, account: SocialAccount
) -> None:
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    with tenant_context(tenant):
        account.status = SocialAccount.Status.NEEDS_REAUTH
        notify_account_status_changed(account, previous_status="connected")
        notify_account_status_changed(account, previous_status="needs_reauth")
    assert deliveries(tenant) == [
        (
            "account.status_changed",
            {
                "account_id": account.pk,
                "brand_id": account.brand_id,
                "platform": "sandbox",
                "handle": "acmeair",
                "status": "needs_reauth",
                "previous_status": "connected",
            },
            endpoint.pk,
        )
    ]


def test_social_marks_needs_reauth_and_the_event_is_queued(
    tenant: Tenant, owner: User, account: SocialAccount
) -> None:
    from social.services import mark_needs_reauth

    add_endpoint(tenant, owner, URL)
    with tenant_context(tenant):
        locked = SocialAccount.objects.select_for_update().get(pk=account.pk)
        mark_needs_reauth(tenant, locked, error="Token revoked")
    assert [(t, d["status"]) for t, d, _ in deliveries(tenant)] == [
        ("account.status_changed", "needs_reauth")
    ]


def test_event_filter_is_respected(tenant: Tenant, owner: User) -> None:
    only_messages = add_endpoint(
        tenant, owner, URL + "/m", events=("message.created",)
    ).endpoint
    everything = add_endpoint(tenant, owner, URL + "/all").endpoint
    with tenant_context(tenant):
        queue_webhook_deliveries(tenant.pk, "conversation.updated", {"n": 1})
        queue_webhook_deliveries(tenant.pk, "message.created", {"n": 2})
    assert deliveries(tenant) == [
        ("conversation.updated", {"n": 1}, everything.pk),
        ("message.created", {"n": 2}, only_messages.pk),
        ("message.created", {"n": 2}, everything.pk),
    ]


def test_one_event_has_one_id_and_each_delivery_its_own(
    tenant: Tenant, owner: User
) -> None:
    add_endpoint(tenant, owner, URL + "/a")
    add_endpoint(tenant, owner, URL + "/b")
    with tenant_context(tenant):
        queue_webhook_deliveries(tenant.pk, "message.created", {})
        first, second = WebhookDelivery.objects.order_by("id")
    assert first.event_id == second.event_id
    assert first.uuid != second.uuid


def test_disabled_endpoints_get_nothing(tenant: Tenant, owner: User) -> None:
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    with tenant_context(tenant):
        disable_webhook_endpoint(membership_of(tenant, owner), endpoint)
        assert queue_webhook_deliveries(tenant.pk, "message.created", {}) == []
        assert has_active_endpoints(tenant.pk) is False


def test_a_new_endpoint_is_seen_at_once_despite_the_cache(
    tenant: Tenant, owner: User
) -> None:
    with tenant_context(tenant):
        assert has_active_endpoints(tenant.pk) is False
    add_endpoint(tenant, owner, URL)
    with tenant_context(tenant):
        assert has_active_endpoints(tenant.pk) is True
        assert len(queue_webhook_deliveries(tenant.pk, "message.created", {})) == 1


def test_other_tenants_endpoints_get_nothing(
    tenant: Tenant, other_tenant: Tenant, outsider: User, account: SocialAccount
) -> None:
    add_endpoint(other_tenant, outsider, URL)
    receive(account, item())
    assert deliveries(tenant) == []
    assert deliveries(other_tenant) == []


def test_rolled_back_changes_leave_no_delivery_and_enqueue_nothing(
    tenant: Tenant,
    owner: User,
    webhook_queue: WebhookQueue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    add_endpoint(tenant, owner, URL)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        tenant_context(tenant),
        contextlib.suppress(RuntimeError),
        transaction.atomic(),
    ):
        queue_webhook_deliveries(tenant.pk, "message.created", {})
        raise RuntimeError("the change failed")
    assert deliveries(tenant) == []
    assert webhook_queue.calls == []
    assert callbacks == []


def test_deliveries_are_enqueued_on_commit(
    tenant: Tenant,
    owner: User,
    webhook_queue: WebhookQueue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    add_endpoint(tenant, owner, URL)
    with (
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        tenant_context(tenant),
    ):
        ids = queue_webhook_deliveries(tenant.pk, "message.created", {})
    assert webhook_queue.calls == []
    for callback in callbacks:
        callback()
    assert webhook_queue.ids() == ids


def test_endpoint_rows_are_tenant_rows(tenant: Tenant, owner: User) -> None:
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    assert endpoint.tenant_id == tenant.pk
    with tenant_context(tenant):
        assert WebhookEndpoint.objects.count() == 1


def test_cache_outage_falls_back_to_the_database(
    tenant: Tenant, owner: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.cache import cache

    add_endpoint(tenant, owner, URL)

    def down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("redis is down")

    for name in ("get", "add", "set"):
        monkeypatch.setattr(cache, name, down)
    with tenant_context(tenant):
        assert len(queue_webhook_deliveries(tenant.pk, "message.created", {})) == 1


def test_settings_are_the_production_defaults(settings: SettingsWrapper) -> None:
    assert settings.WEBHOOKS_ALLOW_HTTP is False
    assert settings.WEBHOOKS_ALLOWED_PRIVATE_NETS == []
    assert settings.WEBHOOKS_ALLOWED_PORTS == [443]
    assert settings.WEBHOOKS_DISABLE_AFTER_FAILURES == 15
    beat = settings.CELERY_BEAT_SCHEDULE["sweep-webhook-deliveries"]
    assert beat["task"] == "helpdesk.sweep_all_webhook_deliveries"
