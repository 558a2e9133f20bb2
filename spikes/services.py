"""Spike alerts (R13): count, judge each brand's last five minutes, open and close
alerts, and let members acknowledge them.

`detect_spikes` runs every five minutes per tenant (spikes.tasks). For each brand
it judges two buckets: the last complete one and the one in progress (a count
only grows, so a bucket in progress that already crossed the threshold opens the
alert at once instead of five minutes later). A brand has at most one open alert
(a partial unique constraint); while it is open, further spiking buckets update
its peak; it closes when a complete bucket is back near the baseline
(`Assessment.is_calm`) or the brand turns alerts off.

Opening an alert emits the durable event `alert.spike` (helpdesk.events.emit: the
live banner of every member's page, catch-up after a reconnect, and the outbound
webhook `alert.spike` to subscribed endpoints in the same transaction) and emails
the workspace's owners and admins after commit. Closing and acknowledging push
`alert.updated` to the workspace's sockets after commit (not a webhook).
"""

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Min, Q, Sum
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from helpdesk import events
from helpdesk.models import Message
from spikes.detector import (
    BUCKET,
    Assessment,
    DetectorSettings,
    assess,
    baseline_windows,
    floor_bucket,
    seasonal_samples,
)
from spikes.models import SpikeAlert, SpikeCount
from spikes.rollup import count_inbound, settled_mark, unsettled_cells
from spikes.terms import top_terms
from tenants.models import Brand, Membership, Tenant

logger = logging.getLogger(__name__)

SAMPLE_POSTS = 5
BASELINE_TEXTS = 400


@dataclass(frozen=True, slots=True)
class BrandReading:
    """A brand's two buckets judged: the complete one and the one in progress."""

    brand: Brand
    complete: Assessment
    complete_bucket: datetime
    live: Assessment
    live_bucket: datetime


@dataclass(frozen=True, slots=True)
class DetectionResult:
    counted: int
    opened: list[int]
    closed: list[int]


def brand_settings(brand: Brand) -> DetectorSettings:
    return DetectorSettings(
        threshold=float(brand.spike_threshold), min_count=brand.spike_min_count
    )


def windows_of(
    windows: Mapping[datetime, Iterable[tuple[datetime, datetime]]],
) -> list[tuple[datetime, datetime]]:
    return [window for spans in windows.values() for window in spans]


def read_brand(brand: Brand, *, now: datetime) -> BrandReading:
    """Judge the brand's last complete bucket and the one in progress at `now`
    (four queries: the settled mark, held; the history's start; the counts the
    baselines need; the messages above the mark, counted live so that every
    committed inbound message counts once, spikes.rollup). Call in the tenant's
    context."""
    live_bucket = floor_bucket(now)
    complete_bucket = live_bucket - BUCKET
    tz = ZoneInfo(brand.timezone)
    windows = {
        bucket: baseline_windows(bucket, tz)
        for bucket in (complete_bucket, live_bucket)
    }
    ranges = Q(bucket__gte=complete_bucket, bucket__lte=live_bucket)
    for start, end in {w for ws in windows.values() for w in ws}:
        ranges |= Q(bucket__gte=start, bucket__lt=end)
    mark = settled_mark(brand.tenant_id)
    cells = SpikeCount.objects.filter(tenant_id=brand.tenant_id, brand=brand)
    history_start = cells.aggregate(first=Min("bucket"))["first"]
    counts = Counter(
        {
            row["bucket"]: int(row["n"])
            for row in cells.filter(ranges).values("bucket").annotate(n=Sum("count"))
        }
    )
    if mark is not None:
        # What the settled mark has not reached yet, counted live (exact).
        since = min([complete_bucket, *(start for start, _ in windows_of(windows))])
        for (_, bucket, _, _), n in unsettled_cells(
            brand.tenant_id, brand.pk, above=mark, since=since, rules=False
        ).items():
            counts[bucket] += n
            if history_start is None or bucket < history_start:
                history_start = bucket
    options = brand_settings(brand)

    def judge(bucket: datetime) -> Assessment:
        weeks = seasonal_samples(counts, windows[bucket], history_start=history_start)
        return assess(counts.get(bucket, 0), weeks, settings=options)

    return BrandReading(
        brand=brand,
        complete=judge(complete_bucket),
        complete_bucket=complete_bucket,
        live=judge(live_bucket),
        live_bucket=live_bucket,
    )


