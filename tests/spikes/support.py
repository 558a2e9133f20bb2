"""Helpers of the spike tests: seeded seasonal history and bursts of posts."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

from social.models import SocialAccount
from spikes.detector import BUCKET, baseline_windows, floor_bucket
from spikes.models import SpikeCount
from tenants.context import tenant_context
from tenants.models import Brand, Tenant
from tests.helpdesk.conftest import item, receive

BURST = (
    "Flight AA31 cancelled and nobody at the gate knows anything",
    "AA31 cancelled again?! Stuck at the gate with two kids",
    "Is AA31 really cancelled? The app still says on time",
    "My AA31 was cancelled, where do I rebook?",
    "AA31 cancelled. Worst airline ever.",
    "Vol AA31 annulé, personne à la porte d'embarquement",
)


def seed_history(
    tenant: Tenant, brand: Brand, now: datetime, *, per_bucket: int = 2
) -> None:
    """Four weeks of `per_bucket` a bucket at the hours the two buckets judged at
    `now` are compared with, and a first bucket five weeks back (the history's
    start)."""
    tz = ZoneInfo(brand.timezone)
    live = floor_bucket(now)
    cells: dict[datetime, int] = {live - timedelta(weeks=5): per_bucket}
    for bucket in (live - BUCKET, live):
        for start, end in baseline_windows(bucket, tz):
            moment = start
            while moment < end:
                cells[moment] = per_bucket
                moment += BUCKET
    with tenant_context(tenant):
        SpikeCount.objects.bulk_create(
            SpikeCount(
                tenant=tenant,
                brand=brand,
                bucket=bucket,
                sentiment="neutral",
                count=n,
            )
            for bucket, n in cells.items()
        )


def burst(
    account: SocialAccount, count: int, *, at: datetime | None = None, start: int = 0
) -> None:
    """`count` customers' posts about a cancelled flight, at `at` (now)."""
    moment = at or timezone.now()
    for n in range(start, start + count):
        receive(
            account,
            item(
                text=BURST[n % len(BURST)],
                author=f"burst-{n}",
                handle=f"traveller{n}",
                created_at=moment,
            ),
        )
