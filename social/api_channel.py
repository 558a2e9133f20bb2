"""The API channel: open one for a brand, and record what a custom source pushes.

An API channel is a `SocialAccount` on the `api` platform. It has no webhook or
poller and no platform tokens: the workspace's API token authenticates the source,
and replies reach it through the outbound webhooks (see social/connectors/api.py).
"""

import secrets
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.http import Http404
from django.utils import timezone

from helpdesk.compiled import CompiledQuery
from helpdesk.services import sla
from helpdesk.services.inbound import InboundResult, record_inbound_message
from social.connectors.base import Author, InboundItem
from social.models import Platform, SocialAccount
from tenants.access import require_role
from tenants.models import Brand, Membership
from tenants.services import record_audit


def create_api_channel(
    membership: Membership, *, brand: Brand, name: str
) -> SocialAccount:
    """Open an API channel for `brand` (admins). Audited."""
    require_role(membership, Membership.Role.ADMIN)
    with transaction.atomic():
        account = SocialAccount.objects.create(
            tenant=membership.tenant,
            brand=brand,
            platform=Platform.API,
            external_id=f"api-{secrets.token_hex(8)}",
            handle=name.strip()[:128] or "API channel",
            display_name=name.strip()[:200],
        )
        record_audit(
            membership.tenant,
            actor=membership.user,
            action="api_channel.created",
            obj=account,
            data={"brand_id": brand.pk},
        )
    return account


_API_CHANNEL = CompiledQuery(
    lambda pk: (
        SocialAccount.objects.select_related("tenant", "brand")
        .filter(pk=pk, platform=Platform.API)
        .annotate(**sla.brand_time_annotations("social_socialaccount"))
        .order_by("pk")[:1]
    ),
    [int],
)


def access_api_channel(membership: Membership, account_id: int) -> SocialAccount:
    """The API channel with this id in the member's workspace, or 404.

    One query: the account with its tenant and brand, and on PostgreSQL the
    brand's SLA policy and holidays (helpdesk.services.sla.preload), compiled
    once (helpdesk.compiled).
    """
    account = _API_CHANNEL.first(int(account_id))
    if account is None:
        raise Http404("No such API channel")
    if account.tenant_id != membership.tenant_id:
        raise Http404("No such API channel")
    sla.preload_annotated(account, account.brand)
    return account


@dataclass(frozen=True)
class ChannelMessage:
    external_id: str
    text: str
    author_id: str
    author_handle: str = ""
    author_name: str = ""
    author_followers: int = 0
    visibility: str = "private"
    thread_id: str = ""
    created_at: datetime | None = None
    url: str = ""


def record_channel_message(
    membership: Membership, *, account: SocialAccount, message: ChannelMessage
) -> InboundResult:
    """Record one message pushed by the source; the same external id again is a no-op.

    Agents and above (the token's member). Public messages thread by `thread_id`
    (default: their own id); private ones join the author's private conversation.
    Returns the recorded message and whether it was new.
    """
    require_role(membership, Membership.Role.AGENT)
    public = message.visibility == "public"
    item = InboundItem(
        platform=Platform.API,
        external_id=message.external_id,
        author=Author(
            external_id=message.author_id,
            handle=message.author_handle,
            display_name=message.author_name,
            followers=message.author_followers,
        ),
        text=message.text,
        created_at=message.created_at or timezone.now(),
        visibility=message.visibility,
        kind="mention" if public else "direct_message",
        thread_ref=message.thread_id
        or (message.external_id if public else message.author_id),
        mentions_account=public,
        url=message.url,
    )
    return record_inbound_message(account, item)
