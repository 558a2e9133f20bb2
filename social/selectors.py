"""Read-only queries of the social layer."""

from django.db.models import QuerySet

from social.connectors import get_connector
from social.connectors.base import Capabilities, ConnectorError
from social.models import ListeningRule, SocialAccount
from tenants.models import Membership


def workspace_accounts(membership: Membership) -> QuerySet[SocialAccount]:
    """The workspace's connected accounts with their brands, by brand then platform."""
    return SocialAccount.objects.select_related("brand").order_by(
        "brand__name", "platform", "handle"
    )


def accounts_needing_reauth() -> list[SocialAccount]:
    """The open workspace's accounts that must be reconnected (for the UI banner)."""
    return list(
        SocialAccount.objects.filter(status=SocialAccount.Status.NEEDS_REAUTH).only(
            "platform", "handle", "last_error"
        )
    )


def degraded_accounts() -> list[SocialAccount]:
    """The open workspace's accounts whose platform is refusing or failing calls
    (social.health), for the UI banner."""
    return list(
        SocialAccount.objects.filter(degraded_since__isnull=False)
        .exclude(status=SocialAccount.Status.DISCONNECTED)
        .only("platform", "handle", "degraded_since")
    )


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
