"""A brand's public status (R8): online or offline, and how fast it typically answers.

What the public status endpoint (helpdesk/status_views.py) shows, and nothing more:
the brand's name, whether it is within its business hours, when that changes, its
time zone, its hours, and the median first-response time of the last seven days.
"""

import math
import statistics
from datetime import datetime, timedelta
from typing import Any, TypedDict

from django.db import connection
from django.db.models import Aggregate, DurationField, ExpressionWrapper, F

from helpdesk.models import Conversation
from tenants.brand_rules import WEEKDAYS
from tenants.hours import availability
from tenants.models import Brand

TYPICAL_REPLY_WINDOW = timedelta(days=7)


class BrandStatus(TypedDict):
    brand: str
    online: bool
    next_change: str | None
    timezone: str
    typically_replies_in_minutes: int | None
    hours: dict[str, list[list[str]]]


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
    One query (typical_reply_minutes).
    """
    state = availability(brand, at)
    hours = brand.business_hours or {}
    return {
        "brand": brand.name,
        "online": state.online,
        "next_change": state.next_change.isoformat() if state.next_change else None,
        "timezone": brand.timezone,
        "typically_replies_in_minutes": typical_reply_minutes(brand, at=at),
        "hours": {day: [list(pair) for pair in hours.get(day, [])] for day in WEEKDAYS},
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
