"""One delivery task per tenant and slot of due time, not one per reply (issue 12).

A reply used to queue its own helpdesk.deliver_message. The task claims every due
reply of its tenant (claim_batch), so a burst costs the worker one batch, but
replies committed one at a time (8 agents, 150 a second) each found about one due
reply: the worker's per-task handling (receive, request, trace, ack, logs, the
tenant and the claim), about 3 ms of CPU, was paid per reply, on the cores the
web and PostgreSQL share.

Now the due times are cut into slots of DELIVERY_SLOT_MS (250 ms) and a reply
asks for the slot's task instead:

- after its commit, the web sets the marker of (tenant, slot) in the broker's
  Redis unless it is set (tenants.taskwire.mark, SET NX with an expiry); only the
  web that set it queues deliver_message(tenant, message, slot), due at the
  slot's end (never before any reply of the slot is due: the hold and its undo
  window are kept). The others queue nothing;
- the task, at the slot's end, deletes the marker and only then claims every due
  reply of the tenant (claim_batch(drain=True)). A reply committed before the
  delete is due and committed when the claim reads; one committed after it
  finds no marker and queues a task of its own;
- what the claim left of the slot (a row another transaction held, more than a
  batch) makes the task queue itself again (helpdesk.tasks: unclaimed_by);
- when the marker cannot be used (a broker the task wire does not reach, eager
  mode, a Redis error), the reply queues its own task as before. A lost task is
  the sweeper's (helpdesk.sweep_outbox), as before.

DELIVERY_SLOT_MS = 0 turns this off: one task per reply.

A process remembers the slots whose marker it saw set (it set it and queued the
task, or found it set) and sends no SET for a later reply of such a slot while
the slot is still MARKER_SKEW_MS or more from its end: until its end the
slot's task neither runs nor deletes the marker (a task that comes early puts
itself back and keeps it; the marker's expiry is later still), so the task
will claim that reply as it would after a SET that found the marker. A Redis
round trip and the task lookups (about 0.2 ms of a reply's CPU on the bench
machine) for every reply but the first of each slot in each process. The
margin covers the clocks of web and worker disagreeing.
"""

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from celery import current_app
from django.conf import settings
from django.utils import timezone

from helpdesk import publish

DELIVER_MESSAGE = "helpdesk.deliver_message"
SWEPT_BY = "helpdesk.sweep_outbox"
DEFAULT_DELIVERY_SLOT_MS = 250
# How long a marker outlives its slot's end: its task runs by then unless the
# worker is that far behind (then a later reply queues another task for the slot:
# harmless) or the task was lost (then the slot's replies are the sweeper's).
MARKER_MARGIN_MS = 30_000
# How far before its end a slot remembered as marked still spares a reply the
# SET (see the module's docstring): more than web and worker clocks disagree.
MARKER_SKEW_MS = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def slot_width_ms() -> int:
    return max(0, int(getattr(settings, "DELIVERY_SLOT_MS", DEFAULT_DELIVERY_SLOT_MS)))


def slot_of(send_after: datetime, width_ms: int) -> int:
    """The end of `send_after`'s slot, in milliseconds since the epoch: the
    first multiple of `width_ms` at or after it."""
    micros = (send_after - _EPOCH) // _MICROSECOND
    width = width_ms * 1000
    return -(-micros // width) * width // 1000


def slot_time(slot: int) -> datetime:
    """The instant `slot` (milliseconds since the epoch) names."""
    return _EPOCH + timedelta(milliseconds=slot)


def marker(tenant_id: int, slot: int) -> str:
    return f"earshot:delivery-slot:{tenant_id}:{slot}"


def schedule_on_commit(tenant_id: int, message_id: int, send_after: datetime) -> None:
    """Once the transaction commits, have the reply delivered at `send_after`:
    through its slot's task (queued by this call or pending), or a task of its
    own when slots are off or the marker cannot be used. Never raises for the
    broker (see helpdesk.publish.enqueue_task_on_commit)."""
    publish.on_commit(partial(_schedule, tenant_id, message_id, send_after))


def _schedule(tenant_id: int, message_id: int, send_after: datetime) -> bool:
    width = slot_width_ms()
    if not width:
        return _own(tenant_id, message_id, send_after)
    slot = slot_of(send_after, width)
    now_ms = (timezone.now() - _EPOCH) // timedelta(milliseconds=1)
    key = marker(tenant_id, slot)
    seen = _marked.get(key)
    if (
        seen is not None
        and now_ms < slot - MARKER_SKEW_MS
        and seen is current_app.amqp.producer_pool  # the broker it is on
    ):
        return True  # the slot's task, pending, will claim this reply
    fell_back = False

    def otherwise() -> bool:
        nonlocal fell_back
        fell_back = True
        return _own(tenant_id, message_id, send_after)

    sent = publish.enqueue_task_once(
        DELIVER_MESSAGE,
        tenant_id,
        message_id,
        slot,
        marker=key,
        ttl_ms=max(0, slot - now_ms) + MARKER_MARGIN_MS,
        otherwise=otherwise,
        swept_by=SWEPT_BY,
        eta=slot_time(slot),
    )
    if sent and not fell_back:
        _remember(key, slot, now_ms)
    return sent


def _own(tenant_id: int, message_id: int, send_after: datetime) -> bool:
    return publish.enqueue_task(
        DELIVER_MESSAGE,
        tenant_id,
        message_id,
        swept_by=SWEPT_BY,
        eta=send_after,
    )


# Markers this process saw set: marker -> the producer pool of the broker it is
# on (another broker, another pool: a test's, say); `_ends`: their slots' ends.
_marked: dict[str, Any] = {}
_ends: dict[str, int] = {}
# Forget the slots that are over when this many are remembered: then twice as
# many as are left, so the walk over them is paid once per as many replies.
_forget_at = 256


def _remember(key: str, slot: int, now_ms: int) -> None:
    global _forget_at
    if len(_ends) >= _forget_at:
        for old in [k for k, end in list(_ends.items()) if end <= now_ms]:
            _marked.pop(old, None)
            _ends.pop(old, None)
        if len(_ends) >= 65_536:
            _marked.clear()
            _ends.clear()
        _forget_at = max(256, 2 * len(_ends))
    _ends[key] = slot
    _marked[key] = current_app.amqp.producer_pool


def clear_marker(tenant_id: int, slot: int) -> bool:
    """Delete the slot's marker (a slot task does, before it claims); False when
    the broker did not answer."""
    key = marker(tenant_id, slot)
    _marked.pop(key, None)
    return publish.clear_task_marker(DELIVER_MESSAGE, key)
