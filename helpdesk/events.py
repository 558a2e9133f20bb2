"""Live events: group names, typed payloads, and sending after commit.

Durable events (conversation.*, message.*) get the tenant's next sequence number,
are stored as `Event` rows for catch-up, and are sent on commit. The row lock on the
tenant's `EventCounter` makes the sequence follow commit order, so a client that
resumes "after N" misses nothing. Ephemeral events (presence, viewing, typing) are
sent at once, carry no sequence and are not stored.

Payloads carry ids plus the changed fields; browsers re-fetch what they display.
"""

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine
from typing import Any, Literal, NotRequired, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import connection, transaction

from helpdesk.models import Event
from helpdesk.services.webhook_outbox import queue_webhook_deliveries
from tenants.outages import outage_service

logger = logging.getLogger(__name__)

DurableType = Literal[
    "conversation.created",
    "conversation.updated",
    "message.created",
    "message.updated",
]
EphemeralType = Literal["presence", "viewing", "typing"]


class ConversationEvent(TypedDict):
    type: DurableType
    seq: int
    conversation_id: int
    brand_id: int
    changed: dict[str, Any]


class MessageEvent(TypedDict):
    type: DurableType
    seq: int
    conversation_id: int
    brand_id: int
    message_id: int
    changed: dict[str, Any]


class EphemeralEvent(TypedDict):
    type: EphemeralType
    user_id: int
    conversation_id: NotRequired[int]
    state: str


def inbox_group(tenant_id: int) -> str:
    return f"t{tenant_id}"


def brand_group(tenant_id: int, brand_id: int) -> str:
    return f"t{tenant_id}.b{brand_id}"


def conversation_group(tenant_id: int, conversation_id: int) -> str:
    return f"t{tenant_id}.c{conversation_id}"


def user_group(tenant_id: int, user_id: int) -> str:
    return f"t{tenant_id}.u{user_id}"


_NEXT_SEQ = {
    "postgresql": (
        "INSERT INTO helpdesk_eventcounter (tenant_id, value) VALUES (%s, %s) "
        "ON CONFLICT (tenant_id) DO UPDATE SET value = helpdesk_eventcounter.value "
        "+ EXCLUDED.value RETURNING value"
    ),
}
_NEXT_SEQ["sqlite"] = _NEXT_SEQ["postgresql"]


def next_seq(tenant_id: int, *, count: int = 1) -> int:
    """Allocate the tenant's next `count` event sequences; returns the last one.

    The numbers `last - count + 1 .. last` are the caller's. Call inside the
    tenant's transaction (the counter row stays locked until it commits).
    """
    with connection.cursor() as cursor:
        cursor.execute(_NEXT_SEQ[connection.vendor], [tenant_id, count])
        row = cursor.fetchone()
    assert row is not None  # noqa: S101 - RETURNING always yields the row
    return int(row[0])


def emit(
    tenant_id: int, type: DurableType, *, seq: int | None = None, **fields: Any
) -> int:
    """Store a durable event with the next sequence and send it to the tenant on commit.

    Call inside the tenant's transaction (services do); returns the sequence. Pass
    `seq` when the caller allocated it already (to stamp it on a row first). The
    same transaction queues the event's outbound webhook deliveries (`fields` is
    their `data`), which costs one cache read when the tenant has no endpoints.
    """
    seq = seq if seq is not None else next_seq(tenant_id)
    payload: dict[str, Any] = {"type": type, "seq": seq, **fields}
    Event.objects.create(tenant_id=tenant_id, seq=seq, type=type, payload=payload)
    queue_webhook_deliveries(tenant_id, type, fields)
    group = inbox_group(tenant_id)
    transaction.on_commit(lambda: send_to_group(group, payload))
    return seq


def send_to_group(group: str, payload: dict[str, Any]) -> None:
    """Push one payload to a channel-layer group now (sync callers)."""
    try:
        _group_send(group, {"type": "event.message", "event": payload})
    except Exception as error:
        # The row is committed; a client that missed the push catches up by sequence,
        # so this runs on commit without ever failing the request that wrote it.
        if outage_service(error) is None and not isinstance(error, TimeoutError):
            logger.exception(
                "could not push event %s to %s", payload.get("type"), group
            )
        else:
            logger.warning(
                "could not push event %s to %s, channel layer unavailable: %r",
                payload.get("type"),
                group,
                error,
            )


def send_control(group: str, message_type: str, **fields: Any) -> None:
    """A control message to consumers (e.g. close a revoked member's sockets)."""
    _group_send(group, {"type": message_type, **fields})


PUSH_TIMEOUT = 5.0  # seconds a sync caller waits for the layer to take a message


def _group_send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    if isinstance(layer, InMemoryChannelLayer):
        # Its queues belong to the consumers' event loop: send from that loop.
        async_to_sync(layer.group_send)(group, message)
        return
    _publisher().run(layer.group_send(group, message))


class _Publisher:
    """A long-lived event loop on a daemon thread, for sends from sync code.

    `async_to_sync` in a thread without an event loop (a Celery worker, a command)
    makes a new loop per call, and channels-redis keeps its Redis connections per
    loop, so every push paid for a new loop and a new connection (about 8 ms on the
    2-core machine, where the publish itself takes 0.1-0.2 ms). Network layers
    publish from this one loop instead and keep their connections.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(
            target=self.loop.run_forever, name="earshot-layer-publisher", daemon=True
        ).start()

    def run(self, send: Coroutine[Any, Any, Any]) -> None:
        future = asyncio.run_coroutine_threadsafe(send, self.loop)
        try:
            future.result(timeout=PUSH_TIMEOUT)
        except TimeoutError:
            # An unreachable Redis can hang a connect: cancel the send, or it would
            # hold the shard's lock and every later push would queue behind it.
            future.cancel()
            raise


_publishers: dict[int, _Publisher] = {}
_publishers_lock = threading.Lock()


def _publisher() -> _Publisher:
    """This process's publisher (keyed by pid: a forked child starts its own)."""
    pid = os.getpid()
    with _publishers_lock:
        if pid not in _publishers:
            _publishers[pid] = _Publisher()
        return _publishers[pid]


def events_after(
    tenant_id: int, after: int, *, limit: int = 500
) -> list[dict[str, Any]]:
    """Durable events with a sequence above `after`, oldest first (catch-up)."""
    rows = Event.objects.filter(seq__gt=after).order_by("seq")[:limit]
    return [row.payload for row in rows]
