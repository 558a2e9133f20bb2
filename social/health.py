"""Whether an account's platform is serving it: the "degraded" state.

An account is degraded from the first call its platform refused or failed (429,
5xx: social.sending.platform_trouble) until the first call that works, whatever
made them (delivery, polling). It stays connected: replies wait with backoff and
polls back off, and the accounts page, the banner over every page and the API
show it. Clearing it also wakes what waited (helpdesk.tasks: the account's
replies in backoff; here: the next poll).
"""

from collections.abc import Iterable

from django.utils import timezone

from social.models import SocialAccount


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
    cleared = list(
        SocialAccount.objects.filter(
            pk__in=ids, degraded_since__isnull=False
        ).values_list("pk", flat=True)
    )
    if cleared:
        now = timezone.now()
        SocialAccount.objects.filter(pk__in=cleared).update(
            degraded_since=None, last_error=""
        )
        SocialAccount.objects.filter(pk__in=cleared, next_poll_at__gt=now).update(
            next_poll_at=now
        )
    return cleared
