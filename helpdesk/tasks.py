"""Celery tasks of the care core. Thin: they own retries; services own the rules."""

import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from celery import Task
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone
from kombu.transport.redis import Channel as RedisChannel
from kombu.transport.virtual import QoS as VirtualQoS

from helpdesk import events
from helpdesk.services import (
    breaches,
    delivery,
    delivery_slots,
    lifecycle,
    webhook_delivery,
    webhook_outbox,
)
from helpdesk.services.digest import claim_due_digests, send_digest
from helpdesk.services.inbound import record_inbound_message
from helpdesk.webhooks.transport import post_webhook
from social import health, http, sending
from social.connectors import get_connector
from social.connectors.base import ConnectorError, DeliveryResult, item_from_dict
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.last_write import commit_with_last_write
from tenants.models import Tenant
from tenants.tasks import _keep_redis_client, enqueue, system_task, tenant_task

logger = logging.getLogger(__name__)

# A reply's transient failures before it is marked failed; with the backoff's cap
# that is about ten minutes of trying, so a platform's bad quarter of an hour (429s
# and 5xx) delays replies instead of failing them. A retry held back by its
# account's pause (social.sending) counts as well.
MAX_DELIVERY_RETRIES = 15
# The longest wait between two attempts at one reply, unless the platform's
# Retry-After asks for longer; the account's pause keeps the platform quiet between.
MAX_DELIVERY_BACKOFF = 60.0


