"""The webhook outbox: which deliveries a change writes, and when they are enqueued.

`queue_webhook_deliveries` writes one WebhookDelivery per subscribed active endpoint
inside the caller's transaction (the rows commit or roll back with the change) and
enqueues `helpdesk.deliver_webhook` for each on commit (by name, through
helpdesk.publish); the beat sweep re-enqueues anything a lost broker message left
behind. helpdesk/events.py `emit()` and `emit_many()` call it for every durable
event (one endpoint query per batch), merge_contacts for contact.merged, and
social's account services through `notify_account_status_changed`.

A tenant's active endpoints (ids and subscriptions) are cached (Django cache), so
a batch of events pays one cache read and no endpoint query, with or without
endpoints.
"""

import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol
from uuid import uuid4

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from helpdesk.cache import NOT_READ, read_ahead
from helpdesk.publish import enqueue_each_on_commit, enqueue_task
from helpdesk.webhooks.models import WebhookDelivery, WebhookEndpoint

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
    "alert.spike",
)
PING = "ping"
DELIVER_TASK = "helpdesk.deliver_webhook"
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


def endpoints_key(tenant_id: int) -> str:
    """The default cache's key of the tenant's active endpoints (to read ahead)."""
    return _cache_key(tenant_id)


def has_active_endpoints(tenant_id: int) -> bool:
    """Whether the tenant has an active endpoint; cached, fresh after any change."""
    return bool(active_endpoints(tenant_id))


def _cached(tenant_id: int) -> object:
    """The cached answer: the endpoints as ((pk, events), ...) or False; None
    when absent, _STALE while stale (or unreadable)."""
    key = _cache_key(tenant_id)
    try:
        ahead = read_ahead()
        value = NOT_READ if ahead is None else ahead.value(key)
        return cache.get(key) if value is NOT_READ else value
    except Exception:  # the cache is an optimisation; the database decides
        logger.warning("webhook endpoint cache unavailable", exc_info=True)
        return _STALE


def active_endpoints(tenant_id: int) -> list[WebhookEndpoint]:
    """The tenant's active endpoints (pk, tenant and events only); cached.

    The cache holds the endpoints' ids and subscriptions (or False for none),
    so a tenant pays one cache read per batch of events, with or without
    endpoints. Endpoint services mark the entry stale (endpoints_changed);
    while it is stale every caller asks the database, and only an absent key
    is filled (`cache.add`), so an answer read before a change can never
    overwrite it. A cache outage falls back to the database.
    """
    cached = _cached(tenant_id)
    if cached is False:
        return []
    if isinstance(cached, tuple):
        return [
            WebhookEndpoint(pk=pk, tenant_id=tenant_id, events=list(events))
            for pk, events in cached
        ]
    endpoints = list(
        WebhookEndpoint.objects.filter(tenant_id=tenant_id, is_active=True)
        .only("pk", "tenant_id", "events")
        .order_by("pk")
    )
    if cached is None:
        answer = tuple((e.pk, tuple(e.events or ())) for e in endpoints) or False
        try:
            cache.add(_cache_key(tenant_id), answer, _ACTIVE_TTL)
        except Exception:
            logger.warning("webhook endpoint cache unavailable", exc_info=True)
    return endpoints


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
    return queue_webhook_deliveries_many(tenant_id, [(event_type, data)])


def queue_webhook_deliveries_many(
    tenant_id: int,
    items: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    known: Iterable[Any] = (),
) -> list[int]:
    """queue_webhook_deliveries for several events of one tenant at once.

    The endpoints from the cache (one query only while its entry is stale or
    absent),
    at most one query each for the messages and conversations the events name
    that are not in `known` (loaded Message and Conversation instances, as they
    are now in this transaction), and one INSERT for all the deliveries. Returns
    the delivery ids in event order.
    """
    if not items:
        return []
    endpoints = active_endpoints(tenant_id)
    wanted = [
        (event_type, data, [e for e in endpoints if e.wants(event_type)])
        for event_type, data in items
    ]
    wanted = [entry for entry in wanted if entry[2]]
    if not wanted:
        return []
    snapshots = _Snapshots(known, [data for _, data, _ in wanted])
    moment = timezone.now()
    rows = [
        WebhookDelivery(
            tenant_id=tenant_id,
            endpoint_id=endpoint.pk,
            event_id=event_id,
            event_type=event_type,
            payload=payload,
            next_attempt_at=moment,
            created_at=moment,
        )
        for event_type, data, targets in wanted
        for event_id, payload in [(uuid4(), snapshots.enriched(data))]
        for endpoint in targets
    ]
    ids = [row.pk for row in WebhookDelivery.objects.bulk_create(rows)]
    enqueue_each_on_commit(
        DELIVER_TASK, tenant_id, ids, swept_by="helpdesk.sweep_webhook_deliveries"
    )
    return ids


class _Snapshots:
    """The messages and conversations a batch of events names, each read once.

    Browsers re-fetch what they show; an integration should not have to, so a
    message event carries the message (with its text: the API channel delivers
    replies this way) and a conversation event the conversation's state.
    """

    def __init__(self, known: Iterable[Any], batch: Sequence[Mapping[str, Any]]):
        from helpdesk.models import Conversation, Message

        self.messages: dict[int, Any] = {}
        self.conversations: dict[int, Any] = {}
        for row in known:
            if isinstance(row, Message):
                self.messages[row.pk] = row
            elif isinstance(row, Conversation):
                self.conversations[row.pk] = row
        missing_messages = {
            d["message_id"] for d in batch if d.get("message_id") is not None
        } - set(self.messages)
        if missing_messages:
            self.messages.update(
                (row.pk, row)
                for row in Message.objects.select_related("author_agent").filter(
                    pk__in=missing_messages
                )
            )
        missing_conversations = {
            d["conversation_id"] for d in batch if d.get("conversation_id") is not None
        } - set(self.conversations)
        if missing_conversations:
            self.conversations.update(
                (row.pk, row)
                for row in Conversation.objects.filter(pk__in=missing_conversations)
            )

    def enriched(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The event's ids and changes, plus the current state of what it is about."""
        enriched = dict(data)
        message = self.messages.get(data.get("message_id"))  # type: ignore[arg-type]
        if message is not None:
            enriched["message"] = _message_state(message)
        conversation = self.conversations.get(
            data.get("conversation_id")  # type: ignore[arg-type]
        )
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


def _message_state(message: Any) -> dict[str, Any]:
    agent = message.author_agent if message.author_agent_id is not None else None
    return {
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
        "agent": agent.public_name if agent else None,
    }


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
    enqueue_each_on_commit(
        DELIVER_TASK, tenant_id, ids, swept_by="helpdesk.sweep_webhook_deliveries"
    )
    return ids


def enqueue_deliveries(tenant_id: int, delivery_ids: Sequence[int]) -> None:
    """Hand deliveries to the broker now; an outage is logged (the sweep retries)."""
    for delivery_id in delivery_ids:
        if not enqueue_task(
            DELIVER_TASK,
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
