"""Read-only queries of the social layer."""

from typing import NamedTuple

from django.db.models import Q, QuerySet

from social.connectors import get_connector
from social.connectors.base import Capabilities, ConnectorError
from social.models import ListeningRule, SocialAccount
from tenants.models import Membership


def workspace_accounts(membership: Membership) -> QuerySet[SocialAccount]:
    """The workspace's connected accounts with their brands, by brand then platform."""
    return SocialAccount.objects.select_related("brand").order_by(
        "brand__name", "platform", "handle"
    )


class AccountBanners(NamedTuple):
    """The open workspace's accounts a page warns about, for the UI banners."""

    needing_reauth: list[SocialAccount]
    """Accounts that must be reconnected."""
    degraded: list[SocialAccount]
    """Connected accounts whose platform is refusing or failing calls
    (social.sending's pause after a 429 or 5xx)."""


def account_banners() -> AccountBanners:
    """Both banners' accounts of the open workspace, in one query."""
    reauth = SocialAccount.Status.NEEDS_REAUTH
    accounts = SocialAccount.objects.filter(
        Q(status=reauth)
        | (
            Q(degraded_since__isnull=False)
            & ~Q(status=SocialAccount.Status.DISCONNECTED)
        )
    ).only("platform", "handle", "status", "last_error", "degraded_since")
    needing_reauth: list[SocialAccount] = []
    degraded: list[SocialAccount] = []
    for account in accounts.order_by("pk"):
        if account.status == reauth:
            needing_reauth.append(account)
        if account.degraded_since is not None:
            degraded.append(account)
    return AccountBanners(needing_reauth, degraded)


def platform_capabilities(platform: str) -> Capabilities | None:
    """What the platform's connector allows, or None when it has no connector."""
    try:
        return get_connector(platform).capabilities
    except ConnectorError:
        return None


def workspace_listening_rules(
    membership: Membership, *, brand_id: int | None = None
) -> QuerySet[ListeningRule]:
    """The workspace's listening rules with their brands, by brand then name;
    with `brand_id`, that brand's only."""
    rules = ListeningRule.objects.select_related("brand")
    if brand_id is not None:
        rules = rules.filter(brand_id=brand_id)
    return rules.order_by("brand__name", "name", "id")
