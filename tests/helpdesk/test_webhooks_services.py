"""Endpoint services and the gate: roles, validation, secrets, audit, isolation."""

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils import timezone

from helpdesk.access import access_webhook_endpoint
from helpdesk.models import WebhookDelivery, WebhookEndpoint
from helpdesk.services.webhook_outbox import queue_webhook_deliveries
from helpdesk.services.webhooks import (
    MAX_ENDPOINTS,
    create_webhook_endpoint,
    delete_webhook_endpoint,
    disable_webhook_endpoint,
    enable_webhook_endpoint,
    reveal_webhook_secret,
    rotate_webhook_secret,
    send_test_ping,
    update_webhook_endpoint,
)
from helpdesk.webhooks.crypto import SecretUnreadable, decrypt_secret
from helpdesk.webhooks.errors import (
    WebhookEndpointDisabled,
    WebhookEndpointInvalid,
    WebhookUrlRefused,
)
from helpdesk.webhooks.selectors import endpoint_deliveries, webhook_endpoints
from tenants.context import tenant_context
from tenants.models import AuditEvent, Tenant, User
from tests.factories import membership_of
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


def audit_actions(tenant: Tenant) -> list[str]:
    with tenant_context(tenant):
        return list(
            AuditEvent.objects.filter(action__startswith="webhook.")
            .order_by("id")
            .values_list("action", flat=True)
        )


def test_create_returns_the_secret_and_stores_it_encrypted(
    tenant: Tenant, admin: User
) -> None:
    with tenant_context(tenant):
        new = create_webhook_endpoint(
            membership_of(tenant, admin),
            url=f"  {URL}  ",
            description=" CRM sync ",
            events=["message.created", "conversation.created"],
        )
        endpoint = WebhookEndpoint.objects.get()
    assert new.secret.startswith("whsec_")
    assert len(new.secret) > 40
    assert new.secret not in endpoint.secret_encrypted
    assert decrypt_secret(tenant.pk, endpoint.secret_encrypted) == new.secret
    assert (endpoint.url, endpoint.description) == (URL, "CRM sync")
    assert endpoint.events == ["conversation.created", "message.created"]
    assert endpoint.is_active is True
    assert endpoint.created_by_id == admin.pk
    assert audit_actions(tenant) == ["webhook.created"]


def test_secrets_are_bound_to_their_tenant(
    tenant: Tenant, admin: User, other_tenant: Tenant
) -> None:
    new = add_endpoint(tenant, admin, URL)
    with pytest.raises(SecretUnreadable):
        decrypt_secret(other_tenant.pk, new.endpoint.secret_encrypted)


def test_unknown_events_and_long_descriptions_are_field_errors(
    tenant: Tenant, owner: User
) -> None:
    with tenant_context(tenant):
        membership = membership_of(tenant, owner)
        with pytest.raises(WebhookEndpointInvalid) as events:
            create_webhook_endpoint(membership, url=URL, events=["ticket.created"])
        with pytest.raises(WebhookEndpointInvalid) as description:
            create_webhook_endpoint(membership, url=URL, description="x" * 201)
        with pytest.raises(WebhookEndpointInvalid):
            create_webhook_endpoint(membership, url=URL, events=["ping"])
        assert WebhookEndpoint.objects.count() == 0
    assert events.value.field == "events"
    assert "ticket.created" in events.value.message
    assert description.value.field == "description"


def test_a_workspace_has_a_bounded_number_of_endpoints(
    tenant: Tenant, owner: User
) -> None:
    for n in range(MAX_ENDPOINTS):
        add_endpoint(tenant, owner, f"{URL}/{n}")
    with tenant_context(tenant):
        with pytest.raises(WebhookEndpointInvalid):
            create_webhook_endpoint(membership_of(tenant, owner), url=URL)
        assert WebhookEndpoint.objects.count() == MAX_ENDPOINTS