def backoff_seconds(retries: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter, never sooner than the platform's Retry-After."""
    exponential = min(MAX_DELIVERY_BACKOFF, 2.0 ** (retries + 1)) * (
        0.8 + 0.4 * random.random()  # noqa: S311 - jitter, not secrets
    )
    return max(exponential, retry_after or 0.0)


# A reply held back without a call (its account paused, its send limit used up)
# is retried this long after the wait it was given, so it finds the wait over.
HELD_MARGIN = 0.1


def retry_in(error: ConnectorError, retries: int, *, held: bool) -> float:
    """When a reply's next attempt is due. Held back without a call (`held`: its
    account's pause, or its send-limit window, with `retry_after` the time left),
    exactly when that wait ends: nothing failed at the platform, so no backoff
    grows (a backoff of 4 or 8 s after a pause with a second left delayed the reply
    by the difference). A call that failed: backoff_seconds."""
    if held and error.retry_after is not None:
        return error.retry_after + HELD_MARGIN
    return backoff_seconds(retries, error.retry_after)


# How many due replies of a tenant one delivery task claims and sends together
# (DELIVERY_BATCH_SIZE; 1 is one reply per task). The sends run concurrently
# (social.sending, DELIVERY_CONCURRENCY threads per worker process).
DEFAULT_DELIVERY_BATCH_SIZE = 100
# Seconds before a slot's task tries again for a reply of its slot it could not
# claim (another transaction held the row: an edit during the last moment of the
# hold, another batch's claim), or after it could not clear its marker.
SLOT_AGAIN = 1.0
# Replies this process marked sent (tenant id, message id): sent is final, so their
# own tasks, arriving after a batch sent them, skip without a query. Bounded.
_SENT_HERE_MAX = 50_000
_sent_here: dict[tuple[int, int], None] = {}


def _batch_size() -> int:
    return max(
        1, int(getattr(settings, "DELIVERY_BATCH_SIZE", DEFAULT_DELIVERY_BATCH_SIZE))
    )


def _remember_sent(tenant_id: int, message_ids: list[int]) -> None:
    for message_id in message_ids:
        _sent_here[(tenant_id, message_id)] = None
    while len(_sent_here) > _SENT_HERE_MAX:
        del _sent_here[next(iter(_sent_here))]


@dataclass
class _Attempt:
    """Where one claimed reply stands in its task's attempt."""

    plan: delivery.DeliveryPlan
    result: DeliveryResult | None = None
    reconciled: bool = False
    error: ConnectorError | None = None
    skipped: bool = False  # its claim was taken over: not ours to send or record
    # Not sent to the platform: its account is paused, or its send limit is used
    # up. Not a failure at the platform: its retry is due when the wait ends.
    held: bool = False


def _hold_paused(attempts: list[_Attempt]) -> dict[int, float]:
    """Replies of accounts the platform asked us to leave alone wait, without a
    call, until the pause is over; returns the pauses on record
    (social.sending.pauses)."""
    on_record = sending.pauses(
        a.plan.account_id for a in attempts if a.plan.account_id is not None
    )
    for attempt in attempts:
        left = on_record.get(attempt.plan.account_id or 0, 0.0)
        if left > 0:
            attempt.held = True
            attempt.error = ConnectorError(
                "The platform is refusing or failing calls; waiting before trying.",
                retry_after=left,
            )
    return on_record


def _reconcile(attempts: list[_Attempt]) -> None:
    """Ask the platform about the replies an earlier attempt may have sent."""
    looking = [a for a in attempts if a.plan.reconcile and a.error is None]
    calls = [
        sending.Call(
            attempt.plan.account,
            partial(
                get_connector(attempt.plan.platform).find_delivery,
                attempt.plan.account,
                attempt.plan.reply,
            ),
            account_id=attempt.plan.account_id,
        )
        for attempt in looking
    ]
    end = time.monotonic() + http.DEADLINE
    for attempt, outcome in zip(looking, sending.run_all(calls, end=end), strict=True):
        attempt.error = outcome.error
        if outcome.value is not None:
            attempt.result, attempt.reconciled = outcome.value, True


def _send(attempts: list[_Attempt], *, end: float) -> None:
    """Send the replies still to send, concurrently, all by `end`."""
    calls = []
    local: list[bool] = []
    for attempt in attempts:
        connector = get_connector(attempt.plan.platform)
        local.append(connector.sends_in_process)
        account, reply = attempt.plan.account, attempt.plan.reply
        calls.append(
            sending.Call(
                account,
                partial(connector.send, account, reply),
                connector.send_limit(account, reply),
                account_id=attempt.plan.account_id,
            )
        )
    # The calls made in this thread first (connectors that send in process:
    # microseconds), then the others, concurrently on the delivery threads.
    outcomes = [
        sending.run_all([call], end=end)[0] if here else None
        for call, here in zip(calls, local, strict=True)
    ]
    remote = iter(
        sending.run_all(
            [call for call, here in zip(calls, local, strict=True) if not here],
            end=end,
        )
    )
    for attempt, found in zip(attempts, outcomes, strict=True):
        outcome = found if found is not None else next(remote)
        attempt.result, attempt.error = outcome.value, outcome.error
        attempt.held = outcome.error is not None and not outcome.attempted


def _already_sent(message: Any) -> bool:
    """A delivery task message for a reply this process recorded sent (and
    for nothing else: a slot's task stands for its slot's replies too)."""
    if not _sent_here:
        return False
    try:
        args, kwargs = message.decode()[:2]
        if len(args) != 2 or kwargs:
            return False
        key = (int(args[0]), int(args[1]))
    except Exception:  # not ours to judge: Celery's own path does
        return False
    return key in _sent_here


def _fire_overdue_timers(hub: Any) -> None:
    """Make the worker's event loop (kombu's Hub) come back at once while timer
    entries are overdue. A delivery task with an ETA (a reply's hold) waits in the
    loop's timer; the loop fires at most 10 entries a turn and then, with more
    overdue and no socket ready, sleeps a second (Hub.fire_timers answers
    `delay or min_delay`, and an overdue entry's delay is 0). At 100 replies/s, once
    the broker went quiet, due tasks fired 10 a second: replies due within the
    same second were sent 5 to 12 s late (the lag p99 misses of the benchmark,
    batches 5 s apart in the worker's log). Still 10 a turn, so sockets are served
    between them."""
    fire = hub.fire_timers

    def fire_timers(*args: Any, **kwargs: Any) -> float:
        delay = fire(*args, **kwargs)
        queue = hub.timer._queue
        return 0.0 if queue and queue[0][0] <= time.monotonic() else delay

    hub.fire_timers = fire_timers
    hub._fires_overdue_timers = True


DELIVER_MESSAGE = "helpdesk.deliver_message"


def _record_unsent_only(channel: Any) -> None:
    """Keep a Redis channel from recording, in its unacknowledged set, the task
    messages of replies this process already recorded sent: delivery_strategy
    acknowledges those as they arrive, so the record (QoS.append: the message
    serialized, ZADD and HSET) and its removal (QoS.ack: ZREM and HDEL), two
    round trips and about 0.2 ms of the worker's CPU a message, kept nothing.
    Such a message is still counted against the prefetch limit until it is
    acknowledged (kombu's own bookkeeping, in memory); one lost between its
    arrival and its acknowledgement had no work left (the reply is sent, which
    is final). Every other message is recorded as before. Channels of other
    transports are left alone."""
    if type(channel) is not RedisChannel or "append" in vars(channel.qos):
        return
    qos = channel.qos
    record, remove = qos.append, qos.ack
    unrecorded: set[str] = set()

    def append(message: Any, delivery_tag: str) -> None:
        # The channel carries every task the worker consumes: only this task's
        # messages name a reply (another task's (tenant, id) names something else).
        if message.headers.get("task") != DELIVER_MESSAGE or not _already_sent(message):
            record(message, delivery_tag)
            return
        VirtualQoS.append(qos, message, delivery_tag)
        unrecorded.add(delivery_tag)

    def ack(delivery_tag: str) -> None:
        if delivery_tag not in unrecorded:
            remove(delivery_tag)
            return
        unrecorded.discard(delivery_tag)
        VirtualQoS.ack(qos, delivery_tag)

    vars(qos).update(append=append, ack=ack)


def delivery_strategy(task: Task, app: Any, consumer: Any, **options: Any) -> Any:  # type: ignore[type-arg]
    """Celery's strategy for the delivery task, except that a message for a reply
    this process already recorded sent (a batch sent it before its own task came:
    99 of every 100 messages of a backlog) is acknowledged as it arrives: no
    request, no log lines, no trace, which cost the worker's one thread about a
    millisecond a message."""
    from celery.worker import strategy  # the worker's, not the web's

    handle = strategy.default(task, app, consumer, **options)
    errors = consumer.connection_errors
    hub = getattr(getattr(consumer, "controller", None), "hub", None)
    if hub is not None and not getattr(hub, "_fires_overdue_timers", False):
        _fire_overdue_timers(hub)

    def on_message(
        message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **rest: Any
    ) -> Any:
        # Every task message is recorded unacknowledged (acks_late: QoS.append)
        # and then acknowledged (QoS.ack) through the consumer's channel, which
        # built a redis client for each: about 0.1 ms of the worker's CPU per
        # message. One kept client on the channel's own pool (the first message's
        # append still builds one).
        _keep_redis_client(message.channel)
        _record_unsent_only(message.channel)
        if _already_sent(message):
            ack(logger, errors)  # as Request.acknowledge calls it
            return None
        return handle(message, body, ack, reject, callbacks, **rest)

    return on_message


class _DeliveryTask(Task):  # type: ignore[type-arg]
    """Skips, before the tenant is even loaded, a reply this worker process
    already recorded sent (a batch sent it before its own task came); one that
    came after is acknowledged on arrival (delivery_strategy)."""

    Strategy = "helpdesk.tasks:delivery_strategy"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if (
            not self.request.is_eager
            and len(args) == 2
            and not kwargs
            and tuple(args) in _sent_here
        ):
            return "skipped"
        return super().__call__(*args, **kwargs)


@tenant_task(
    name=DELIVER_MESSAGE,
    base=_DeliveryTask,
    atomic=False,
    bind=True,
    max_retries=MAX_DELIVERY_RETRIES,
    acks_late=True,
    reject_on_worker_lost=True,
)
def deliver_message(
    task: Task,  # type: ignore[type-arg]
    tenant: Tenant,
    message_id: int,
    slot: int = 0,
) -> str:
    """Send a reply at most once: claim, reconcile, send (outside transactions), record.

    The task claims its own reply and up to DELIVERY_BATCH_SIZE - 1 other due
    replies of the tenant (committed as `sending` before any platform call), sends
    them concurrently within each account's rate limit, and records the outcomes in
    one transaction. Its own reply's transient failure is retried as this task's
    retry; another's as a task of its own, with the same backoff.

    With a `slot` (helpdesk.services.delivery_slots), the task also stands for
    every reply of the tenant due by the slot's end, which queued no task of its
    own: it clears the slot's marker, then claims up to DELIVERY_BATCH_SIZE due
    replies whatever became of its own, and queues itself again while any reply
    of the slot is left unclaimed.

    Returns what happened to its own reply, for logs: sent, reconciled, retry,
    failed, skipped or early (a slot's task that came before the slot's end).
    """
    due_by = delivery_slots.slot_time(slot) if slot else None
    if due_by is not None and timezone.now() < due_by:
        # Came early: back at the slot's end, the marker kept (this task still
        # stands for the slot; none of its replies may go before they are due).
        task.apply_async((tenant.pk, message_id, slot), eta=due_by)
        return "early"
    # Before the claim reads: a reply committed after this finds no marker and
    # queues a task; one committed before is due and seen by the claim.
    cleared = slot == 0 or delivery_slots.clear_marker(tenant.pk, slot)
    task_id = str(task.request.id or f"local-{message_id}")
    # This attempt's own token: a redelivered copy of the same task is another
    # attempt, and must not share the claim (see delivery.CLAIM_LEASE).
    token = f"{task_id[:40]}.{uuid.uuid4().hex[:16]}"
    # The claim stamps claimed_at after this instant: calls that end by
    # claimed + SEND_BUDGET cannot overlap a takeover (see delivery.CLAIM_LEASE).
    claimed = time.monotonic()
    limit = _batch_size()
    # The claims' events are the transaction's last statement, sent with its
    # COMMIT: the tenant's counter row is held for that statement only.
    with tenant_context(tenant), commit_with_last_write():
        pending = events.Pending(tenant.pk)
        plans = delivery.claim_batch(
            message_id,
            token=token,
            task_id=task_id,
            limit=limit,
            drain=due_by is not None,
            pending=pending,
            # A slot's follow-up task, or one whose first reply an earlier batch
            # of this process sent: its own claim could only fail.
            own_sent=not task.request.is_eager
            and (tenant.pk, message_id) in _sent_here,
        )
        left = due_by is not None and delivery.unclaimed_by(due_by)
        pending.emit(last=True)
    if left or not cleared:
        # A full batch: the rest at once; a row another transaction held, or a
        # marker that may still be set: shortly.
        enqueue(
            deliver_message,
            tenant.pk,
            message_id,
            slot,
            swept_by="helpdesk.sweep_outbox",
            countdown=0 if len(plans) >= limit else SLOT_AGAIN,
        )
    if not plans:
        return "skipped"
    attempts = [_Attempt(plan) for plan in plans]
    paused = _hold_paused(attempts)
    if any(a.plan.reconcile and a.error is None for a in attempts):
        _reconcile(attempts)
        # Restart the lease, then send within SEND_BUDGET: a takeover cannot
        # start while these calls may still be in flight (see CLAIM_LEASE).
        unsettled = [a for a in attempts if a.result is None and a.error is None]
        claimed = time.monotonic()
        with tenant_context(tenant):
            ours = delivery.renew_claims(
                [a.plan.message_id for a in unsettled], token=token
            )
        for attempt in unsettled:
            attempt.skipped = attempt.plan.message_id not in ours
    sending_at = time.monotonic()
    _send(
        [a for a in attempts if a.result is None and a.error is None and not a.skipped],
        end=claimed + delivery.SEND_BUDGET,
    )
    recording_at = time.monotonic()
    try:
        return _record(
            task, tenant, message_id, attempts, paused=paused, drain=due_by is not None
        )
    finally:
        # One line a batch: where a late reply's time went (claim, calls, record)
        # and which errors held or failed it.
        logger.info(
            "delivery batch of %d for message %s: claimed %.3f s, called %.3f s,"
            " recorded %.3f s; not sent: %s",
            len(attempts),
            message_id,
            sending_at - claimed,
            recording_at - sending_at,
            time.monotonic() - recording_at,
            _not_sent(attempts),
        )


def _not_sent(attempts: list[_Attempt]) -> str:
    """The batch's errors, counted, with the longest wait asked of each kind:
    "3 held (1.2 s), 1 status 502", "2 status 429 (12.0 s)"."""
    counts: dict[str, tuple[int, float | None]] = {}
    for attempt in attempts:
        error = attempt.error
        if error is None or attempt.skipped:
            continue
        kind = "held" if attempt.held else f"status {error.status}"
        n, wait = counts.get(kind, (0, None))
        if error.retry_after is not None:
            wait = max(wait or 0.0, error.retry_after)
        counts[kind] = (n + 1, wait)
    return (
        ", ".join(
            f"{n} {kind}" + ("" if wait is None else f" ({wait:.1f} s)")
            for kind, (n, wait) in counts.items()
        )
        or "none"
    )


def _account_health(attempts: list[_Attempt], paused: dict[int, float]) -> list[int]:
    """After a batch: an account whose platform answered 429/5xx (which paused it
    at once: social.sending) and never worked in it is marked degraded; one whose
    call worked has its pause ended and is healthy again, and its replies waiting
    out a backoff are made due. Returns those replies. Call in the tenant's
    context, before the batch's failures are recorded (their waits are this
    batch's own)."""
    worked = {
        a.plan.account_id
        for a in attempts
        if a.result is not None and not a.skipped and a.plan.account_id is not None
    }
    troubled: dict[int, ConnectorError] = {}
    for attempt in attempts:
        account_id, error = attempt.plan.account_id, attempt.error
        if account_id is None or attempt.skipped:
            continue
        if error is not None and sending.platform_trouble(error):
            # The message shown: the longest Retry-After the platform gave.
            known = troubled.get(account_id)
            if known is None or (error.retry_after or 0) > (known.retry_after or 0):
                troubled[account_id] = error
    failing = {key: error for key, error in troubled.items() if key not in worked}
    for account_id, error in failing.items():
        if error.retry_after is not None:
            sending.pause(account_id, error, count=False)
    if failing:
        error = next(iter(failing.values()))
        health.mark_degraded(
            failing, error=f"The platform answered {error.status}: {error.message}"
        )
    sending.resume(worked & (set(paused) | set(troubled)))
    return delivery.wake_replies(health.mark_healthy(worked))


def _record(
    task: Task,  # type: ignore[type-arg]
    tenant: Tenant,
    message_id: int,
    attempts: list[_Attempt],
    *,
    paused: dict[int, float],
    drain: bool = False,
) -> str:
    """Record the batch's outcomes in one transaction, then hand out the retries.

    The outcomes' events (sent, then failures) are its last statement, sent
    with its COMMIT, as the claim's are."""
    retries: list[tuple[_Attempt, int, float]] = []
    own: _Attempt | None = None
    with tenant_context(tenant), commit_with_last_write():
        pending = events.Pending(tenant.pk)
        sent = delivery.record_deliveries(
            {
                a.plan.message_id: a.result
                for a in attempts
                if a.result is not None and not a.skipped
            },
            pending=pending,
        )
        woken = _account_health(attempts, paused)
        for attempt in attempts:
            if attempt.plan.message_id == message_id:
                own = attempt
            if attempt.error is None or attempt.skipped:
                continue
            error = attempt.error
            done = (
                task.request.retries
                if attempt is own
                else max(0, attempt.plan.attempts - 1)
            )
            final = error.permanent or done >= MAX_DELIVERY_RETRIES
            countdown = retry_in(error, done, held=attempt.held)
            delivery.record_failure(
                attempt.plan.message_id,
                error,
                final=final,
                retry_in=countdown,
                pending=pending,
            )
            if final:
                logger.warning(
                    "delivery of message %s failed: %s",
                    attempt.plan.message_id,
                    error.message,
                )
            elif attempt is not own:
                retries.append((attempt, done + 1, countdown))
        pending.emit(last=True)
    if not task.request.is_eager:
        _remember_sent(tenant.pk, sent)
    for woken_id in woken:
        enqueue(deliver_message, tenant.pk, woken_id, swept_by="helpdesk.sweep_outbox")
    for attempt, retry, countdown in retries:
        enqueue(
            deliver_message,
            tenant.pk,
            attempt.plan.message_id,
            swept_by="helpdesk.sweep_outbox",
            countdown=countdown,
            retries=retry,
        )
    if own is None:  # claim_batch puts this task's message first
        if drain:  # a slot's task whose own reply another batch claimed
            return "skipped"
        raise RuntimeError(f"message {message_id} missing from its own batch")
    if own.skipped:
        return "skipped"
    if own.error is not None:
        if own.error.permanent or task.request.retries >= MAX_DELIVERY_RETRIES:
            return "failed"
        countdown = retry_in(own.error, task.request.retries, held=own.held)
        raise task.retry(countdown=countdown, exc=own.error) from own.error
    return "reconciled" if own.reconciled else "sent"


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


# Retries further out than this wait for the beat sweep instead of a broker ETA
# (Redis hands ETA messages out again when they outlive its visibility timeout).
WEBHOOK_ETA_LIMIT = 15 * 60


@tenant_task(name="helpdesk.deliver_webhook", atomic=False, acks_late=True)
def deliver_webhook(tenant: Tenant, delivery_id: int) -> str:
    """One attempt at one webhook delivery: claim, POST outside any transaction,
    record. Idempotent: a delivery that succeeded, is not due or is claimed by
    another attempt is skipped; a retry re-sends the same delivery id.

    A failure schedules the next attempt: a countdown for short waits, the beat
    sweep (helpdesk.sweep_webhook_deliveries) for long ones. Returns what happened.
    """
    with tenant_context(tenant):
        attempt = webhook_delivery.claim_webhook_delivery(tenant, delivery_id)
    if attempt is None:
        return "skipped"
    outcome = post_webhook(attempt.url, body=attempt.body, headers=attempt.headers)
    with tenant_context(tenant):
        retry_at = webhook_delivery.record_webhook_attempt(tenant, delivery_id, outcome)
    if outcome.ok:
        return "succeeded"
    if retry_at is None:
        return "gave_up"
    wait = (retry_at - timezone.now()).total_seconds()
    if wait <= WEBHOOK_ETA_LIMIT:
        deliver_webhook.apply_async((tenant.pk, delivery_id), countdown=max(wait, 0))
    return "retry"


@tenant_task(name="helpdesk.send_webhook_disabled_email", atomic=False)
def send_webhook_disabled_email(tenant: Tenant, endpoint_id: int) -> None:
    """Email the owners and admins that an endpoint was disabled (read, then send)."""
    with tenant_context(tenant):
        email = webhook_delivery.webhook_disabled_email(tenant, endpoint_id)
    if email is None or not email.recipients:
        return
    send_mail(
        subject=email.subject,
        message=email.body,
        from_email=None,
        recipient_list=email.recipients,
    )


@tenant_task(name="helpdesk.sweep_webhook_deliveries")
def sweep_webhook_deliveries(tenant: Tenant) -> int:
    """Re-enqueue due webhook deliveries (lost messages, long retries) and prune the
    log past WEBHOOKS_DELIVERY_RETENTION_DAYS. Nothing to do without endpoints."""
    from django.db import transaction

    if not webhook_outbox.has_active_endpoints(tenant.pk):
        return 0
    webhook_delivery.prune_webhook_deliveries(
        older_than=timedelta(days=settings.WEBHOOKS_DELIVERY_RETENTION_DAYS)
    )
    due = webhook_delivery.due_webhook_deliveries()
    transaction.on_commit(partial(webhook_outbox.enqueue_deliveries, tenant.pk, due))
    return len(due)


@system_task(name="helpdesk.sweep_all_webhook_deliveries")
def sweep_all_webhook_deliveries() -> int:
    """Beat entry: one helpdesk.sweep_webhook_deliveries per active tenant."""
    return fan_out("helpdesk.sweep_webhook_deliveries")


@system_task(name="helpdesk.sweep_outboxes")
def sweep_outboxes() -> int:
    """Beat entry: one helpdesk.sweep_outbox per active tenant."""
    return fan_out("helpdesk.sweep_outbox")


@system_task(name="helpdesk.wake_all_snoozed")
def wake_all_snoozed() -> int:
    """Beat entry: one helpdesk.wake_snoozed per active tenant."""
    return fan_out("helpdesk.wake_snoozed")


@tenant_task(name="helpdesk.sweep_sla_clocks")
def sweep_sla_clocks(tenant: Tenant) -> int:
    """Record due breaches and announce due-soon clocks (helpdesk.services.breaches);
    returns how many conversations changed. Idempotent; overlapping runs are safe."""
    result = breaches.sweep_sla_clocks(tenant)
    return len(result.breached) + len(result.due_soon)


@system_task(name="helpdesk.sweep_all_sla_clocks")
def sweep_all_sla_clocks() -> int:
    """Beat entry: one helpdesk.sweep_sla_clocks per active tenant."""
    return fan_out("helpdesk.sweep_sla_clocks")


@tenant_task(name="helpdesk.send_sla_digests", atomic=False)
def send_sla_digests(tenant: Tenant) -> int:
    """Claim the tenant's due daily digests in a transaction, then send them.

    A claimed digest is never claimed again that day (helpdesk.services.digest),
    so a mail server that refuses one loses that day's digest rather than
    sending it twice. Returns how many were sent.
    """
    with tenant_context(tenant):
        emails = claim_due_digests(tenant, now=timezone.now())
    for email in emails:
        send_digest(email)
    return len(emails)


@system_task(name="helpdesk.send_all_sla_digests")
def send_all_sla_digests() -> int:
    """Beat entry: one helpdesk.send_sla_digests per active tenant."""
    return fan_out("helpdesk.send_sla_digests")
