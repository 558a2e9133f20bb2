"""Connecting and disconnecting accounts: the only writer of ChannelRoute."""

from django.db import IntegrityError, transaction

from social.connectors.base import TokenSet
from social.crypto import encrypt_credentials
from social.models import ChannelRoute, SocialAccount
from tenants.access import require_role
from tenants.exceptions import WorkspaceError
from tenants.models import Brand, Membership
from tenants.services import record_audit


def connect_account(
    membership: Membership,
    *,
    brand: Brand,
    platform: str,
    tokens: TokenSet,
    base_url: str = "",
) -> SocialAccount:
    """Store a newly authorized account (tokens encrypted) and route its webhooks here.

    Admins and owners. Reconnecting the same account refreshes its tokens. Raises
    WorkspaceError when another workspace has connected that account already.
    """
    require_role(membership, Membership.Role.ADMIN)
    tenant = membership.tenant
    with transaction.atomic():
        account = SocialAccount.objects.filter(
            platform=platform, external_id=tokens.account_external_id
        ).first()
        if account is None:
            account = SocialAccount(
                tenant=tenant,
                brand=brand,
                platform=platform,
                external_id=tokens.account_external_id,
            )
        account.brand = brand
        account.handle = tokens.handle
        account.display_name = tokens.display_name
        account.base_url = base_url
        account.status = SocialAccount.Status.CONNECTED
        account.last_error = ""
        account.credentials = encrypt_credentials(tenant.pk, tokens.as_credentials())
        account.save()
        try:
            with transaction.atomic():
                ChannelRoute.objects.update_or_create(
                    platform=platform,
                    external_account_id=tokens.account_external_id,
                    tenant=tenant,
                    defaults={"account_id": account.pk},
                )
        except IntegrityError:
            raise WorkspaceError(
                f"@{tokens.handle} is connected to another workspace already."
            ) from None
        record_audit(
            tenant,
            actor=membership.user,
            action="account.connected",
            obj=account,
            data={"platform": platform, "handle": tokens.handle},
        )
    return account
