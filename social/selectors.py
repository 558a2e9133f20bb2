"""Read-only queries of the social layer."""

from django.db.models import QuerySet

from social.models import SocialAccount
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
