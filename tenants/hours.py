"""Whether a brand is online (R8): its business hours read in its time zone.

Pure functions over `Brand.business_hours` ({"mon": [["09:00", "17:00"]], ...}, the
shape `tenants.brand_rules` checks) and `Brand.timezone`; they read no clock and
no database, so callers pass the moment they care about.

Hours are wall-clock times in the brand's zone: "09:00" is nine in the morning
on both sides of a daylight-saving change. An interval is [start, end), and
"24:00" ends a day at midnight, so hours past midnight are written as the end of
one day and the start of the next (`"mon": [["22:00", "24:00"]], "tue":
[["00:00", "02:00"]]`); such a night is one opening, with no change at midnight.
A start that falls in a spring-forward gap opens when the clocks jump past it.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from tenants.brand_rules import WEEKDAYS
from tenants.models import Brand

Hours = dict[str, list[list[str]]]
# A week and a day: far enough to find the same weekday's hours again.
_HORIZON_DAYS = 8


@dataclass(frozen=True)
class Availability:
    """A brand's state at a moment, and when it next changes (None: never; the
    brand is open around the clock or has no hours). `next_change` is in the
    brand's time zone."""

    online: bool
    next_change: datetime | None


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _intervals(hours: Hours, day: date) -> list[tuple[int, int]]:
    """The day's opening intervals in minutes after its midnight."""
    return [
        (_minutes(start), _minutes(end))
        for start, end in hours.get(WEEKDAYS[day.weekday()], [])
    ]


def _open_at(hours: Hours, local: datetime) -> bool:
    minute = local.hour * 60 + local.minute + local.second / 60
    return any(start <= minute < end for start, end in _intervals(hours, local.date()))


# Pure (the zone's rules fix the answer), and asked the same few edges again and
# again: a create reads them for its SLA deadlines and, outside business hours,
# for the away reply's next opening (about 30 calls and 100 us per create).
@lru_cache(maxsize=4096)
def _at_wall_clock(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """The instant the brand's clocks show `minute` after midnight of `day` (1440:
    the next midnight); for a time the clocks skip (spring forward), the jump."""
    # `+ timedelta` on an aware datetime is wall-clock arithmetic; the round trip
    # through UTC turns the wall time into an instant.
    wall = datetime.combine(day, time(), tzinfo=zone) + timedelta(minutes=minute)
    instant = wall.astimezone(UTC)
    naive = wall.replace(tzinfo=None)
    if instant.astimezone(zone).replace(tzinfo=None) == naive:
        return instant.astimezone(zone)
    # Skipped: find the first minute whose wall time is at or past it (the jump);
    # a day before, the clocks showed an earlier time.
    low, high = instant - timedelta(days=1), instant
    while (span := int((high - low) / timedelta(minutes=1))) > 1:
        middle = low + timedelta(minutes=span // 2)
        if middle.astimezone(zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high.astimezone(zone)


def is_open(brand: Brand, at: datetime) -> bool:
    """Whether `brand` is within its business hours at the aware moment `at`."""
    zone = ZoneInfo(brand.timezone)
    return _open_at(brand.business_hours or {}, at.astimezone(zone))


def next_change(brand: Brand, at: datetime) -> datetime | None:
    """The first moment after `at` when `brand` goes online or offline, in its
    time zone; None when that never happens (open 24/7, or no hours at all)."""
    zone = ZoneInfo(brand.timezone)
    hours: Hours = brand.business_hours or {}
    instant = at.astimezone(UTC)
    local = at.astimezone(zone)
    now_open = _open_at(hours, local)
    for offset in range(_HORIZON_DAYS + 1):
        day = local.date() + timedelta(days=offset)
        edges = sorted({edge for pair in _intervals(hours, day) for edge in pair})
        for minute in edges:
            moment = _at_wall_clock(day, minute, zone)
            if moment.astimezone(UTC) <= instant:
                continue
            if _open_at(hours, moment) != now_open:
                return moment
    return None


def availability(brand: Brand, at: datetime) -> Availability:
    """`is_open` and `next_change` together, for pages that show both."""
    return Availability(online=is_open(brand, at), next_change=next_change(brand, at))
