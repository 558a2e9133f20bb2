"""Polling accounts on platforms without webhooks (or as a catch-up beside them),
and the keyword search that finds untagged posts for listening (R1).

The network calls run outside any transaction; the cursors, backoff and account
status are written in short transactions around them. Auth errors turn the account
`needs_reauth`, which shows a banner in the UI and emails the brand's admins.
"""

import logging
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from social import health, sending
from social.connectors import get_connector
from social.connectors.base import ConnectorError, FetchResult
from social.ingest import record_for_account
from social.listening_rules import brand_search_terms
from social.models import SocialAccount, connector_ref
from social.services import mark_needs_reauth
from tenants.context import tenant_context
from tenants.models import Tenant

logger = logging.getLogger(__name__)

POLL_INTERVAL = timedelta(seconds=60)
MAX_BACKOFF = timedelta(hours=1)
# The longest wait after a 429 or 5xx beyond the platform's own pause: a poll
# soon after a platform's outage catches up (from the cursor) without an hour's gap.
TROUBLE_BACKOFF = timedelta(minutes=5)


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
    """Fetch one account's new items, then search for untagged ones; returns how
    many were recorded as new.

    1. `fetch_since` from `poll_cursor` (mentions, inbox, private messages).
    2. When the connector has `keyword_search` and the brand's inbox rules give
       search terms (`brand_search_terms`), `search_public` from `search_cursor`.
    Every item goes through `social.ingest.record_for_account`, the same decision
    as webhooks: an untagged post is recorded (origin `listening`) only when an
    inbox rule matches it. The network calls run outside any transaction (the task
    passes atomic=False); each result is recorded with its cursor in its own short
    transaction, so a failed search keeps what the fetch recorded. A ConnectorError
    from either call backs the account off (or turns it `needs_reauth`) through
    `_record_failure`; the failure count is reset only when the whole poll worked.
    An account its platform asked to leave alone (social.sending's pause after a
    429 or 5xx) is not called: its next poll waits for the pause to end. A 429 or
    5xx pauses it and marks it degraded; a poll that works ends both
    (social.health), and the next one catches up from the cursor.
    """
    with tenant_context(tenant):
        account = SocialAccount.objects.filter(pk=account_id).first()
        if account is None or account.status != SocialAccount.Status.CONNECTED:
            return 0
        connector = get_connector(account.platform)
        ref = connector_ref(account)
        cursor, search_cursor = account.poll_cursor, account.search_cursor
        terms = brand_search_terms(account) if connector.keyword_search else []
        wait = sending.pauses([account_id]).get(account_id, 0.0)
        if wait > 0:
            SocialAccount.objects.filter(pk=account_id).update(
                next_poll_at=timezone.now() + timedelta(seconds=wait)
            )
            return 0
    try:
        fetched = connector.fetch_since(ref, cursor)
    except ConnectorError as error:
        with tenant_context(tenant):
            _record_failure(tenant, account_id, error)
        return 0
    new = _record(tenant, account_id, fetched, "poll_cursor", finished=not terms)
    if not terms:
        return new
    try:
        found = connector.search_public(ref, terms, search_cursor)
    except ConnectorError as error:
        with tenant_context(tenant):
            _record_failure(tenant, account_id, error)
        return new
    return new + _record(tenant, account_id, found, "search_cursor", finished=True)


def _record(
    tenant: Tenant,
    account_id: int,
    result: FetchResult,
    cursor_field: str,
    *,
    finished: bool,
) -> int:
    """Record one call's items and store its cursor; when the poll is `finished`,
    also clear the failures and schedule the next poll."""
    with tenant_context(tenant):
        account = SocialAccount.objects.select_related("tenant", "brand").get(
            pk=account_id
        )
        new = sum(record_for_account(account, item) for item in result.items)
        setattr(account, cursor_field, result.cursor)
        fields = [cursor_field]
        if finished:
            account.poll_failures = 0
            account.next_poll_at = timezone.now() + POLL_INTERVAL
            account.last_error = ""
            fields += ["poll_failures", "next_poll_at", "last_error"]
        if finished and account.degraded_since is not None:
            # Before the save, which then keeps the next poll a full interval away.
            sending.resume([account_id])
            health.mark_healthy([account_id])
        account.save(update_fields=fields)
    return new


def _record_failure(tenant: Tenant, account_id: int, error: ConnectorError) -> None:
    account = SocialAccount.objects.select_for_update().get(pk=account_id)
    if account.status != SocialAccount.Status.CONNECTED:
        return  # disconnected (or flagged) while the poll ran
    account.poll_failures += 1
    account.save(update_fields=["poll_failures"])
    if error.auth:
        mark_needs_reauth(tenant, account, error=error.message)
        return
    wait = max(
        timedelta(seconds=error.retry_after or 0),
        min(MAX_BACKOFF, POLL_INTERVAL * 2**account.poll_failures),
    )
    if sending.platform_trouble(error):
        paused = sending.pause(account_id, error)
        health.mark_degraded(
            [account_id], error=f"The platform answered {error.status}: {error.message}"
        )
        # The pause ends at the platform's word; the first success anywhere (a
        # delivery) clears the degraded state and makes this poll due again.
        wait = max(timedelta(seconds=paused), min(wait, TROUBLE_BACKOFF))
    account.last_error = error.message[:1000]
    account.next_poll_at = timezone.now() + wait
    account.save(update_fields=["last_error", "next_poll_at"])
