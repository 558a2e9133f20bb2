"""Items that wait for their thread: the out-of-order half of invariant 2.

Platforms do not promise order. A customer's follow-up in a thread ("still
waiting…", no brand mention) can be processed before the post it answers; decided
then, no rule matches it and it would be dropped, although in-order delivery records
it in the thread's conversation. So such an item waits in `WaitingItem` until its
thread is recorded, or until `INBOUND_WAIT_FOR_THREAD_SECONDS` have passed, when it
is decided on its own merits (and the decision is logged).

Both sides take one transaction-scoped lock per thread (`lock_thread`) before they
look at the other: the item that parks and the item that opens the thread cannot
both miss each other. `social.tasks.decide_waiting_items` is the safety net that
decides what is due.
"""

import hashlib
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from social.connectors.base import InboundItem, item_from_dict, item_to_dict
from social.models import SocialAccount, WaitingItem


def thread_key(item: InboundItem) -> str:
    """The thread a public item belongs to (its root post id)."""
    return item.thread_ref or item.external_id


def depends_on_thread(item: InboundItem) -> bool:
    """True when the item answers a post of a thread that may not be recorded yet."""
    return bool(item.thread_ref) and item.thread_ref != item.external_id


def lock_thread(account: SocialAccount, thread: str) -> None:
    """Serialise the decisions about one thread of one account until commit.

    Call inside the tenant's transaction. PostgreSQL: a transaction-scoped advisory
    lock on a 64-bit digest of (tenant, account, thread). SQLite (the demo) runs one
    writing transaction at a time already.
    """
    if connection.vendor != "postgresql":
        return
    name = f"{account.tenant_id}:{account.pk}:{thread}".encode()
    key = int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key - 2**63])


def wait_for_thread(account: SocialAccount, item: InboundItem) -> None:
    """Keep `item` until its thread is recorded or its wait is over (idempotent).

    Call inside the account's tenant context, holding `lock_thread` for its thread.
    A replay of an item that already waits changes nothing.
    """
    wait = timedelta(seconds=settings.INBOUND_WAIT_FOR_THREAD_SECONDS)
    try:
        with transaction.atomic():
            WaitingItem.objects.create(
                account=account,
                platform=item.platform,
                external_id=item.external_id,
                thread_ref=item.thread_ref,
                item=item_to_dict(item),
                decide_after=timezone.now() + wait,
            )
    except IntegrityError:
        pass  # already waiting


def take_waiting(account: SocialAccount, thread: str) -> list[InboundItem]:
    """Remove and return the items that wait for `thread` of `account`.

    Call inside the tenant context, holding `lock_thread` for the thread.
    """
    rows = list(
        WaitingItem.objects.select_for_update(skip_locked=True)
        .filter(account=account, thread_ref=thread)
        .order_by("created_at", "pk")
    )
    if not rows:
        return []
    WaitingItem.objects.filter(pk__in=[row.pk for row in rows]).delete()
    return [item_from_dict(row.item) for row in rows]


def due_waiting(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Ids of waiting items to decide now: their wait is over, or their thread was
    recorded since (the safety net behind `lock_thread`). Call inside a tenant."""
    from helpdesk.models import Conversation

    moment = now or timezone.now()
    thread_recorded = Exists(
        Conversation.objects.filter(
            social_account_id=OuterRef("account_id"),
            public_thread_ref=OuterRef("thread_ref"),
        )
    )
    return list(
        WaitingItem.objects.filter(Q(decide_after__lte=moment) | thread_recorded)
        .order_by("decide_after", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def take_waiting_item(item_id: int) -> tuple[SocialAccount, InboundItem, float] | None:
    """Remove one waiting item: (its account, the item, seconds it waited), or None
    when another worker took it. Call inside the tenant context."""
    row = (
        WaitingItem.objects.select_for_update(skip_locked=True)
        .select_related("account__tenant", "account__brand")
        .filter(pk=item_id)
        .first()
    )
    if row is None:
        return None
    waited = (timezone.now() - row.created_at).total_seconds()
    account: SocialAccount = row.account
    row.delete()
    return account, item_from_dict(row.item), waited
