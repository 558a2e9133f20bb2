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

A day's openings depend only on the calendar's zone, hours and holidays, so they
are worked out once per process for each such setting (`_Schedule`), keyed by its
content: a brand whose hours, holidays or time zone change gets another schedule
(nothing to invalidate), and the arithmetic walks days already worked out
instead of parsing the hours and converting wall-clock times on every call. A
Calendar's hours must not change once it has been used (make another).
"""

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from tenants.hours import Hours, _at_wall_clock, _intervals
from tenants.models import Brand, Holiday

# How far ahead a due time is searched for before giving up (a brand closed for
# longer than this has no due time).
SEARCH_DAYS = 800
_ALL_DAY = [["00:00", "24:00"]]
_ALL_WEEK: Hours = dict.fromkeys(
    ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), _ALL_DAY
)
_NEVER = datetime.min.replace(tzinfo=UTC)
# Bounds of the per-process caches: schedules (distinct settings) and the days
# one schedule keeps (a few per message; a brand closed for SEARCH_DAYS walks 800).
_MAX_SCHEDULES = 512
_MAX_DAYS = 4096

Opening = tuple[datetime, datetime]


@dataclass(frozen=True)
class Calendar:
    timezone: str
    hours: Hours
    # (first, last) closed dates, both included.
    holidays: tuple[tuple[date, date], ...] = field(default=())

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def staffed_around_the_clock(self) -> bool:
        return not any(self.hours.get(day) for day in self.hours)

    @cached_property
    def _schedule(self) -> "_Schedule":
        key = (self.timezone, _hours_key(self.hours), self.holidays)
        schedule = _SCHEDULES.get(key)
        if schedule is None:
            schedule = _Schedule(self)
            if len(_SCHEDULES) >= _MAX_SCHEDULES:
                _SCHEDULES.pop(next(iter(_SCHEDULES)), None)
            _SCHEDULES[key] = schedule
        return schedule


def _hours_key(hours: Hours) -> object:
    """The hours as the arithmetic reads them (each day's intervals iterated, each
    unpacked), hashable: equal keys, equal readings. Hours of another shape (not
    a mapping of iterables of iterables): their repr, one spelling per JSON
    value."""
    try:
        return tuple(
            [
                (day, tuple([tuple(span) for span in spans]))
                for day, spans in hours.items()
            ]
        )
    except (AttributeError, TypeError):
        return repr(hours)


class _Schedule:
    """The openings of each day a calendar's arithmetic visited, as UTC instants
    (`_day_openings`), from a copy of its hours taken when it was made: shared by
    every calendar with the same zone, hours and holidays."""

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = Calendar(
            timezone=calendar.timezone,
            hours=copy.deepcopy(calendar.hours),
            holidays=calendar.holidays,
        )
        self.days: dict[date, tuple[Opening, ...]] = {}

    def openings(self, day: date) -> tuple[Opening, ...]:
        found = self.days.get(day)
        if found is None:
            found = _day_openings(self.calendar, day)
            if len(self.days) >= _MAX_DAYS:
                self.days.clear()
            self.days[day] = found
        return found


_SCHEDULES: dict[tuple[str, object, tuple[tuple[date, date], ...]], _Schedule] = {}


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


def _day_openings(calendar: Calendar, day: date) -> tuple[Opening, ...]:
    """The day's opening intervals as UTC instants, sorted, not yet clipped
    (none on a holiday)."""
    if _closed(calendar, day):
        return ()
    zone = calendar.zone
    hours = _ALL_WEEK if calendar.staffed_around_the_clock else calendar.hours
    return tuple(
        (
            _at_wall_clock(day, start, zone).astimezone(UTC),
            _at_wall_clock(day, end, zone).astimezone(UTC),
        )
        for start, end in sorted(_intervals(hours, day))
    )


def _openings(calendar: Calendar, first_day: date) -> Iterator[Opening]:
    """Opening intervals as UTC instants from `first_day` on: in order and
    disjoint (adjacent ones, such as a night across midnight, may touch).

    The hours are sorted and clipped here too, so hours that bypassed
    `tenants.brand_rules` (unordered or overlapping) never count a second twice.
    """
    day_openings = calendar._schedule.openings
    last_close = _NEVER
    for offset in range(SEARCH_DAYS):
        for opens, closes in day_openings(first_day + timedelta(days=offset)):
            if opens < last_close:
                opens = last_close
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
    return add_business_seconds_each(calendar, start, (seconds,))[0]


def add_business_seconds_each(
    calendar: Calendar, start: datetime, seconds: Sequence[int]
) -> list[datetime | None]:
    """`add_business_seconds` of each of `seconds` from the same `start`, in one
    walk through the openings (the same instants)."""
    start = _utc(start)
    wanted = sorted(
        [
            (timedelta(seconds=max(0, amount)), index)
            for index, amount in enumerate(seconds)
        ]
    )
    found: list[datetime | None] = [None] * len(wanted)
    if not wanted:
        return found
    done = 0
    counted = timedelta(0)  # business time in the openings walked before
    first_day = start.astimezone(calendar.zone).date() - timedelta(days=1)
    for opens, closes in _openings(calendar, first_day):
        if closes <= start:
            continue
        begin = max(opens, start)
        available = closes - begin
        while (remaining := wanted[done][0] - counted) <= available:
            found[wanted[done][1]] = begin + remaining
            done += 1
            if done == len(wanted):
                return found
        counted += available
    return found


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
