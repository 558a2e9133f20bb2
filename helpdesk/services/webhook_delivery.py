"""Webhook delivery bookkeeping: claiming an attempt, recording it, auto-disable.

`claim_webhook_delivery` and `record_webhook_attempt` surround the network call of
the delivery task (helpdesk.deliver_webhook), which holds no transaction while it
waits. A failure is retried with exponential backoff (RETRY_DELAYS) up to
MAX_ATTEMPTS. After WEBHOOKS_DISABLE_AFTER_FAILURES failed attempts in a row, or
when a delivery gives up and nothing has succeeded for 24 hours, the endpoint is
disabled and the workspace's owners and admins get one email. What gets queued in
the first place: webhook_outbox.py.
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from helpdesk import metrics
from helpdesk.publish import enqueue_task_on_commit
from helpdesk.services.webhook_outbox import endpoints_changed
from helpdesk.webhooks.crypto import SecretUnreadable, decrypt_secret
from helpdesk.webhooks.models import (
    LAST_ERROR_MAX,
    RESPONSE_EXCERPT_MAX,
    WebhookDelivery,
    WebhookEndpoint,
)
from helpdesk.webhooks.signing import envelope, signature_header
from helpdesk.webhooks.transport import PostOutcome
from tenants.models import Membership, Tenant, User
from tenants.services import record_audit

Status = WebhookDelivery.Status
# The due index (helpdesk_whdelivery_due_ix) covers waiting deliveries only
# (WHERE status IN ('pending', 'failed')); bound as parameters, the statuses
# cannot prove that condition in a prepared statement's generic plan, which read
# every delivery of the tenant through the endpoint key (5,000 rows for 10 due).
# Written into the statement instead.
_WAITING = RawSQL(  # noqa: S611 - constants of the model, no input
    f'"{WebhookDelivery._meta.db_table}"."status" IN '
    f"('{Status.PENDING.value}', '{Status.FAILED.value}')",
    (),
    BooleanField(),
)
MAX_ATTEMPTS = 8
# Wait after the n-th failed attempt (±20 % jitter); about 43 hours in all.
RETRY_DELAYS = (30, 120, 600, 3600, 6 * 3600, 12 * 3600, 24 * 3600)
# A claimed delivery is left alone by the sweep this long (the send takes ≤ 10 s).
CLAIM_LEASE = timedelta(minutes=2)
SILENCE_BEFORE_DISABLE = timedelta(hours=24)


@dataclass(frozen=True)
class DeliveryAttempt:
    """What the delivery task sends: URL, signed body and headers."""

    delivery_id: int
    url: str
    body: bytes
    headers: dict[str, str]
    attempt: int


def claim_webhook_delivery(tenant: Tenant, delivery_id: int) -> DeliveryAttempt | None:
    """Claim a due delivery for one attempt and sign it; None when there is nothing
    to do (already final, not due, claimed by another attempt, endpoint disabled).

    Call inside the tenant's context; the claim is a lease of CLAIM_LEASE, after
    which the sweep hands the delivery out again (a worker that died mid-send).
    """
    delivery = (
        WebhookDelivery.objects.select_for_update(of=("self",))
        .select_related("endpoint")
        .filter(pk=delivery_id)
        .first()
    )
    moment = timezone.now()
    if delivery is None or delivery.is_final:
        return None
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > moment:
        return None
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        _give_up(delivery, "The endpoint is disabled.")
        return None
    if delivery.attempts >= MAX_ATTEMPTS:
        _give_up(delivery, delivery.last_error or "No attempts left.")
        return None
    try:
        secrets = signing_secrets(endpoint, at=moment)
    except SecretUnreadable as error:
        _give_up(delivery, str(error))
        return None
    delivery.attempts += 1
    delivery.next_attempt_at = moment + CLAIM_LEASE
    delivery.save(update_fields=["attempts", "next_attempt_at"])
    body = envelope(
        event_id=str(delivery.event_id),
        event_type=delivery.event_type,
        created_at=delivery.created_at,
        tenant_slug=tenant.slug,
        data=delivery.payload,
    )
    headers = {
        "Earshot-Signature": signature_header(secrets, body),
        "Earshot-Event": delivery.event_type,
        "Earshot-Delivery": str(delivery.uuid),
    }
    return DeliveryAttempt(delivery.pk, endpoint.url, body, headers, delivery.attempts)


def signing_secrets(endpoint: WebhookEndpoint, *, at: datetime) -> list[str]:
    """The secrets that sign now: the current one, and a rotated one in its grace."""
    secrets = [decrypt_secret(endpoint.tenant_id, endpoint.secret_encrypted)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires is not None and expires > at:
        secrets.append(
            decrypt_secret(endpoint.tenant_id, endpoint.previous_secret_encrypted)
        )
    return secrets


def _give_up(delivery: WebhookDelivery, error: str) -> None:
    delivery.status = Status.GAVE_UP
    delivery.next_attempt_at = None
    delivery.last_error = error[:LAST_ERROR_MAX]
    delivery.save(update_fields=["status", "next_attempt_at", "last_error"])


def retry_delay(attempts: int) -> timedelta:
    """The wait after `attempts` failed attempts: exponential, with ±20 % jitter."""
    base = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
    return timedelta(seconds=base * random.uniform(0.8, 1.2))  # noqa: S311


def record_webhook_attempt(
    tenant: Tenant, delivery_id: int, outcome: PostOutcome
) -> datetime | None:
    """Record one attempt's outcome; returns when to try again (None: no retry).

    Call inside the tenant's context. A success resets the endpoint's failure
    count; a failure schedules the next attempt or gives up after MAX_ATTEMPTS,
    and may disable the endpoint (see disable_webhook_endpoint_for_failures).
    """
    delivery = (
        WebhookDelivery.objects.select_for_update(of=("self",))
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None or delivery.status == Status.SUCCEEDED:
        return None
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
    metrics.count_outbound_webhook_failure(outcome)
    moment = timezone.now()
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error[:LAST_ERROR_MAX]
    delivery.response_excerpt = outcome.response_excerpt[:RESPONSE_EXCERPT_MAX]
    fields = ["last_status_code", "last_error", "response_excerpt"]
    if outcome.ok:
        delivery.status, delivery.delivered_at = Status.SUCCEEDED, moment
        delivery.next_attempt_at = None
        delivery.save(
            update_fields=[*fields, "status", "delivered_at", "next_attempt_at"]
        )
        endpoint.consecutive_failures, endpoint.last_success_at = 0, moment
        endpoint.save(update_fields=["consecutive_failures", "last_success_at"])
        return None
    if delivery.status == Status.GAVE_UP or not endpoint.is_active:
        delivery.save(update_fields=fields)
        return None
    gave_up = delivery.attempts >= MAX_ATTEMPTS
    delivery.status = Status.GAVE_UP if gave_up else Status.FAILED
    delivery.next_attempt_at = (
        None if gave_up else moment + retry_delay(delivery.attempts)
    )
    delivery.save(update_fields=[*fields, "status", "next_attempt_at"])
    endpoint.consecutive_failures += 1
    endpoint.save(update_fields=["consecutive_failures"])
    reason = _disable_reason(endpoint, gave_up=gave_up, at=moment)
    if reason:
        disable_endpoint(tenant, endpoint, reason=reason, actor=None, notify=True)
        return None
    return delivery.next_attempt_at


def _disable_reason(
    endpoint: WebhookEndpoint, *, gave_up: bool, at: datetime
) -> str | None:
    failures = endpoint.consecutive_failures
    if failures >= settings.WEBHOOKS_DISABLE_AFTER_FAILURES:
        return f"Disabled automatically after {failures} failed attempts in a row."
    last_good = endpoint.last_success_at or endpoint.created_at
    if gave_up and last_good <= at - SILENCE_BEFORE_DISABLE:
        return (
            "Disabled automatically: a delivery failed every retry and none has "
            "succeeded for 24 hours."
        )
    return None


def disable_endpoint(
    tenant: Tenant,
    endpoint: WebhookEndpoint,
    *,
    reason: str,
    actor: User | None,
    notify: bool,
) -> None:
    """Stop deliveries to `endpoint`: its waiting deliveries give up; audited.

    Call inside the tenant's transaction holding the endpoint's row lock. With
    `notify`, emails the owners and admins on commit (helpdesk.send_webhook_...).
    """
    endpoint.is_active = False
    endpoint.disabled_reason = reason[:300]
    endpoint.disabled_at = timezone.now()
    endpoint.save(update_fields=["is_active", "disabled_reason", "disabled_at"])
    waiting = WebhookDelivery.objects.filter(
        endpoint=endpoint, status__in=[Status.PENDING, Status.FAILED]
    )
    waiting.filter(last_error="").update(last_error="The endpoint was disabled.")
    waiting.update(status=Status.GAVE_UP, next_attempt_at=None)
    endpoints_changed(tenant.pk)
    record_audit(
        tenant,
        actor=actor,
        action="webhook.disabled",
        obj=endpoint,
        data={"reason": endpoint.disabled_reason, "automatic": actor is None},
    )
    if notify:
        # No sweep resends it; the endpoint keeps `disabled_reason` for its page.
        enqueue_task_on_commit(
            "helpdesk.send_webhook_disabled_email",
            tenant.pk,
            endpoint.pk,
            swept_by=None,
        )


@dataclass(frozen=True)
class Email:
    subject: str
    body: str
    recipients: list[str]


def webhook_disabled_email(tenant: Tenant, endpoint_id: int) -> Email | None:
    """The email telling owners and admins an endpoint was disabled (None: moot).

    Call inside the tenant's context.
    """
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None or endpoint.is_active:
        return None
    recipients = sorted(
        Membership.objects.filter(
            role__in=[Membership.Role.OWNER, Membership.Role.ADMIN],
            user__is_active=True,
        ).values_list("user__email", flat=True)
    )
    link = (
        f"{settings.SITE_URL.rstrip('/')}/t/{tenant.slug}/settings/webhooks/"
        f"{endpoint.pk}/"
    )
    body = (
        f"Earshot stopped sending webhooks to {endpoint.url} for {tenant.name}.\n\n"
        f"{endpoint.disabled_reason}\n\n"
        f"See the delivery log and enable the endpoint again once it answers: {link}"
    )
    subject = f"Webhook endpoint disabled in {tenant.name}"
    return Email(subject=subject, body=body, recipients=recipients)


def due_webhook_deliveries(*, limit: int = 500) -> list[int]:
    """Ids of waiting deliveries that are due, oldest first. Call inside a tenant."""
    return list(
        WebhookDelivery.objects.filter(
            _WAITING,
            next_attempt_at__lte=timezone.now(),
            endpoint__is_active=True,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def prune_webhook_deliveries(*, older_than: timedelta) -> int:
    """Delete finished deliveries older than `older_than`; returns how many."""
    cutoff = timezone.now() - older_than
    deleted, _ = WebhookDelivery.objects.filter(
        status__in=[Status.SUCCEEDED, Status.GAVE_UP], created_at__lt=cutoff
    ).delete()
    return deleted
