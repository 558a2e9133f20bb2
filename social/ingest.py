"""From a stored webhook delivery (or a poll) to recorded inbound messages.

Routing happens here, before any tenant is known: each item names the platform
account it is addressed to, `ChannelRoute` says which tenant and account that is,
and the item is recorded inside that tenant's context (this module is the ingest
edge that opens it). Processing is idempotent: items are deduplicated by external
id, so a retried or replayed event records nothing twice.
"""

import logging

from django.db import transaction
from django.utils import timezone

from helpdesk.models import Conversation
from helpdesk.services.inbound import record_inbound_message
from social.connectors import get_connector
from social.connectors.base import InboundItem
from social.listening_rules import listening_matches
from social.models import ChannelRoute, SocialAccount, WebhookEvent
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


def ingest_item(route: ChannelRoute, item: InboundItem) -> bool:
    """Record one item for its routed account; False when nothing new was recorded.

    Tagged items, private messages and replies in a thread Earshot already follows
    are recorded. An untagged public item is recorded (origin `listening`) only when
    one of the brand's listening rules with the inbox action matches it.
    """
    tenant: Tenant = route.tenant
    if tenant.status == Tenant.Status.DELETED:
        return False
    with tenant_context(tenant):
        account = (
            SocialAccount.objects.select_related("tenant", "brand")
            .filter(pk=route.account_id)
            .first()
        )
        if account is None:
            return False
        origin = None
        if _needs_listening(account, item):
            matches = listening_matches(account, item)
            if not any(match.action == "inbox" for match in matches):
                return False
            origin = Conversation.Origin.LISTENING
        return record_inbound_message(account, item, origin=origin).created


def _needs_listening(account: SocialAccount, item: InboundItem) -> bool:
    # Mentions, comments on the account's own content and reviews are addressed to
    # the brand; only other public posts need a listening rule.
    if item.visibility != "public" or item.mentions_account:
        return False
    if item.kind in ("comment", "review"):
        return False
    followed = Conversation.objects.filter(
        social_account=account, public_thread_ref=item.thread_ref
    ).exists()
    return not followed


def process_webhook_event(event_id: int) -> str:
    """Parse, route and record one stored delivery; returns its final status.

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
    for webhook_item in batch:
        route = route_item(event.platform, webhook_item.account_external_id)
        if route is None:
            logger.info(
                "unroutable %s item for account %s",
                event.platform,
                webhook_item.account_external_id,
            )
            continue
        ingest_item(route, webhook_item.item)
        routed += 1
        tenant_id = route.tenant_id
    status = (
        WebhookEvent.Status.PROCESSED
        if routed or not batch
        else WebhookEvent.Status.UNROUTABLE
    )
    _finish(event, status, items=len(batch), tenant_id=tenant_id)
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
