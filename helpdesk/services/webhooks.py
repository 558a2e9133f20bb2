"""Managing a workspace's webhook endpoints (settings page and REST API).

Every service here needs the admin role (PermissionDenied otherwise), takes the
endpoint from helpdesk.access.access_webhook_endpoint, runs in one transaction and
writes an AuditEvent. URLs pass the SSRF guard (helpdesk/webhooks/ssrf.py) when
saved and again at every delivery. Delivery itself: webhook_delivery.py.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from helpdesk.services.webhook_delivery import disable_endpoint
from helpdesk.services.webhook_outbox import (
    EVENT_TYPES,
    PING,
    create_deliveries,
    endpoints_changed,
)
from helpdesk.webhooks.crypto import (
    SecretUnreadable,
    decrypt_secret,
    encrypt_secret,
    new_secret,
)
from helpdesk.webhooks.errors import (
    WebhookEndpointDisabled,
    WebhookEndpointInvalid,
    WebhookUrlRefused,
)
from helpdesk.webhooks.models import WebhookDelivery, WebhookEndpoint
from helpdesk.webhooks.ssrf import UrlRefused, check_url
from tenants.access import require_role
from tenants.models import Membership
from tenants.services import record_audit

Role = Membership.Role
MAX_ENDPOINTS = 20
DESCRIPTION_MAX = 200
ROTATION_GRACE = timedelta(hours=24)


@dataclass(frozen=True)
class NewEndpoint:
    """A created endpoint and its signing secret (shown to the admin once)."""

    endpoint: WebhookEndpoint
    secret: str


def checked_url(url: str) -> str:
    """`url` stripped, once the SSRF guard accepts it (it resolves the host).

    Raises WebhookUrlRefused (field "url") with the guard's reason.
    """
    try:
        check_url(url)
    except UrlRefused as refused:
        raise WebhookUrlRefused(refused.message) from None
    return url.strip()


def _checked_events(events: Sequence[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise WebhookEndpointInvalid(
            f"Unknown event types: {', '.join(unknown)}. "
            f"Choose from {', '.join(EVENT_TYPES)}.",
            field="events",
        )
    return [event for event in EVENT_TYPES if event in set(events)]


def _checked_description(description: str) -> str:
    description = description.strip()
    if len(description) > DESCRIPTION_MAX:
        raise WebhookEndpointInvalid(
            f"Keep the description under {DESCRIPTION_MAX} characters.",
            field="description",
        )
    return description


def create_webhook_endpoint(
    membership: Membership,
    *,
    url: str,
    description: str = "",
    events: Sequence[str] = (),
) -> NewEndpoint:
    """Add an endpoint that receives `events` (empty: all) with a new secret.

    Admins. Raises WebhookUrlRefused (field "url"), WebhookEndpointInvalid (fields
    "events", "description"; or the workspace has MAX_ENDPOINTS already). Nothing
    is saved when it raises. Audited as webhook.created.
    """
    require_role(membership, Role.ADMIN)
    tenant = membership.tenant
    clean_url = checked_url(url)
    clean_events = _checked_events(events)
    clean_description = _checked_description(description)
    with transaction.atomic():
        if WebhookEndpoint.objects.count() >= MAX_ENDPOINTS:
            raise WebhookEndpointInvalid(
                f"A workspace can have up to {MAX_ENDPOINTS} webhook endpoints."
            )
        secret = new_secret()
        endpoint = WebhookEndpoint.objects.create(
            tenant=tenant,
            url=clean_url,
            description=clean_description,
            events=clean_events,
            secret_encrypted=encrypt_secret(tenant.pk, secret),
            created_by=membership.user,
        )
        record_audit(
            tenant,
            actor=membership.user,
            action="webhook.created",
            obj=endpoint,
            data={"url": clean_url, "events": clean_events},
        )
        endpoints_changed(tenant.pk)
    return NewEndpoint(endpoint=endpoint, secret=secret)


def update_webhook_endpoint(
    membership: Membership,
    endpoint: WebhookEndpoint,
    *,
    url: str | None = None,
    description: str | None = None,
    events: Sequence[str] | None = None,
) -> WebhookEndpoint:
    """Change the URL, description or event list (None leaves a field as it is).

    Admins. Same checks and errors as create_webhook_endpoint; nothing is saved
    when one fails. Audited as webhook.updated with the changed field names.
    """
    require_role(membership, Role.ADMIN)
    changes: dict[str, object] = {}
    if url is not None and url.strip() != endpoint.url:
        changes["url"] = checked_url(url)
    if description is not None:
        changes["description"] = _checked_description(description)
    if events is not None:
        changes["events"] = _checked_events(events)
    changed = [
        name for name, value in changes.items() if getattr(endpoint, name) != value
    ]
    if not changed:
        return endpoint
    with transaction.atomic():
        for name in changed:
            setattr(endpoint, name, changes[name])
        endpoint.save(update_fields=changed)
        record_audit(
            membership.tenant,
            actor=membership.user,
            action="webhook.updated",
            obj=endpoint,
            data={"fields": changed, "url": endpoint.url},
        )
    return endpoint


def delete_webhook_endpoint(membership: Membership, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint and its delivery log. Admins. Audited as webhook.deleted."""
    require_role(membership, Role.ADMIN)
    with transaction.atomic():
        record_audit(
            membership.tenant,
            actor=membership.user,
            action="webhook.deleted",
            obj=endpoint,
            data={"url": endpoint.url},
        )
        endpoint.delete()
        endpoints_changed(membership.tenant_id)


