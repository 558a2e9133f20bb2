"""The webhook outbox: which deliveries a change writes, and when they are enqueued.

`queue_webhook_deliveries` writes one WebhookDelivery per subscribed active endpoint
inside the caller's transaction (the rows commit or roll back with the change) and
enqueues `helpdesk.deliver_webhook` for each on commit; the beat sweep re-enqueues
anything a lost broker message left behind. helpdesk/events.py `emit()` calls it for
every durable event, merge_contacts for contact.merged, and social's account services
through `notify_account_status_changed`.

Whether a tenant has an active endpoint is cached (Django cache), so a tenant
without endpoints pays one cache read per event and no query.
"""

import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Protocol
from uuid import uuid4

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from helpdesk.webhooks.models import WebhookDelivery, WebhookEndpoint
from tenants.tasks import enqueue

logger = logging.getLogger(__name__)

# The events an endpoint can subscribe to; `ping` goes only where it is asked for.
EVENT_TYPES: tuple[str, ...] = (
    "conversation.created",
    "conversation.updated",
    "conversation.sla_breached",
    "message.created",
    "message.updated",
    "contact.merged",
    "account.status_changed",
)
PING = "ping"
_ACTIVE_TTL = 300
_STALE_TTL = 10
_STALE = "stale"


class AccountLike(Protocol):
    """What account.status_changed reports of a social account (social passes one)."""

    @property
    def pk(self) -> Any: ...
    @property
    def tenant_id(self) -> int: ...
    @property
    def brand_id(self) -> int: ...
    @property
    def platform(self) -> str: ...
    @property
    def handle(self) -> str: ...
    @property
    def status(self) -> str: ...


def _cache_key(tenant_id: int) -> str:
    return f"helpdesk.webhooks.t{int(tenant_id)}.active"


def has_active_endpoints(tenant_id: int) -> bool:
    """Whether the tenant has an active endpoint; cached, fresh after any change.

    Endpoint services mark the answer stale (endpoints_changed); while it is
    stale every caller asks the database, and only an absent key is filled
    (`cache.add`), so an answer computed before a change can never overwrite it.
    A cache outage falls back to the database.
    """
    key = _cache_key(tenant_id)
    try:
        cached = cache.get(key)
    except Exception:  # the cache is an optimisation; the database decides
        logger.warning("webhook endpoint cache unavailable", exc_info=True)
        cached = _STALE
    if isinstance(cached, bool):
        return cached
    active = WebhookEndpoint.objects.filter(
        tenant_id=tenant_id, is_active=True
    ).exists()
    if cached is None:
        try:
            cache.add(key, active, _ACTIVE_TTL)
        except Exception:
            logger.warning("webhook endpoint cache unavailable", exc_info=True)
    return active


def endpoints_changed(tenant_id: int) -> None:
    """Mark the tenant's cached answer stale now and again once the change commits."""
    _mark_stale(tenant_id)
    transaction.on_commit(partial(_mark_stale, tenant_id), robust=True)


def _mark_stale(tenant_id: int) -> None:
    try:
        cache.set(_cache_key(tenant_id), _STALE, _STALE_TTL)
    except Exception:
        logger.warning("webhook endpoint cache unavailable", exc_info=True)


def queue_webhook_deliveries(
    tenant_id: int, event_type: str, data: Mapping[str, Any]
) -> list[int]:
    """Write one delivery of the event per subscribed active endpoint; returns ids.

    Call inside the tenant's transaction that made the change (the outbox: the
    rows commit or roll back with it). Enqueues helpdesk.deliver_webhook per
    delivery on commit. `data` must be JSON-serializable (DjangoJSONEncoder).
    """
    if not has_active_endpoints(tenant_id):
        return []
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(
            tenant_id=tenant_id, is_active=True
        ).only("pk", "tenant_id", "events")
        if endpoint.wants(event_type)
    ]
    if not endpoints:
        return []
    return create_deliveries(tenant_id, endpoints, event_type, _enriched(data))


def _enriched(data: Mapping[str, Any]) -> dict[str, Any]:
    """The event's ids and changes, plus the current state of what it is about.

    Browsers re-fetch what they show; an integration should not have to, so a
    message event carries the message (with its text: the API channel delivers
    replies this way) and a conversation event the conversation's state.
    """
    from helpdesk.models import Conversation, Message

    enriched = dict(data)
    message_id = data.get("message_id")
    if message_id is not None:
        message = (
            Message.objects.select_related("author_agent").filter(pk=message_id).first()
        )
        if message is not None:
            enriched["message"] = {
                "id": message.pk,
                "conversation_id": message.conversation_id,
                "account_id": message.account_id,
                "platform": message.platform,
                "direction": message.direction,
                "visibility": message.visibility,
                "kind": message.kind,
                "text": message.text,
                "delivery_status": message.delivery_status,
                "external_id": message.external_id,
                "in_reply_to": message.in_reply_to_external_id,
                "agent": message.author_agent.public_name
                if message.author_agent
                else None,
            }
    conversation_id = data.get("conversation_id")
    if conversation_id is not None:
        conversation = Conversation.objects.filter(pk=conversation_id).first()
        if conversation is not None:
            enriched["conversation"] = {
                "id": conversation.pk,
                "brand_id": conversation.brand_id,
                "account_id": conversation.social_account_id,
                "contact_id": conversation.contact_id,
                "platform": conversation.platform,
                "origin": conversation.origin,
                "status": conversation.status,
                "channel_state": conversation.channel_state,
                "assignee_id": conversation.assignee_id,
                "public_thread_ref": conversation.public_thread_ref,
            }
    return enriched


def create_deliveries(
    tenant_id: int,
    endpoints: Sequence[WebhookEndpoint],
    event_type: str,
    data: Mapping[str, Any],
) -> list[int]:
    """Write one delivery of a new event per endpoint and enqueue them on commit."""
    if not endpoints:
        return []
    event_id, moment = uuid4(), timezone.now()
    rows = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            tenant_id=tenant_id,
            endpoint_id=endpoint.pk,
            event_id=event_id,
            event_type=event_type,
            payload=dict(data),
            next_attempt_at=moment,
            created_at=moment,
        )
        for endpoint in endpoints
    )
    ids = [row.pk for row in rows]
    transaction.on_commit(partial(enqueue_deliveries, tenant_id, ids))
    return ids


def enqueue_deliveries(tenant_id: int, delivery_ids: Sequence[int]) -> None:
    """Hand deliveries to the broker now; an outage is logged (the sweep retries)."""
    from helpdesk.tasks import deliver_webhook

    for delivery_id in delivery_ids:
        if not enqueue(
            deliver_webhook,
            tenant_id,
            delivery_id,
            swept_by="helpdesk.sweep_webhook_deliveries",
        ):
            # The broker is down: the rest would only wait for it too, and the
            # sweep finds every one of them still pending.
            break


def notify_account_status_changed(
    account: AccountLike, *, previous_status: str
) -> list[int]:
    """Queue account.status_changed when `account.status` differs from before.

    Call inside the transaction that changed the status (social's services and
    polling do). Returns the delivery ids (none when nothing changed).
    """
    if not previous_status or previous_status == account.status:
        return []
    data = {
        "account_id": account.pk,
        "brand_id": account.brand_id,
        "platform": account.platform,
        "handle": account.handle,
        "status": account.status,
        "previous_status": previous_status,
    }
    return queue_webhook_deliveries(account.tenant_id, "account.status_changed", data)
