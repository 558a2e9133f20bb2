"""Reads of spike alerts and of each brand's spike watch."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from helpdesk.models import Message
from spikes.detector import BUCKET, Verdict
from spikes.models import SpikeAlert
from spikes.services import read_brand
from tenants.models import Brand, Membership


def workspace_alerts(
    membership: Membership, *, status: str | None = None
) -> QuerySet[SpikeAlert]:
    """The workspace's spike alerts, newest first (brand and acknowledger loaded)."""
    alerts = SpikeAlert.objects.filter(tenant_id=membership.tenant_id)
    if status:
        alerts = alerts.filter(status=status)
    return alerts.select_related("brand", "acknowledged_by").order_by(
        "-opened_at", "-pk"
    )


def open_alerts(membership: Membership) -> list[SpikeAlert]:
    """The workspace's open spike alerts (the banner), newest first."""
    return list(workspace_alerts(membership, status=SpikeAlert.Status.OPEN)[:5])


def alert_samples(alert: SpikeAlert) -> list[Message]:
    """The sample posts of an alert, newest first (conversation loaded)."""
    rows = Message.objects.filter(
        tenant_id=alert.tenant_id, pk__in=alert.sample_message_ids
    ).select_related("conversation", "author_identity")
    return sorted(rows, key=lambda m: (m.created_at, m.pk), reverse=True)


@dataclass(frozen=True)
class BrandWatch:
    """What the UI says about one brand's spike watch right now."""

    brand: Brand
    enough_history: bool
    weeks: int
    count: int
    usual: float
    threshold: float
    bucket: datetime

    @property
    def window_end(self) -> datetime:
        return self.bucket + BUCKET


def brand_watches(membership: Membership, *, now: datetime) -> list[BrandWatch]:
    """Each brand's five minutes in progress against its baseline, or that it
    has not enough history yet (four queries per brand, read_brand)."""
    watches = []
    for brand in Brand.objects.filter(tenant_id=membership.tenant_id).order_by("name"):
        reading = read_brand(brand, now=now)
        result = reading.live
        enough = result.verdict is not Verdict.NOT_ENOUGH_HISTORY
        watches.append(
            BrandWatch(
                brand=brand,
                enough_history=enough,
                weeks=result.weeks,
                count=result.count,
                usual=result.median,
                threshold=result.threshold if enough else 0.0,
                bucket=reading.live_bucket,
            )
        )
    return watches
