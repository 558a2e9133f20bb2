"""Refreshing access tokens before they expire.

Beat runs `social.refresh_all_tenants`, which fans out one
`social.refresh_due_tokens` per tenant; that enqueues one
`social.refresh_account_token` per connected account whose token expires within
REFRESH_AHEAD (`SocialAccount.token_expires_at`, kept beside the encrypted
credentials so the selection needs no decryption).

The platform call runs between two short transactions. A refusal (an auth error or
any permanent error from the token endpoint: revoked or rotated-away refresh token)
turns the account `needs_reauth`, with the banner and the admins' email; a transient
failure (network, 5xx, 429) is recorded in `last_error` and retried by the next beat
run, which still finds the token due. One refresh per account runs at a time (a
cache lock), because platforms that rotate refresh tokens (X) refuse the old one.
"""

import logging
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from social.connectors import get_connector
from social.connectors.base import ConnectorError
from social.crypto import CredentialsUnreadable, encrypt_credentials
from social.instance_apps import account_app
from social.models import SocialAccount, connector_ref
from social.services import mark_needs_reauth
from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.outages import CACHE_ERRORS

logger = logging.getLogger(__name__)

REFRESH_AHEAD = timedelta(minutes=10)
LOCK_SECONDS = 120


def _due(moment: datetime) -> "QuerySet[SocialAccount]":
    return SocialAccount.objects.filter(
        status=SocialAccount.Status.CONNECTED,
        token_expires_at__isnull=False,
        token_expires_at__lte=moment + REFRESH_AHEAD,
    )


def accounts_due_for_refresh(*, now: datetime | None = None) -> list[int]:
    """Connected accounts whose access token expires within REFRESH_AHEAD (or has
    expired), soonest first. Call inside the tenant's context."""
    moment = now or timezone.now()
    return list(
        _due(moment).order_by("token_expires_at", "pk").values_list("pk", flat=True)
    )


def refresh_account_token(tenant: Tenant, account_id: int) -> str:
    """Refresh one account's access token through its connector.

    Returns what happened: `refreshed`, `skipped` (not due, not connected, changed
    meanwhile, or another refresh is running), `unsupported`, `needs_reauth` or
    `failed` (transient; retried by the next run); `skipped` too (and a warning)
    when the cache that holds the lock is unreachable, rather than refresh
    unlocked. Opens the tenant's context itself around short transactions; the
    platform call runs outside them.
    """
    lock = f"social:refresh-token:{tenant.pk}:{account_id}"
    try:
        locked = cache.add(lock, 1, timeout=LOCK_SECONDS)
    except CACHE_ERRORS as error:
        # Without the lock two refreshes could race and a rotating platform would
        # revoke the loser's token: skip; the next beat run still finds it due.
        logger.warning(
            "token refresh of account %s skipped, lock unavailable: %r",
            account_id,
            error,
        )
        return "skipped"
    if not locked:
        return "skipped"
    try:
        return _refresh(tenant, account_id)
    finally:
        _unlock(lock)


def _unlock(lock: str) -> None:
    try:
        cache.delete(lock)
    except CACHE_ERRORS as error:
        logger.warning("token refresh lock %s left to expire: %r", lock, error)


def _refresh(tenant: Tenant, account_id: int) -> str:
    with tenant_context(tenant):
        account = _due(timezone.now()).filter(pk=account_id).first()
        if account is None:
            return "skipped"
        seen, platform = account.credentials, account.platform
        try:
            ref = connector_ref(account)
        except CredentialsUnreadable as exc:
            return _failed(
                tenant, account_id, seen, ConnectorError(str(exc), auth=True)
            )
        app = account_app(platform, account.base_url)
    try:
        tokens = get_connector(platform).refresh(app, ref)
    except NotImplementedError:
        with tenant_context(tenant):
            # Nothing to refresh with; stop selecting it until it is reconnected.
            SocialAccount.objects.filter(pk=account_id, credentials=seen).update(
                token_expires_at=None
            )
        return "unsupported"
    except ConnectorError as error:
        with tenant_context(tenant):
            return _failed(tenant, account_id, seen, error)
    with tenant_context(tenant):
        account = SocialAccount.objects.select_for_update().get(pk=account_id)
        if (
            account.credentials != seen
            or account.status != SocialAccount.Status.CONNECTED
        ):
            return "skipped"
        credentials = {**ref.credentials, **tokens.as_credentials()}
        account.credentials = encrypt_credentials(tenant.pk, credentials)
        account.token_expires_at = tokens.expires_at
        account.last_error = ""
        account.save(update_fields=["credentials", "token_expires_at", "last_error"])
    return "refreshed"


def _failed(tenant: Tenant, account_id: int, seen: str, error: ConnectorError) -> str:
    account = SocialAccount.objects.select_for_update().get(pk=account_id)
    if account.credentials != seen or account.status != SocialAccount.Status.CONNECTED:
        return "skipped"
    message = f"Refreshing the access token failed: {error.message}"
    if error.auth or error.permanent:
        mark_needs_reauth(tenant, account, error=message)
        return "needs_reauth"
    logger.info("token refresh of account %s failed: %s", account_id, error.message)
    account.last_error = f"{message} (will retry)"[:1000]
    account.save(update_fields=["last_error"])
    return "failed"