def detect_spikes(tenant: Tenant, *, now: datetime) -> DetectionResult:
    """Count new inbound, then open or close each brand's spike alert.

    Call inside the tenant's context (the tenant task opens it). Idempotent: a
    second run at the same time counts nothing new and changes no alert.
    Events, webhooks and emails go out after commit.
    """
    counted = count_inbound(tenant, now=now)
    open_alerts = {
        alert.brand_id: alert
        for alert in SpikeAlert.objects.select_for_update().filter(
            tenant=tenant, status=SpikeAlert.Status.OPEN
        )
    }
    opened: list[int] = []
    closed: list[int] = []
    for brand in Brand.objects.filter(tenant=tenant).order_by("pk"):
        alert = open_alerts.get(brand.pk)
        change = _judge_brand(brand, alert, read_brand(brand, now=now), now=now)
        if change is not None:
            (opened if change[0] == "opened" else closed).append(change[1])
    return DetectionResult(counted=counted, opened=opened, closed=closed)


def _judge_brand(
    brand: Brand, alert: SpikeAlert | None, reading: BrandReading, *, now: datetime
) -> tuple[str, int] | None:
    """Open, extend or close the brand's alert: ("opened" or "closed", its id),
    or None when nothing opened or closed."""
    spiking = [
        (assessment, bucket)
        for assessment, bucket in (
            (reading.live, reading.live_bucket),
            (reading.complete, reading.complete_bucket),
        )
        if assessment.is_spike
    ]
    if alert is None:
        if not (brand.spike_alerts and spiking):
            return None
        assessment, bucket = spiking[0]
        return "opened", open_alert(brand, assessment, bucket=bucket, now=now).pk
    calm = reading.complete.is_calm(reading.complete.count)
    if not brand.spike_alerts or (not spiking and calm):
        close_alert(alert, now=now)
        return "closed", alert.pk
    if spiking:
        alert.peak_count = max(alert.peak_count, *(a.count for a, _ in spiking))
        alert.last_seen_at = now
        alert.save(update_fields=["peak_count", "last_seen_at"])
    return None


def open_alert(
    brand: Brand, assessment: Assessment, *, bucket: datetime, now: datetime
) -> SpikeAlert:
    """Open the brand's spike alert for `bucket` with its breakdown, top terms and
    sample posts; emit `alert.spike` and email the admins on commit.

    Call in the tenant's context with no open alert of the brand (the caller
    holds the open alerts locked; the unique constraint backs it).
    """
    window = SpikeCount.objects.filter(
        tenant_id=brand.tenant_id, brand=brand, bucket=bucket
    )
    by_sentiment: Counter[str] = Counter(
        {
            row["sentiment"]: int(row["n"])
            for row in window.values("sentiment").annotate(n=Sum("count"))
        }
    )
    by_rule: Counter[str] = Counter(
        {
            str(row["rule_id"]): int(row["n"])
            for row in window.values("rule_id").annotate(n=Sum("count"))
        }
    )
    mark = settled_mark(brand.tenant_id)
    if mark is not None:
        for (_, at, sentiment, rule_id), n in unsettled_cells(
            brand.tenant_id, brand.pk, above=mark, since=bucket
        ).items():
            if at == bucket:
                by_sentiment[sentiment] += n
                by_rule[str(rule_id)] += n
    spike_texts, sample_ids = _window_messages(brand, bucket)
    usual = _baseline_texts(brand, bucket)
    alert = SpikeAlert.objects.create(
        tenant_id=brand.tenant_id,
        brand=brand,
        window_start=bucket,
        count=assessment.count,
        peak_count=assessment.count,
        baseline=assessment.median,
        threshold=assessment.threshold,
        by_sentiment=dict(by_sentiment),
        by_rule=dict(by_rule),
        top_terms=[[term, n] for term, n in top_terms(spike_texts, usual)],
        sample_message_ids=sample_ids,
        opened_at=now,
        last_seen_at=now,
    )
    events.emit(brand.tenant_id, "alert.spike", **alert_payload(alert))
    transaction.on_commit(partial(email_admins, brand.tenant_id, alert.pk))
    return alert


