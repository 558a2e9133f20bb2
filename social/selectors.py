"""Read-only queries of the social layer."""

from django.db.models import QuerySet

from social.models import SocialAccount
from tenants.models import Membership


def workspace_accounts(membership: Membership) -> QuerySet[SocialAccount]:
    """The workspace's connected accounts with their brands, by brand then platform."""
    return SocialAccount.objects.select_related("brand").order_by(
        "brand__name", "platform", "handle"
    )
