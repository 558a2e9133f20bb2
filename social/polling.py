"""Polling accounts on platforms without webhooks (or as a catch-up beside them).

The network call runs outside any transaction; the cursor, backoff and account
status are written in short transactions around it. Auth errors turn the account
`needs_reauth`, which shows a banner in the UI and emails the brand's admins.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from helpdesk.services.inbound import record_inbound_message
from social.connectors import get_connector
from social.connectors.base import ConnectorError, FetchResult
from social.models import SocialAccount, connector_ref
from tenants.context import tenant_context
from tenants.models import Membership, Tenant

logger = logging.getLogger(__name__)

POLL_INTERVAL = timedelta(seconds=60)
MAX_BACKOFF = timedelta(hours=1)


def due_accounts(*, now: datetime | None = None) -> list[int]:
    """Connected polling accounts whose next poll time has come. Call in a tenant."""
    moment = now or timezone.now()
    accounts = SocialAccount.objects.filter(
        status=SocialAccount.Status.CONNECTED
    ).filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=moment))
    return [
        account.pk
        for account in accounts.only("pk", "platform")
        if get_connector(account.platform).capabilities.polling
    ]


def poll_account(tenant: Tenant, account_id: int) -> int:
    """Fetch new items for one account and record them; returns how many were new.

    Opens the tenant's context around its own short transactions (the task passes
    atomic=False so the fetch itself holds no transaction).
    """
    with tenant_context(tenant):
        account = SocialAccount.objects.filter(pk=account_id).first()
        if account is None or account.status != SocialAccount.Status.CONNECTED:
            return 0
        ref, cursor, platform = (
            connector_ref(account),
            account.poll_cursor,
            account.platform,
        )
    try:
        result: FetchResult = get_connector(platform).fetch_since(ref, cursor)
    except ConnectorError as error:
        with tenant_context(tenant):
            _record_failure(tenant, account_id, error)
        return 0
    new = 0
    with tenant_context(tenant):
        account = SocialAccount.objects.select_related("tenant", "brand").get(
            pk=account_id
        )
        for item in result.items:
            new += record_inbound_message(account, item).created
        account.poll_cursor = result.cursor
        account.poll_failures = 0
        account.next_poll_at = timezone.now() + POLL_INTERVAL
        account.last_error = ""
        account.save(
            update_fields=["poll_cursor", "poll_failures", "next_poll_at", "last_error"]
        )
    return new


def _record_failure(tenant: Tenant, account_id: int, error: ConnectorError) -> None:
    account = SocialAccount.objects.select_for_update().get(pk=account_id)
    account.poll_failures += 1
    account.last_error = error.message[:1000]
    if error.auth:
        account.status = SocialAccount.Status.NEEDS_REAUTH
        account.next_poll_at = None
        _notify_admins(tenant, account)
    else:
        wait = max(
            timedelta(seconds=error.retry_after or 0),
            min(MAX_BACKOFF, POLL_INTERVAL * 2**account.poll_failures),
        )
        account.next_poll_at = timezone.now() + wait
    account.save(
        update_fields=["poll_failures", "last_error", "status", "next_poll_at"]
    )


def _notify_admins(tenant: Tenant, account: SocialAccount) -> None:
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