def alert_payload(alert: SpikeAlert) -> dict[str, Any]:
    """The `alert.spike` event and webhook data (documented in README.md)."""
    return {
        "alert_id": alert.pk,
        "brand_id": alert.brand_id,
        "status": alert.status,
        "window_start": alert.window_start.isoformat(),
        "window_minutes": int(BUCKET.total_seconds() // 60),
        "count": alert.count,
        "baseline": alert.baseline,
        "threshold": round(alert.threshold, 2),
        "by_sentiment": alert.by_sentiment,
        "by_rule": alert.by_rule,
        "top_terms": [term for term, _ in alert.top_terms],
        "sample_message_ids": alert.sample_message_ids,
        "opened_at": alert.opened_at.isoformat(),
    }


def close_alert(alert: SpikeAlert, *, now: datetime) -> None:
    """Close an open alert (volume is back near the baseline); push
    `alert.updated` on commit. Call in the tenant's context."""
    alert.status = SpikeAlert.Status.CLOSED
    alert.closed_at = now
    alert.save(update_fields=["status", "closed_at"])
    _push_updated(alert)


@transaction.atomic
def acknowledge_alert(alert: SpikeAlert, *, membership: Membership) -> SpikeAlert:
    """Record that a member has seen the alert (the first acknowledgement stays);
    push `alert.updated` on commit. Any member may acknowledge."""
    locked = SpikeAlert.objects.select_for_update().get(
        tenant_id=membership.tenant_id, pk=alert.pk
    )
    if locked.acknowledged_at is None:
        locked.acknowledged_at = timezone.now()
        locked.acknowledged_by_id = membership.user_id
        locked.save(update_fields=["acknowledged_at", "acknowledged_by"])
        _push_updated(locked)
    return locked


def _push_updated(alert: SpikeAlert) -> None:
    payload = {
        "type": "alert.updated",
        "alert_id": alert.pk,
        "brand_id": alert.brand_id,
        "status": alert.status,
        "acknowledged": alert.acknowledged_at is not None,
    }
    group = events.inbox_group(alert.tenant_id)
    transaction.on_commit(partial(events.send_to_group, group, payload))


def _window_messages(brand: Brand, bucket: datetime) -> tuple[list[str], list[int]]:
    rows = list(
        Message.objects.filter(
            tenant_id=brand.tenant_id,
            conversation__brand=brand,
            direction=Message.Direction.IN,
            created_at__gte=bucket,
            created_at__lt=bucket + BUCKET,
        )
        .order_by("-created_at", "-pk")
        .values_list("pk", "text")[:BASELINE_TEXTS]
    )
    return [text for _, text in rows], [pk for pk, _ in rows[:SAMPLE_POSTS]]


def _baseline_texts(brand: Brand, bucket: datetime) -> list[str]:
    since = bucket - timedelta(weeks=4)
    return list(
        Message.objects.filter(
            tenant_id=brand.tenant_id,
            conversation__brand=brand,
            direction=Message.Direction.IN,
            created_at__gte=since,
            created_at__lt=bucket - timedelta(hours=1),
        )
        .order_by("-created_at")
        .values_list("text", flat=True)[:BASELINE_TEXTS]
    )


def email_admins(tenant_id: int, alert_id: int) -> int:
    """Email the workspace's active owners and admins about a spike; returns the
    number of recipients. Runs after commit (its own tenant context)."""
    from tenants.context import tenant_context

    tenant = Tenant.objects.get(pk=tenant_id)
    with tenant_context(tenant):
        alert = SpikeAlert.objects.select_related("brand").get(pk=alert_id)
        recipients = sorted(
            Membership.objects.filter(
                role__in=[Membership.Role.OWNER, Membership.Role.ADMIN],
                user__is_active=True,
            ).values_list("user__email", flat=True)
        )
    if not recipients:
        return 0
    path = reverse("spikes:alert", args=[tenant.slug, alert.pk])
    context = {
        "alert": alert,
        "brand": alert.brand,
        "url": settings.SITE_URL.rstrip("/") + path,
        "terms": [term for term, _ in alert.top_terms],
    }
    try:
        send_mail(
            subject=f"Spike: {alert.count} messages in 5 minutes "
            f"for {alert.brand.name}",
            message=render_to_string("spikes/email/spike.txt", context),
            from_email=None,
            recipient_list=recipients,
        )
    except Exception:  # the alert is recorded and shown; mail is best effort
        logger.exception("could not email spike alert %s", alert_id)
        return 0
    return len(recipients)
