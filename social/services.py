"""Connecting and disconnecting accounts: the only writer of ChannelRoute.

Calls to a platform (a Bluesky session, revoking tokens) never run inside a
transaction: the views call `open_bluesky_session` and `revoke_tokens` between the
short tenant transactions that read and write the account.
"""

from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from helpdesk.services.webhook_outbox import notify_account_status_changed
from social.config import app_secrets
from social.connectors import get_connector
from social.connectors.base import AccountRef, AppSecrets, ConnectorError, TokenSet
from social.connectors.bluesky import BlueskyConnector
from social.crypto import CredentialsUnreadable, encrypt_credentials
from social.instance_apps import account_app
from social.models import ChannelRoute, SocialAccount, connector_ref
from tenants.access import require_role
from tenants.exceptions import WorkspaceError
from tenants.models import Brand, Membership, Tenant
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

    Admins and owners. Reconnecting the same account (also after a disconnect)
    refreshes its tokens. Raises WorkspaceError when another workspace has connected
    that account already.
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
        previous = account.status
        account.status = SocialAccount.Status.CONNECTED
        notify_account_status_changed(account, previous_status=previous)
        account.last_error = ""
        account.credentials = encrypt_credentials(tenant.pk, tokens.as_credentials())
        account.token_expires_at = tokens.expires_at
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


def open_bluesky_session(handle: str, app_password: str) -> TokenSet:
    """Log in to Bluesky with a handle and an app password (`createSession`).

    No database; call outside transactions. Raises WorkspaceError: field
    "app_password" when Bluesky refuses the handle and password, no field when
    Bluesky cannot be reached or answers oddly.
    """
    base_url = bluesky_base_url()
    try:
        return BlueskyConnector().create_session(handle, app_password, base_url)
    except ConnectorError as error:
        if error.auth or error.status == 400:
            raise WorkspaceError(
                "Bluesky did not accept this handle and app password. Check both; "
                "use an app password (Settings → Privacy and security → App "
                "passwords), not your account password.",
                field="app_password",
            ) from error
        raise WorkspaceError(
            f"Could not sign in to Bluesky: {error.message}"
        ) from error
    except (ValueError, KeyError, TypeError):
        raise WorkspaceError("Bluesky answered in an unexpected way.") from None


def bluesky_base_url() -> str:
    """The PDS or entryway Bluesky accounts sign in at (settings; bsky.social)."""
    return app_secrets("bluesky").base_url


@dataclass(frozen=True)
class Revocation:
    """What revoking one account's tokens needs, read inside its tenant."""

    platform: str
    app: AppSecrets
    account: AccountRef
    # The handle of another connected account that the same grant serves.
    shared_with: str = ""


@dataclass(frozen=True)
class RevokeOutcome:
    """What the platform said: `revoked`; `unsupported` (no revocation API);
    `kept` (the grant also serves another connected account); `none` (no token
    stored); `failed` (with the platform's message in `detail`)."""

    status: str
    detail: str = ""


def _platforms_sharing_grants(platform: str) -> list[str]:
    reader = type(get_connector(platform)).grant_id
    return [
        other
        for other in settings.SOCIAL_PLATFORMS
        if type(get_connector(other)).grant_id is reader
    ]


def plan_revocation(account: SocialAccount) -> Revocation:
    """Read what `revoke_tokens` needs: credentials, the app, a shared grant.

    Call inside the account's tenant context. Unreadable credentials (a retired
    key) plan a revocation with no token.
    """
    try:
        ref = connector_ref(account)
    except CredentialsUnreadable:
        ref = AccountRef(
            account.platform, account.external_id, account.handle, {}, account.base_url
        )
    grant = get_connector(account.platform).grant_id(ref) if ref.credentials else ""
    shared_with = ""
    if grant:
        # Only accounts whose platform reads grants the same way can share one
        # (Facebook and Instagram do): nothing else needs decrypting.
        others = (
            SocialAccount.objects.filter(
                platform__in=_platforms_sharing_grants(account.platform)
            )
            .exclude(pk=account.pk)
            .exclude(status=SocialAccount.Status.DISCONNECTED)
        )
        for other in others:
            try:
                other_ref = connector_ref(other)
            except CredentialsUnreadable:
                continue
            if get_connector(other.platform).grant_id(other_ref) == grant:
                shared_with = other.handle
                break
    return Revocation(
        platform=account.platform,
        app=account_app(account.platform, account.base_url),
        account=ref,
        shared_with=shared_with,
    )


