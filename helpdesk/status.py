"""A brand's public status (R8): online or offline, and how fast it typically answers.

What the public status endpoint (helpdesk/status_views.py) shows, and nothing more:
the brand's name, whether it is within its business hours, when that changes, its
time zone, its hours, and the median first-response time of the last seven days.
A brand that publishes its badge (`Brand.publish_badge`, off by default) also shows
its response rate and median first response of the last 30 days (`answers`), the
figures of the badge (R9).
"""

import math
import statistics
from datetime import datetime, timedelta
from typing import Any, NotRequired, TypedDict
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Aggregate, DurationField, ExpressionWrapper, F

from helpdesk.badge import duration_words
from helpdesk.models import Conversation
from helpdesk.reports import ReportFilters, report_summary
from tenants.brand_rules import WEEKDAYS
from tenants.hours import availability
from tenants.models import Brand, Membership

TYPICAL_REPLY_WINDOW = timedelta(days=7)
BADGE_DAYS = 30


class BadgeFigures(TypedDict):
    response_rate_percent: int | None
    first_response_median_seconds: float | None
    days: int
    text: str


class BrandStatus(TypedDict):
    brand: str
    online: bool
    next_change: str | None
    timezone: str
    typically_replies_in_minutes: int | None
    hours: dict[str, list[list[str]]]
    answers: NotRequired[BadgeFigures]


class Median(Aggregate):
    """The median of the expression (PostgreSQL: percentile_cont, interpolated)."""

    function = "PERCENTILE_CONT"
    name = "Median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"


def brand_status(brand: Brand, *, at: datetime) -> BrandStatus:
    """The public status of `brand` at the aware moment `at`.

    Call inside the brand's tenant context. `next_change` is in the brand's time
    zone (ISO 8601 with its offset), None when the brand never changes (open around
    the clock, or no business hours). `hours` lists every weekday, "mon" first.
    One query (typical_reply_minutes); a brand that publishes its badge adds
    `answers` (badge_figures).
    """
    state = availability(brand, at)
    hours = brand.business_hours or {}
    status: BrandStatus = {
        "brand": brand.name,
        "online": state.online,
        "next_change": state.next_change.isoformat() if state.next_change else None,
        "timezone": brand.timezone,
        "typically_replies_in_minutes": typical_reply_minutes(brand, at=at),
        "hours": {day: [list(pair) for pair in hours.get(day, [])] for day in WEEKDAYS},
    }
    if brand.publish_badge:
        status["answers"] = badge_figures(brand, at=at)
    return status


def badge_figures(brand: Brand, *, at: datetime) -> BadgeFigures:
    """The brand's response rate and median first response over the BADGE_DAYS
    days ending on `at`'s date in the brand's time zone, and the badge's sentence.

    Call inside the brand's tenant context. From helpdesk.reports.report_summary
    (the hourly rollups), read as the workspace's owner, without comparison. The
    rate is rounded down to a whole percent, so a badge never claims more than
    was done; the median is calendar seconds, said in words rounded up
    (badge.duration_words). With no conversation needing a reply the rate and
    median are None and the sentence says so; with none answered only the
    median is None.
    """
    today = at.astimezone(ZoneInfo(brand.timezone)).date()
    filters = ReportFilters(
        start=today - timedelta(days=BADGE_DAYS - 1), end=today, brand_id=brand.pk
    )
    owner = Membership.objects.filter(role=Membership.Role.OWNER).first()
    period = report_summary(owner, filters)["period"] if owner else {}
    rate: float | None = period.get("response_rate")
    median: float | None = period.get("first_response_p50")
    window = f"last {BADGE_DAYS} days"
    percent = None if rate is None else math.floor(rate * 100 + 1e-9)
    if percent is None:
        text = f"no messages needing a reply, {window}"
    elif median is None:
        text = f"answers {percent}% of messages, {window}"
    else:
        text = (
            f"answers {percent}% of messages, median {duration_words(median)}, {window}"
        )
    return {
        "response_rate_percent": percent,
        "first_response_median_seconds": median,
        "days": BADGE_DAYS,
        "text": text,
    }


def typical_reply_minutes(brand: Brand, *, at: datetime) -> int | None:
    """The median first-response time of the brand's conversations answered in the
    seven days up to `at`, in whole minutes rounded up; None when none was answered.

    The response time is first_response_at - first_customer_message_at (the clock
    an agent's reply stops; automatic replies do not stop it). One aggregate query
    on PostgreSQL; on SQLite (the demo), which has no percentile aggregate, one
    query for the durations and the median in Python.
    """
    answered = Conversation.objects.filter(
        brand=brand,
        first_response_at__gt=at - TYPICAL_REPLY_WINDOW,
        first_response_at__lte=at,
        first_customer_message_at__isnull=False,
        first_response_at__gte=F("first_customer_message_at"),
    )
    waited = ExpressionWrapper(
        F("first_response_at") - F("first_customer_message_at"),
        output_field=DurationField(),
    )
    median: timedelta | None
    if connection.vendor == "postgresql":
        median = answered.aggregate(
            median=Median(waited, output_field=DurationField())
        )["median"]
    else:
        durations: list[Any] = list(
            answered.annotate(waited=waited).values_list("waited", flat=True)
        )
        median = statistics.median(durations) if durations else None
    if median is None:
        return None
    return math.ceil(median.total_seconds() / 60)
