"""Celery tasks of the social layer (thin; the logic is in social/ingest.py,
social/polling.py and social/tokens.py)."""

import logging
from datetime import timedelta
from functools import partial
from typing import Any

from celery import Task
from django.db import DatabaseError
from django.utils import timezone

from social import engagement, ingest, polling, tokens, waiting
from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.tasks import system_task, tenant_task

logger = logging.getLogger(__name__)


@system_task(
    name="social.process_webhook_event",
    bind=True,
    max_retries=10,
    acks_late=True,
    reject_on_worker_lost=True,
)
def process_webhook_event(task: Task, event_id: int, *more: int) -> str:  # type: ignore[type-arg]
    """Process one stored delivery; the tenant is learned from routing, per item.

    Errors are retried with backoff; processing is idempotent. With `more` ids (the
    web process publishes one task per group of stored deliveries) the events are
    processed in order, each batch claiming the later ones it can; an event that
    fails is handed to a task of its own, which carries the retry policy.
    """
    from social.models import WebhookEvent

    if more:
        return _process_group([event_id, *more])
    events = WebhookEvent.objects.filter(pk=event_id)
    try:
        events.update(attempts=task.request.retries + 1, touched_at=timezone.now())
        return ingest.process_webhook_event(event_id)
    except Exception as exc:
        if task.request.retries >= (task.max_retries or 0):
            _mark_event(events, status="failed", error=str(exc)[:2000])
            raise
        countdown = min(300, 2 ** (task.request.retries + 1))
        # The sweep leaves the event alone until its retry is due.
        _mark_event(events, touched_at=timezone.now() + timedelta(seconds=countdown))
        raise task.retry(countdown=countdown, exc=exc) from exc


def _process_group(event_ids: list[int]) -> str:
    """The events of one group task, oldest first; "processed" when none failed.

    Their `attempts` stay 0, so one event's batch claims the others as neighbours;
    each call finds the events an earlier batch processed (one query between
    calls). A failed event is queued alone (its own retries, attempts counted);
    when that cannot be queued the sweep finds it `received`.
    """
    from social.models import WebhookEvent
    from social.webhooks import enqueue_event

    received = WebhookEvent.Status.RECEIVED
    pending = list(
        WebhookEvent.objects.filter(pk__in=event_ids, status=received)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    failed = 0
    while pending:
        event_id, rest = pending[0], pending[1:]
        try:
            ingest.process_webhook_event(event_id)
        except Exception:
            logger.warning(
                "webhook event %s failed in its group", event_id, exc_info=True
            )
            failed += 1
            enqueue_event(event_id)
        pending = (
            list(
                WebhookEvent.objects.filter(pk__in=rest, status=received)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            if rest
            else []
        )
    return "processed" if not failed else f"{failed} failed"


def _mark_event(events: Any, **fields: Any) -> None:
    """Best effort: with the database down the event stays `received`, and the
    retry (or the sweep) finds it."""
    try:
        events.update(**fields)
    except DatabaseError as error:
        logger.warning("webhook event not updated (%s): %s", fields, error)


@system_task(name="social.sweep_webhook_events")
def sweep_webhook_events() -> int:
    """Beat: queue stored deliveries that no worker has touched for a while.

    Their task was never queued (the broker was down at receipt) or died with a
    worker (on Redis it would come back only after the visibility timeout). Capped
    per run; processing is idempotent, so a copy still in a queue does no harm.
    """
    return ingest.requeue_stale_webhook_events()


@tenant_task(name="social.decide_waiting_items", atomic=False)
def decide_waiting_items(tenant: Tenant) -> int:
    """Decide the tenant's waiting items whose thread was recorded or whose wait is
    over (social.waiting); returns how many were recorded."""
    with tenant_context(tenant):
        due = waiting.due_waiting()
    return sum(bool(ingest.decide_waiting_item(tenant, item_id)) for item_id in due)


@system_task(name="social.decide_all_waiting_items")
def decide_all_waiting_items() -> int:
    """Beat entry: one social.decide_waiting_items per active tenant."""
    from helpdesk.tasks import fan_out

    return fan_out("social.decide_waiting_items")


@tenant_task(name="social.poll_account", atomic=False)
def poll_account(tenant: Tenant, account_id: int) -> int:
    """Poll one account (cursor, backoff and re-authorization in social.polling)."""
    return polling.poll_account(tenant, account_id)


@tenant_task(name="social.poll_due_accounts")
def poll_due_accounts(tenant: Tenant) -> int:
    """Enqueue a poll for each of the tenant's accounts that is due."""
    from django.db import transaction

    due = polling.due_accounts()
    for account_id in due:
        transaction.on_commit(partial(poll_account.delay, tenant.pk, account_id))
    return len(due)


@system_task(name="social.poll_all_tenants")
def poll_all_tenants() -> int:
    """Beat entry: one social.poll_due_accounts per active tenant."""
    from helpdesk.tasks import fan_out

    return fan_out("social.poll_due_accounts")


@tenant_task(name="social.refresh_account_token", atomic=False)
def refresh_account_token(tenant: Tenant, account_id: int) -> str:
    """Refresh one account's access token (failure handling in social.tokens)."""
    return tokens.refresh_account_token(tenant, account_id)


@tenant_task(name="social.refresh_due_tokens")
def refresh_due_tokens(tenant: Tenant) -> int:
    """Enqueue a refresh for each of the tenant's tokens that expires soon."""
    from django.db import transaction

    due = tokens.accounts_due_for_refresh()
    for account_id in due:
        transaction.on_commit(
            partial(refresh_account_token.delay, tenant.pk, account_id)
        )
    return len(due)


@system_task(name="social.refresh_all_tenants")
def refresh_all_tenants() -> int:
    """Beat entry: one social.refresh_due_tokens per active tenant."""
    from helpdesk.tasks import fan_out

    return fan_out("social.refresh_due_tokens")


@tenant_task(name="social.refresh_engagement", atomic=False)
def refresh_engagement(tenant: Tenant) -> int:
    """Read the engagement of the tenant's due public conversations and flag the
    spreading ones (social.engagement); returns how many posts were read."""
    return engagement.refresh_engagement(tenant)


@system_task(name="social.refresh_all_engagement")
def refresh_all_engagement() -> int:
    """Beat entry: one social.refresh_engagement per active tenant."""
    from helpdesk.tasks import fan_out

    return fan_out("social.refresh_engagement")
