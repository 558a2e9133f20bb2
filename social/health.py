"""Whether an account's platform is serving it: the "degraded" state.

An account is degraded from the first call its platform refused or failed (429,
5xx: social.sending.platform_trouble) until the first call that works, whatever
made them (delivery, polling). It stays connected: replies wait with backoff and
polls back off, and the accounts page, the banner over every page and the API
show it. Clearing it also wakes what waited (helpdesk.tasks: the account's
replies in backoff; here: the next poll).
"""

from collections.abc import Iterable

from django.db import connection
from django.utils import timezone

from social.models import SocialAccount
from tenants.context import current_tenant_id


def mark_degraded(account_ids: Iterable[int], *, error: str) -> list[int]:
    """Mark the accounts degraded, with the platform's message, unless they are
    already; returns those newly marked. Call inside the tenant's context."""
    ids = sorted(set(account_ids))
    if not ids:
        return []
    fresh = SocialAccount.objects.filter(pk__in=ids, degraded_since__isnull=True)
    newly = list(fresh.values_list("pk", flat=True))
    if newly:
        SocialAccount.objects.filter(pk__in=newly).update(
            degraded_since=timezone.now(), last_error=error[:1000]
        )
    return newly


def mark_healthy(account_ids: Iterable[int]) -> list[int]:
    """Clear the degraded state of the accounts that had it, and make their next
    poll due now (it catches up from its cursor); returns the accounts cleared.
    One query when none was degraded. Call inside the tenant's context."""
    ids = sorted(set(account_ids))
    if not ids:
        return []
    cleared = _degraded(ids)
    if cleared:
        now = timezone.now()
        SocialAccount.objects.filter(pk__in=cleared).update(
            degraded_since=None, last_error=""
        )
        SocialAccount.objects.filter(pk__in=cleared, next_poll_at__gt=now).update(
            next_poll_at=now
        )
    return cleared


# _degraded's statement written out (PostgreSQL): after every delivery batch,
# with the accounts that worked, where the queryset's build and compile cost
# the worker more than the statement (about 1 ms a batch). The open tenant's
# rows only, as the manager reads them (RLS as well), in its order.
_DEGRADED = (
    'SELECT a."id" FROM "social_socialaccount" a'
    ' WHERE a."tenant_id" = %s AND a."id" = ANY(%s::bigint[])'
    ' AND a."degraded_since" IS NOT NULL ORDER BY a."platform", a."handle"'
)


def _degraded(ids: list[int]) -> list[int]:
    """Of the accounts `ids`, the degraded ones."""
    tenant_id = current_tenant_id()
    if connection.vendor == "postgresql" and tenant_id is not None:
        with connection.cursor() as cursor:
            cursor.execute(
                _DEGRADED, [tenant_id, "{" + ",".join(str(int(i)) for i in ids) + "}"]
            )
            return [row[0] for row in cursor.fetchall()]
    return list(
        SocialAccount.objects.filter(
            pk__in=ids, degraded_since__isnull=False
        ).values_list("pk", flat=True)
    )
