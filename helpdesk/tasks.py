"""Celery tasks of the care core. Thin: they own retries; services own the rules."""

import logging
import random
from functools import partial
from typing import Any

from celery import Task

from helpdesk.services import delivery, lifecycle
from helpdesk.services.inbound import record_inbound_message
from social.connectors import get_connector
from social.connectors.base import ConnectorError, DeliveryResult, item_from_dict
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.tasks import system_task, tenant_task

logger = logging.getLogger(__name__)

MAX_DELIVERY_RETRIES = 8


def backoff_seconds(retries: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter, never sooner than the platform's Retry-After."""
    exponential = min(600.0, 2.0 ** (retries + 1)) * (0.8 + 0.4 * random.random())  # noqa: S311
    return max(exponential, retry_after or 0.0)


@tenant_task(
    name="helpdesk.deliver_message",
    atomic=False,
    bind=True,
    max_retries=MAX_DELIVERY_RETRIES,
    acks_late=True,
    reject_on_worker_lost=True,
)
def deliver_message(task: Task, tenant: Tenant, message_id: int) -> str:  # type: ignore[type-arg]
    """Send a reply at most once: claim, reconcile, send (outside transactions), record.

    Returns what happened, for logs: sent, reconciled, retry, failed or skipped.
    """
    token = str(task.request.id or f"local-{message_id}")
    with tenant_context(tenant):
        plan = delivery.claim_for_delivery(message_id, token=token)
    if plan is None:
        return "skipped"
    connector = get_connector(plan.platform)
    try:
        found: DeliveryResult | None = None
        if plan.reconcile:
            found = connector.find_delivery(plan.account, plan.reply)
        result = found or connector.send(plan.account, plan.reply)
    except ConnectorError as error:
        final = error.permanent or task.request.retries >= MAX_DELIVERY_RETRIES
        with tenant_context(tenant):
            delivery.record_failure(message_id, error, final=final)
        if final:
            logger.warning(
                "delivery of message %s failed: %s", message_id, error.message
            )
            return "failed"
        raise task.retry(
            countdown=backoff_seconds(task.request.retries, error.retry_after),
            exc=error,
        ) from error
    with tenant_context(tenant):
        delivery.record_delivery(message_id, result)
    return "reconciled" if found else "sent"


@tenant_task(name="helpdesk.record_inbound_item")
def record_inbound_item(tenant: Tenant, account_id: int, item: dict[str, Any]) -> int:
    """Record one inbound item (as item_to_dict made it) for an account; returns the
    message id. Replays are no-ops (see record_inbound_message)."""
    account = SocialAccount.objects.select_related("tenant", "brand").get(pk=account_id)
    return record_inbound_message(account, item_from_dict(item)).message.pk


@tenant_task(name="helpdesk.sweep_outbox")
def sweep_outbox(tenant: Tenant) -> int:
    """Hand stale outbound messages (lost enqueue, dead attempt) back to delivery."""
    from django.db import transaction

    stale = delivery.stale_deliveries()
    tenant_id = tenant.pk
    for message_id in stale:
        transaction.on_commit(partial(deliver_message.delay, tenant_id, message_id))
    return len(stale)


@tenant_task(name="helpdesk.wake_snoozed")
def wake_snoozed(tenant: Tenant) -> int:
    """Reopen the tenant's snoozed conversations whose time has come."""
    return lifecycle.wake_snoozed_conversations(tenant)


def fan_out(task_name: str) -> int:
    """Enqueue a tenant task once per active tenant (for the beat entry points)."""
    from celery import current_app

    task = current_app.tasks[task_name]
    count = 0
    for tenant_id in Tenant.objects.filter(status=Tenant.Status.ACTIVE).values_list(
        "pk", flat=True
    ):
        task.delay(tenant_id)
        count += 1
    return count


@system_task(name="helpdesk.sweep_outboxes")
def sweep_outboxes() -> int:
    """Beat entry: one helpdesk.sweep_outbox per active tenant."""
    return fan_out("helpdesk.sweep_outbox")


@system_task(name="helpdesk.wake_all_snoozed")
def wake_all_snoozed() -> int:
    """Beat entry: one helpdesk.wake_snoozed per active tenant."""
    return fan_out("helpdesk.wake_snoozed")