@pytest.mark.parametrize("role", ["agent", "viewer"])
def test_only_admins_manage_endpoints(
    role: str, tenant: Tenant, owner: User, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(role)
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    with tenant_context(tenant):
        membership = membership_of(tenant, user)
        for action in (
            lambda: create_webhook_endpoint(membership, url=URL),
            lambda: update_webhook_endpoint(membership, endpoint, description="x"),
            lambda: rotate_webhook_secret(membership, endpoint),
            lambda: reveal_webhook_secret(membership, endpoint),
            lambda: disable_webhook_endpoint(membership, endpoint),
            lambda: enable_webhook_endpoint(membership, endpoint),
            lambda: send_test_ping(membership, endpoint),
            lambda: delete_webhook_endpoint(membership, endpoint),
        ):
            with pytest.raises(PermissionDenied):
                action()
        stored = WebhookEndpoint.objects.get()
        assert (stored.description, stored.is_active) == ("Test", True)
        assert stored.secret_encrypted == endpoint.secret_encrypted
        assert WebhookDelivery.objects.count() == 0
    assert audit_actions(tenant) == ["webhook.created"]


def test_update_changes_only_what_is_given(tenant: Tenant, owner: User) -> None:
    endpoint = add_endpoint(tenant, owner, URL, events=("message.created",)).endpoint
    with tenant_context(tenant):
        membership = membership_of(tenant, owner)
        update_webhook_endpoint(membership, endpoint, description="Renamed")
        update_webhook_endpoint(membership, endpoint, url=URL + "/v2", events=[])
        endpoint.refresh_from_db()
        audit = list(
            AuditEvent.objects.filter(action="webhook.updated")
            .order_by("id")
            .values_list("data", flat=True)
        )
    assert (endpoint.url, endpoint.description, endpoint.events) == (
        URL + "/v2",
        "Renamed",
        [],
    )
    assert [entry["fields"] for entry in audit] == [["description"], ["url", "events"]]


def test_rotate_and_reveal(tenant: Tenant, owner: User) -> None:
    new = add_endpoint(tenant, owner, URL)
    with tenant_context(tenant):
        membership = membership_of(tenant, owner)
        assert reveal_webhook_secret(membership, new.endpoint) == new.secret
        rotated = rotate_webhook_secret(membership, new.endpoint)
        endpoint = WebhookEndpoint.objects.get()
        assert reveal_webhook_secret(membership, endpoint) == rotated
    assert rotated != new.secret
    assert decrypt_secret(tenant.pk, endpoint.previous_secret_encrypted) == new.secret
    assert endpoint.previous_secret_expires_at is not None
    assert endpoint.previous_secret_expires_at > timezone.now()
    assert audit_actions(tenant) == [
        "webhook.created",
        "webhook.secret_revealed",
        "webhook.secret_rotated",
        "webhook.secret_revealed",
    ]


def test_disable_gives_up_waiting_deliveries_and_enable_resumes(
    tenant: Tenant, owner: User
) -> None:
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    with tenant_context(tenant):
        membership = membership_of(tenant, owner)
        (waiting,) = queue_webhook_deliveries(tenant.pk, "message.created", {})
        disable_webhook_endpoint(membership, endpoint)
        disable_webhook_endpoint(membership, endpoint)  # twice: one audit event
        stored = WebhookEndpoint.objects.get()
        delivery = WebhookDelivery.objects.get(pk=waiting)
        assert (stored.is_active, stored.disabled_reason) == (
            False,
            "Disabled by Olivia.",
        )
        assert delivery.status == WebhookDelivery.Status.GAVE_UP
        assert delivery.last_error == "The endpoint was disabled."
        with pytest.raises(WebhookEndpointDisabled):
            send_test_ping(membership, stored)
        WebhookEndpoint.objects.update(consecutive_failures=15)
        enabled = enable_webhook_endpoint(membership, stored)
        assert (enabled.is_active, enabled.disabled_reason) == (True, "")
        assert enabled.consecutive_failures == 0
        assert len(queue_webhook_deliveries(tenant.pk, "message.created", {})) == 1
        # Deliveries that gave up stay as they are.
        assert WebhookDelivery.objects.get(pk=waiting).status == "gave_up"
    assert audit_actions(tenant) == [
        "webhook.created",
        "webhook.disabled",
        "webhook.enabled",
    ]


def test_enable_checks_the_url_again(
    tenant: Tenant, owner: User, fake_dns: FakeDns
) -> None:
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    with tenant_context(tenant):
        membership = membership_of(tenant, owner)
        disable_webhook_endpoint(membership, endpoint)
        fake_dns.answers["hooks.example.com"] = ["10.1.1.1"]
        with pytest.raises(WebhookUrlRefused):
            enable_webhook_endpoint(membership, endpoint)
        assert WebhookEndpoint.objects.get().is_active is False


def test_delete_removes_the_endpoint_and_its_log(tenant: Tenant, owner: User) -> None:
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    with tenant_context(tenant):
        queue_webhook_deliveries(tenant.pk, "message.created", {})
        delete_webhook_endpoint(membership_of(tenant, owner), endpoint)
        assert WebhookEndpoint.objects.count() == 0
        assert WebhookDelivery.objects.count() == 0
        assert queue_webhook_deliveries(tenant.pk, "message.created", {}) == []
    assert audit_actions(tenant) == ["webhook.created", "webhook.deleted"]


def test_selectors_list_endpoints_and_the_log_newest_first(
    tenant: Tenant, owner: User
) -> None:
    first = add_endpoint(tenant, owner, URL + "/1").endpoint
    second = add_endpoint(tenant, owner, URL + "/2").endpoint
    with tenant_context(tenant):
        membership = membership_of(tenant, owner)
        ids = [queue_webhook_deliveries(tenant.pk, "ping", {"n": n}) for n in range(3)]
        assert list(webhook_endpoints(membership)) == [first, second]
        log = list(endpoint_deliveries(first))
        pending = endpoint_deliveries(first, status="pending").count()
        succeeded = endpoint_deliveries(first, status="succeeded").count()
    assert [d.pk for d in log] == [batch[0] for batch in reversed(ids)]
    assert (pending, succeeded) == (3, 0)


def test_the_gate_gives_404_for_other_workspaces_ids(
    tenant: Tenant, owner: User, other_tenant: Tenant, outsider: User
) -> None:
    ours = add_endpoint(tenant, owner, URL).endpoint
    theirs = add_endpoint(other_tenant, outsider, URL).endpoint
    with tenant_context(tenant):
        membership = membership_of(tenant, owner)
        assert access_webhook_endpoint(membership, ours.pk) == ours
        with pytest.raises(Http404):
            access_webhook_endpoint(membership, theirs.pk)
        with pytest.raises(Http404):
            access_webhook_endpoint(membership, 10**9)
    with tenant_context(other_tenant):
        stored = WebhookEndpoint.objects.get()
    assert stored.url == URL
    assert stored.is_active is True
