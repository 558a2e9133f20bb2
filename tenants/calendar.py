"""Business time: the clock SLA targets count in (R9, R10).

A `Calendar` is a brand's weekly hours, time zone and holidays as plain data, so
the arithmetic here reads no database and no clock. Hours follow
`tenants.hours`: wall-clock intervals [start, end) in the brand's zone, "24:00"
ending a day at midnight, a start inside a spring-forward gap opening at the
jump, a wall time the clocks show twice (fall back) meaning the first time. So
09:00-17:00 is eight hours on both DST days, and 00:00-24:00 is 23 hours on the
spring-forward day and 25 on the fall-back day. A holiday closes its whole dates
(both ends included), in the brand's zone.

Every instant in or out is an aware datetime (a naive one raises ValueError);
results are in UTC.

A brand with no weekly hours at all is treated as staffed around the clock:
its targets count calendar time (a clock that never moves would never breach).
Holidays still close such a brand.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from tenants.hours import Hours, _at_wall_clock, _intervals
from tenants.models import Brand, Holiday

# How far ahead a due time is searched for before giving up (a brand closed for
# longer than this has no due time).
SEARCH_DAYS = 800
_ALL_DAY = [["00:00", "24:00"]]


@dataclass(frozen=True)
class Calendar:
    timezone: str
    hours: Hours
    # (first, last) closed dates, both included.
    holidays: tuple[tuple[date, date], ...] = field(default=())

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def staffed_around_the_clock(self) -> bool:
        return not any(self.hours.get(day) for day in self.hours)


def brand_calendar(brand: Brand, holidays: Sequence[Holiday] | None = None) -> Calendar:
    """The brand's calendar. Reads its holidays (one query) unless given; call in
    the brand's tenant context."""
    if holidays is None:
        holidays = list(Holiday.objects.filter(brand_id=brand.pk))
    return Calendar(
        timezone=brand.timezone,
        hours=brand.business_hours or {},
        holidays=tuple(sorted((h.start_date, h.end_date) for h in holidays)),
    )


def _closed(calendar: Calendar, day: date) -> bool:
    return any(first <= day <= last for first, last in calendar.holidays)


def _openings(
    calendar: Calendar, first_day: date
) -> Iterator[tuple[datetime, datetime]]:
    """Opening intervals as UTC instants from `first_day` on: in order and
    disjoint (adjacent ones, such as a night across midnight, may touch).

    The hours are sorted and clipped here too, so hours that bypassed
    `tenants.brand_rules` (unordered or overlapping) never count a second twice.
    """
    zone = calendar.zone
    hours = (
        dict.fromkeys(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), _ALL_DAY)
        if calendar.staffed_around_the_clock
        else calendar.hours
    )
    last_close = datetime.min.replace(tzinfo=UTC)
    for offset in range(SEARCH_DAYS):
        day = first_day + timedelta(days=offset)
        if _closed(calendar, day):
            continue
        for start, end in sorted(_intervals(hours, day)):
            opens = max(_at_wall_clock(day, start, zone).astimezone(UTC), last_close)
            closes = _at_wall_clock(day, end, zone).astimezone(UTC)
            if closes > opens:
                yield opens, closes
                last_close = closes


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("business time needs an aware datetime")
    return moment.astimezone(UTC)


def business_seconds(calendar: Calendar, start: datetime, end: datetime) -> int:
    """Whole seconds of business time in [start, end) (0 when end <= start).

    Counts at most SEARCH_DAYS ahead of `start`. The inverse of
    `add_business_seconds`: business_seconds(c, s, add_business_seconds(c, s, n))
    == n.
    """
    start, end = _utc(start), _utc(end)
    if end <= start:
        return 0
    # A day earlier: the interval that is open at `start` may have begun then.
    first_day = start.astimezone(calendar.zone).date() - timedelta(days=1)
    total = timedelta(0)
    for opens, closes in _openings(calendar, first_day):
        if opens >= end:
            break
        overlap = min(closes, end) - max(opens, start)
        if overlap > timedelta(0):
            total += overlap
    return total // timedelta(seconds=1)


def add_business_seconds(
    calendar: Calendar, start: datetime, seconds: int
) -> datetime | None:
    """The instant when `seconds` of business time have passed since `start`.

    With 0 seconds: `start` itself when open, else the next opening. None when the
    brand stays closed for SEARCH_DAYS.
    """
    start = _utc(start)
    remaining = timedelta(seconds=max(0, seconds))
    first_day = start.astimezone(calendar.zone).date() - timedelta(days=1)
    for opens, closes in _openings(calendar, first_day):
        if closes <= start:
            continue
        begin = max(opens, start)
        available = closes - begin
        if remaining <= available:
            return begin + remaining
        remaining -= available
    return None


def is_business_time(calendar: Calendar, at: datetime) -> bool:
    """Whether `at` falls inside an opening of the calendar."""
    at = _utc(at)
    first_day = at.astimezone(calendar.zone).date() - timedelta(days=1)
    for opens, closes in _openings(calendar, first_day):
        if opens > at:
            return False
        if opens <= at < closes:
            return True
    return False


def next_opening(calendar: Calendar, at: datetime) -> datetime | None:
    """`at` when open, else the start of the next opening (None: none ahead)."""
    return add_business_seconds(calendar, at, 0)
