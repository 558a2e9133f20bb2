"""Reads of the goodwill app: pools with their counts, and the gestures report."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet

from goodwill.models import GoodwillCode, GoodwillPool
from helpdesk.models import Conversation, FollowerBand, Message
from tenants.models import Brand, Membership

CANCELLED = Message.DeliveryStatus.CANCELLED
# A code is free while it has no reply, or its reply was undone in the hold (R5).
FREE = Q(message__isnull=True) | Q(message__delivery_status=CANCELLED)
USED = Q(message__isnull=False) & ~Q(message__delivery_status=CANCELLED)


def available_codes(pool: GoodwillPool) -> "QuerySet[GoodwillCode]":
    """The pool's codes that can still be handed out, oldest first."""
    return GoodwillCode.objects.filter(pool=pool).filter(FREE).order_by("id")


def pool_counts(pool_ids: list[int]) -> dict[int, tuple[int, int]]:
    """(available, used) per pool id."""
    rows = (
        GoodwillCode.objects.filter(pool_id__in=pool_ids)
        .values("pool_id")
        .annotate(free=Count("id", filter=FREE), used=Count("id", filter=USED))
    )
    return {row["pool_id"]: (row["free"], row["used"]) for row in rows}


@dataclass
class PoolView:
    pool: GoodwillPool
    available: int
    used: int

    @property
    def is_low(self) -> bool:
        return self.available < self.pool.low_water_mark

    @property
    def warning(self) -> str:
        if not self.is_low:
            return ""
        if self.available == 0:
            return f"“{self.pool.name}” is empty. Import more codes."
        return (
            f"“{self.pool.name}” is running low: {self.available} code"
            f"{'' if self.available == 1 else 's'} left (warning below "
            f"{self.pool.low_water_mark})."
        )


def goodwill_pools(
    membership: Membership, *, brand: Brand | None = None
) -> list[PoolView]:
    """The workspace's pools (or one brand's) with their counts, by brand and name."""
    pools = GoodwillPool.objects.select_related("brand").order_by(
        "brand__name", "name", "id"
    )
    if brand is not None:
        pools = pools.filter(brand=brand)
    found = list(pools)
    counts = pool_counts([p.pk for p in found])
    return [PoolView(p, *counts.get(p.pk, (0, 0))) for p in found]


@dataclass
class GestureReport:
    by_agent: list[dict[str, object]]
    by_brand: list[dict[str, object]]
    by_band: list[dict[str, object]]
    total: int


def gesture_report(
    membership: Membership,
    *,
    since: datetime,
    until: datetime,
    brand: Brand | None = None,
) -> GestureReport:
    """Gestures (codes that went out in a reply not undone) claimed in
    [since, until), per agent, per brand and per follower band. The band rows also
    give the conversations opened in the period and gestures per 100 of them, so a
    brand sees whether it compensates loud customers more than quiet ones."""
    gestures = GoodwillCode.objects.filter(
        USED, claimed_at__gte=since, claimed_at__lt=until
    )
    conversations = Conversation.objects.filter(
        created_at__gte=since, created_at__lt=until
    )
    if brand is not None:
        gestures = gestures.filter(pool__brand=brand)
        conversations = conversations.filter(brand=brand)
    by_agent = [
        {
            "agent_id": row["claimed_by_id"],
            "agent": row["claimed_by__display_name"]
            or (row["claimed_by__email"] or "").split("@")[0]
            or "Former member",
            "gestures": row["n"],
        }
        for row in gestures.values(
            "claimed_by_id", "claimed_by__display_name", "claimed_by__email"
        )
        .annotate(n=Count("id"))
        .order_by("-n", "claimed_by_id")
    ]
    by_brand = [
        {
            "brand_id": row["pool__brand_id"],
            "brand": row["pool__brand__name"],
            "gestures": row["n"],
        }
        for row in gestures.values("pool__brand_id", "pool__brand__name")
        .annotate(n=Count("id"))
        .order_by("-n", "pool__brand__name")
    ]
    given = dict(
        gestures.values_list("follower_band").annotate(n=Count("id")).order_by()
    )
    opened = dict(
        conversations.values_list("follower_band").annotate(n=Count("id")).order_by()
    )
    by_band = []
    for band in FollowerBand:
        n, total = given.get(band.value, 0), opened.get(band.value, 0)
        by_band.append(
            {
                "band": band.value,
                "label": band.label,
                "gestures": n,
                "conversations": total,
                "per_100_conversations": round(100 * n / total, 1) if total else None,
            }
        )
    return GestureReport(by_agent, by_brand, by_band, sum(given.values()))