def rotate_webhook_secret(membership: Membership, endpoint: WebhookEndpoint) -> str:
    """Give the endpoint a new secret and return it (shown to the admin once).

    Admins. For ROTATION_GRACE, deliveries carry a second v1 signature under the
    old secret, so the receiver can switch without losing events. Audited.
    """
    require_role(membership, Role.ADMIN)
    secret = new_secret()
    with transaction.atomic():
        endpoint.previous_secret_encrypted = endpoint.secret_encrypted
        endpoint.previous_secret_expires_at = timezone.now() + ROTATION_GRACE
        endpoint.secret_encrypted = encrypt_secret(endpoint.tenant_id, secret)
        endpoint.save(
            update_fields=[
                "previous_secret_encrypted",
                "previous_secret_expires_at",
                "secret_encrypted",
            ]
        )
        record_audit(
            membership.tenant,
            actor=membership.user,
            action="webhook.secret_rotated",
            obj=endpoint,
        )
    return secret


def reveal_webhook_secret(membership: Membership, endpoint: WebhookEndpoint) -> str:
    """The endpoint's current signing secret. Admins. Audited (webhook.secret_revealed).

    Raises WebhookEndpointInvalid when the key that encrypted it has left the key
    ring (rotate the secret then).
    """
    require_role(membership, Role.ADMIN)
    try:
        secret = decrypt_secret(endpoint.tenant_id, endpoint.secret_encrypted)
    except SecretUnreadable:
        raise WebhookEndpointInvalid(
            "This secret can no longer be read here; rotate it to get a new one."
        ) from None
    record_audit(
        membership.tenant,
        actor=membership.user,
        action="webhook.secret_revealed",
        obj=endpoint,
    )
    return secret


def enable_webhook_endpoint(
    membership: Membership, endpoint: WebhookEndpoint
) -> WebhookEndpoint:
    """Resume deliveries (after an automatic or manual disable); failures reset.

    Admins. The URL is checked again (WebhookUrlRefused when its host now resolves
    somewhere refused). Earlier deliveries that gave up are not resent. Audited.
    """
    require_role(membership, Role.ADMIN)
    checked_url(endpoint.url)
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if locked.is_active:
            return locked
        locked.is_active = True
        locked.disabled_reason = ""
        locked.disabled_at = None
        locked.consecutive_failures = 0
        locked.save(
            update_fields=[
                "is_active",
                "disabled_reason",
                "disabled_at",
                "consecutive_failures",
            ]
        )
        record_audit(
            membership.tenant,
            actor=membership.user,
            action="webhook.enabled",
            obj=locked,
        )
        endpoints_changed(membership.tenant_id)
    return locked


def disable_webhook_endpoint(
    membership: Membership, endpoint: WebhookEndpoint
) -> WebhookEndpoint:
    """Stop deliveries to the endpoint; waiting deliveries give up. Admins. Audited."""
    require_role(membership, Role.ADMIN)
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if locked.is_active:
            disable_endpoint(
                membership.tenant,
                locked,
                reason=f"Disabled by {membership.user.public_name}.",
                actor=membership.user,
                notify=False,
            )
    return locked


def send_test_ping(
    membership: Membership, endpoint: WebhookEndpoint
) -> WebhookDelivery:
    """Queue a `ping` event to this endpoint only; delivery follows on commit.

    Admins. Raises WebhookEndpointDisabled for a disabled endpoint.
    """
    require_role(membership, Role.ADMIN)
    if not endpoint.is_active:
        raise WebhookEndpointDisabled("Enable the endpoint before sending a test.")
    with transaction.atomic():
        (delivery_id,) = create_deliveries(
            endpoint.tenant_id, [endpoint], PING, {"endpoint_id": endpoint.pk}
        )
    return WebhookDelivery.objects.get(pk=delivery_id)
