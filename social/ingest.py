"""From a stored webhook delivery (or a poll) to recorded inbound messages.

`record_for_account` is the one decision of what is recorded, shared by webhooks
(`ingest_item`) and polling (`social.polling`).

Routing happens here, before any tenant is known: each item names the platform
account it is addressed to, `ChannelRoute` says which tenant and account that is,
and the item is recorded inside that tenant's context (this module is the ingest
edge that opens it). Processing is idempotent: items are deduplicated by external
id, so a retried or replayed event records nothing twice.

Items that arrive as ids only (`needs_hydration`: Instagram mentions) are completed
through the connector's `hydrate` before recording; that platform call runs outside
any transaction. A transient failure retries the event; a permanent one skips the
item and notes why on the event (an auth failure also flags the account).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from advocacy.competitors import record_competitor_mentions
from helpdesk.models import Conversation
from helpdesk.services.inbound import record_inbound_message
from social import waiting
from social.connectors import get_connector
from social.connectors.base import ConnectorError, InboundItem
from social.crypto import CredentialsUnreadable
from social.listening_rules import listening_matches
from social.models import ChannelRoute, SocialAccount, WebhookEvent, connector_ref
from social.services import mark_needs_reauth
from tenants.context import tenant_context
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def route_item(platform: str, account_external_id: str) -> ChannelRoute | None:
    """The route for a platform account id, or None when no workspace connected it."""
    return (
        ChannelRoute.objects.select_related("tenant")
        .filter(platform=platform, external_account_id=account_external_id)
        .first()
    )


class ItemSkipped(Exception):
    """An item could not be completed and was not recorded (the reason is kept)."""


def ingest_item(route: ChannelRoute, item: InboundItem) -> bool:
    """Record one item for its routed account; False when nothing new was recorded.

    Opens the routed tenant and applies `record_for_account`: tagged items, private
    messages and replies in a thread Earshot already follows are recorded. An
    untagged public item is recorded (origin `listening`) only when one of the
    brand's listening rules with the inbox action matches it. An id-only item is
    hydrated first: ConnectorError propagates when that can be retried,
    ItemSkipped says why it was not recorded otherwise.
    """
    tenant: Tenant = route.tenant
    if tenant.status == Tenant.Status.DELETED:
        return False
    if item.needs_hydration:
        item = _hydrated(route, item)
    with tenant_context(tenant):
        account = (
            SocialAccount.objects.select_related("tenant", "brand")
            .filter(pk=route.account_id)
            .first()
        )
        if account is None:
            return False
        return record_for_account(account, item)


def record_for_account(
    account: SocialAccount, item: InboundItem, *, may_wait: bool = True
) -> bool:
    """Record one item for an account, if it is to be recorded; True when new.

    The one inbound decision for webhooks, polls and keyword searches: tagged
    items, private messages, comments, reviews and replies in a thread Earshot
    already follows are recorded; any other public item (untagged) only when one
    of the brand's enabled rules with the inbox action matches it, and then with
    origin `listening` (the brand's own posts match no rule).

    Order does not matter (invariant 2): an untagged reply in a thread that is not
    recorded yet, which no rule matches, waits (social.waiting) instead of being
    dropped, and is recorded here as soon as an item opens its thread. With
    `may_wait=False` (its wait is over) it is decided on its own merits. Call inside
    the account's tenant context; record_inbound_message emits its events on commit.
    """
    origin = None
    if _needs_listening(account, item):
        matches = listening_matches(account, item)
        # Competitor rules' matches go to the competitor feed, never the inbox.
        record_competitor_mentions(account, item, matches)
        if not any(match.action == "inbox" for match in matches):
            if not (may_wait and waiting.depends_on_thread(item)):
                return False
            # Under the thread's lock: either the item that opens the thread has
            # committed (then this one is in a followed thread now), or it will
            # find this one waiting.
            waiting.lock_thread(account, item.thread_ref)
            if not _thread_followed(account, item):
                waiting.wait_for_thread(account, item)
                return False
        else:
            origin = Conversation.Origin.LISTENING
    result = record_inbound_message(account, item, origin=origin)
    if result.opened and item.visibility == "public":
        thread = result.conversation.public_thread_ref
        waiting.lock_thread(account, thread)
        for follower in waiting.take_waiting(account, thread):
            record_for_account(account, follower, may_wait=False)
    return result.created


def decide_waiting_item(tenant: Tenant, item_id: int) -> bool | None:
    """Decide one waiting item whose thread was recorded or whose wait is over:
    True recorded, False not (logged), None when another worker took it.

    Opens the tenant's context (one short transaction per item).
    """
    with tenant_context(tenant):
        taken = waiting.take_waiting_item(item_id)
        if taken is None:
            return None
        account, item, waited = taken
        waiting.lock_thread(account, item.thread_ref)
        recorded = record_for_account(account, item, may_wait=False)
    logger.info(
        "%s item %s waited %.0f s for thread %s: %s",
        item.platform,
        item.external_id,
        waited,
        item.thread_ref,
        "recorded" if recorded else "not recorded (no inbox rule matches it)",
    )
    return recorded


def _hydrated(route: ChannelRoute, item: InboundItem) -> InboundItem:
    tenant: Tenant = route.tenant
    with tenant_context(tenant):
        account = SocialAccount.objects.filter(pk=route.account_id).first()
        if account is None:
            raise ItemSkipped(f"{item.external_id}: the account is gone")
        try:
            ref = connector_ref(account)
        except CredentialsUnreadable as exc:
            raise ItemSkipped(f"{item.external_id}: {exc}") from exc
    try:
        return get_connector(item.platform).hydrate(ref, item)
    except ConnectorError as error:
        if not error.permanent:
            raise
        if error.auth:
            with tenant_context(tenant):
                locked = SocialAccount.objects.select_for_update().get(pk=account.pk)
                if locked.status == SocialAccount.Status.CONNECTED:
                    mark_needs_reauth(tenant, locked, error=error.message)
        raise ItemSkipped(f"{item.external_id}: {error.message}") from error


def _needs_listening(account: SocialAccount, item: InboundItem) -> bool:
    # Mentions, comments on the account's own content and reviews are addressed to
    # the brand; only other public posts need a listening rule.
    if item.visibility != "public" or item.mentions_account:
        return False
    if item.kind in ("comment", "review"):
        return False
    return not _thread_followed(account, item)


def _thread_followed(account: SocialAccount, item: InboundItem) -> bool:
    return Conversation.objects.filter(
        social_account=account, public_thread_ref=item.thread_ref
    ).exists()


def process_webhook_event(event_id: int, *, batch_size: int | None = None) -> str:
    """Process a stored delivery together with other waiting ones; returns its
    final status.

    Claims the event (waiting for a worker that holds it) and up to
    `batch_size - 1` other `received` events no task has started yet (SKIP
    LOCKED), then records all their items in one transaction (see
    social.batch_ingest). A delivery with an item to hydrate is recorded on its
    own after the batch commits (process_one_webhook_event); one claimed by the
    batch as a neighbour is left to its own task. When the batch fails on
    anything but the database, its events are tried one at a time (a poisoned
    event fails alone); the error of this event then propagates so the task
    retries, and the error of a neighbour is left to the neighbour's task.
    """
    from social.batch_ingest import BatchFailed, process_batch

    size = batch_size or int(getattr(settings, "WEBHOOK_INGEST_BATCH", 100))
    try:
        return process_batch(event_id, limit=size)
    except BatchFailed as failed:
        logger.warning(
            "batch of %s webhook events failed (%r); processing them one by one",
            len(failed.claimed),
            failed.__cause__,
        )
        status, own_error = "received", None
        # In claim order (the items' arrival order), each alone.
        for claimed in failed.claimed:
            try:
                result = process_batch(claimed, limit=1)
            except BatchFailed as alone:
                if claimed == event_id:
                    own_error = alone
                else:
                    logger.warning("webhook event %s failed; its task retries", claimed)
                continue
            if claimed == event_id:
                status = result
        if own_error is not None:
            raise own_error.__cause__ or own_error from own_error
        return status


def process_one_webhook_event(event_id: int) -> str:
    """Parse, route and record one stored delivery on its own, one transaction per
    item; returns its final status. The path of deliveries whose items need
    hydration (a platform call, outside any transaction).

    Unknown accounts leave the event `unroutable` (kept, answered 200 at receipt so
    the platform keeps the webhook enabled). A malformed body leaves it `malformed`.
    Any other error propagates so the task retries; what was recorded stays recorded.
    """
    event = WebhookEvent.objects.filter(pk=event_id).first()
    if event is None or event.status in (
        WebhookEvent.Status.PROCESSED,
        WebhookEvent.Status.MALFORMED,
    ):
        return event.status if event else "missing"
    connector = get_connector(event.platform)
    try:
        batch = connector.parse_webhook(bytes(event.body))
    except (ValueError, KeyError, TypeError) as exc:
        _finish(event, WebhookEvent.Status.MALFORMED, error=str(exc))
        return WebhookEvent.Status.MALFORMED
    routed = 0
    tenant_id = None
    skipped: list[str] = []
    for webhook_item in batch:
        route = route_item(event.platform, webhook_item.account_external_id)
        if route is None:
            logger.info(
                "unroutable %s item for account %s",
                event.platform,
                webhook_item.account_external_id,
            )
            continue
        try:
            ingest_item(route, webhook_item.item)
        except ItemSkipped as exc:
            logger.warning("skipped %s item: %s", event.platform, exc)
            skipped.append(f"skipped {exc}")
        routed += 1
        tenant_id = route.tenant_id
    status = (
        WebhookEvent.Status.PROCESSED
        if routed or not batch
        else WebhookEvent.Status.UNROUTABLE
    )
    _finish(
        event,
        status,
        error="; ".join(skipped)[:2000],
        items=len(batch),
        tenant_id=tenant_id,
    )
    return status


def _finish(
    event: WebhookEvent,
    status: str,
    *,
    error: str = "",
    items: int = 0,
    tenant_id: int | None = None,
) -> None:
    with transaction.atomic():
        WebhookEvent.objects.filter(pk=event.pk).update(
            status=status,
            error=error,
            items=items,
            tenant_id=tenant_id,
            processed_at=timezone.now(),
        )


def requeue_stale_webhook_events(*, limit: int | None = None) -> int:
    """Queue again the `received` events untouched for WEBHOOK_SWEEP_AFTER_SECONDS
    (oldest first, at most WEBHOOK_SWEEP_BATCH); returns how many were queued.

    Each one is marked touched now, so the next sweep leaves it alone while this
    copy is on its way. Stops at the first refusal of the broker.
    """
    from social.webhooks import enqueue_event

    now = timezone.now()
    before = now - timedelta(seconds=settings.WEBHOOK_SWEEP_AFTER_SECONDS)
    stale = list(
        WebhookEvent.objects.filter(status=WebhookEvent.Status.RECEIVED)
        .filter(
            Q(touched_at__lt=before)
            | Q(touched_at__isnull=True, received_at__lt=before)
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[: limit or settings.WEBHOOK_SWEEP_BATCH]
    )
    queued = 0
    for event_id in stale:
        WebhookEvent.objects.filter(pk=event_id).update(touched_at=now)
        if not enqueue_event(event_id):
            WebhookEvent.objects.filter(pk=event_id).update(touched_at=None)
            break
        queued += 1
    if stale:
        logger.warning("queued %s of %s stale webhook events", queued, len(stale))
    return queued