def revoke_tokens(revocation: Revocation) -> RevokeOutcome:
    """Ask the platform to revoke the tokens; never raises for a platform failure.

    Call outside transactions (it calls the platform). A grant that also serves
    another connected account is kept, so disconnecting one account does not cut
    off the other.
    """
    if revocation.shared_with:
        return RevokeOutcome(
            "kept",
            f"@{revocation.shared_with} is connected through the same grant, so "
            "it was not revoked.",
        )
    if not revocation.account.credentials:
        return RevokeOutcome("none", "No token was stored.")
    connector = get_connector(revocation.platform)
    try:
        connector.revoke(revocation.app, revocation.account)
    except NotImplementedError:
        return RevokeOutcome("unsupported", "The platform offers no token revocation.")
    except ConnectorError as error:
        return RevokeOutcome("failed", error.message[:500])
    return RevokeOutcome("revoked")


def disconnect_account(
    membership: Membership, *, account: SocialAccount, revoke: RevokeOutcome
) -> SocialAccount:
    """Disconnect an account here: drop its routes and credentials, keep its row
    and conversations, and audit it with the platform's revocation outcome.

    Admins and owners. The account turns `disconnected`: it is not polled or
    refreshed, webhooks for it become unroutable, and connecting it again
    reactivates the same row. A failed revocation is recorded in `last_error` and
    the audit event; it never blocks the local disconnect. Disconnecting twice is a
    no-op (no second audit event).
    """
    require_role(membership, Membership.Role.ADMIN)
    tenant = membership.tenant
    with transaction.atomic():
        locked = SocialAccount.objects.select_for_update().get(pk=account.pk)
        if locked.status == SocialAccount.Status.DISCONNECTED:
            return locked
        ChannelRoute.objects.filter(tenant=tenant, account_id=locked.pk).delete()
        previous = locked.status
        locked.status = SocialAccount.Status.DISCONNECTED
        notify_account_status_changed(locked, previous_status=previous)
        locked.credentials = ""
        locked.token_expires_at = None
        locked.next_poll_at = None
        locked.poll_failures = 0
        locked.last_error = (
            f"Revoking the token at the platform failed: {revoke.detail}"
            if revoke.status == "failed"
            else ""
        )
        locked.save(
            update_fields=[
                "status",
                "credentials",
                "token_expires_at",
                "next_poll_at",
                "poll_failures",
                "last_error",
            ]
        )
        record_audit(
            tenant,
            actor=membership.user,
            action="account.disconnected",
            obj=locked,
            data={
                "platform": locked.platform,
                "handle": locked.handle,
                "revoke": revoke.status,
                "revoke_detail": revoke.detail,
            },
        )
    return locked


def mark_needs_reauth(tenant: Tenant, account: SocialAccount, *, error: str) -> None:
    """Turn an account `needs_reauth` (the UI shows a banner) and email the
    workspace's admins and owners after commit.

    Call inside the tenant's context with the account row locked; saves the status,
    last_error and next_poll_at fields (callers save their own fields).
    """
    previous = account.status
    account.status = SocialAccount.Status.NEEDS_REAUTH
    notify_account_status_changed(account, previous_status=previous)
    account.last_error = error[:1000]
    account.next_poll_at = None
    account.save(update_fields=["status", "last_error", "next_poll_at"])
    recipients = list(
        Membership.objects.filter(
            role__in=[Membership.Role.ADMIN, Membership.Role.OWNER]
        ).values_list("user__email", flat=True)
    )
    link = f"{settings.SITE_URL.rstrip('/')}/t/{tenant.slug}/settings/accounts/"
    subject = f"Reconnect @{account.handle} on {account.get_platform_display()}"
    body = (
        f"Earshot can no longer read or reply as @{account.handle} "
        f"({account.get_platform_display()}): {account.last_error}\n\n"
        f"Reconnect it here: {link}"
    )
    transaction.on_commit(
        lambda: send_mail(subject, body, from_email=None, recipient_list=recipients)
    )
