"""tenants.calendar with its days worked out once per process (shared schedules
keyed by zone, hours and holidays) and the SLA clock's due and due-soon times in
one walk (add_business_seconds_each) give exactly what they gave before.

The reference is the code as it was, copied here: `_openings` working out every
day's intervals on each call, and the four functions over it. Brands are drawn
at random (zones with DST changes, including ones at midnight and half-hour
ones; unordered, overlapping, night and empty hours; holidays), and instants
around the zones' clock changes."""

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpdesk.models import Conversation
from helpdesk.services import sla
from tenants import calendar as cal
from tenants.calendar import (
    SEARCH_DAYS,
    Calendar,
    add_business_seconds,
    add_business_seconds_each,
    business_seconds,
    is_business_time,
    next_opening,
)
from tenants.hours import _at_wall_clock, _intervals
from tenants.models import Brand

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAY = [["00:00", "24:00"]]
ZONES = (
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",  # half-hour DST
    "America/Santiago",  # changes at midnight
    "America/Havana",  # changes at midnight
    "Asia/Kolkata",
    "Pacific/Apia",
)
# Clock changes of 2026 and 2027 in the zones above, and ordinary days.
AROUND = [
    datetime(2026, 3, 8, 7, tzinfo=UTC),
    datetime(2026, 3, 29, 1, tzinfo=UTC),
    datetime(2026, 4, 4, 15, tzinfo=UTC),
    datetime(2026, 4, 5, 3, tzinfo=UTC),
    datetime(2026, 9, 6, 4, tzinfo=UTC),
    datetime(2026, 10, 4, 2, tzinfo=UTC),
    datetime(2026, 10, 25, 1, tzinfo=UTC),
    datetime(2026, 11, 1, 5, tzinfo=UTC),
    datetime(2026, 12, 7, 9, tzinfo=UTC),
    datetime(2027, 3, 14, 5, tzinfo=UTC),
]


# --- The reference: tenants.calendar as it was ------------------------------------


def old_closed(calendar: Calendar, day: date) -> bool:
    return any(first <= day <= last for first, last in calendar.holidays)


def old_openings(
    calendar: Calendar, first_day: date
) -> Iterator[tuple[datetime, datetime]]:
    zone = ZoneInfo(calendar.timezone)
    staffed = not any(calendar.hours.get(day) for day in calendar.hours)
    hours = dict.fromkeys(DAYS, ALL_DAY) if staffed else calendar.hours
    last_close = datetime.min.replace(tzinfo=UTC)
    for offset in range(SEARCH_DAYS):
        day = first_day + timedelta(days=offset)
        if old_closed(calendar, day):
            continue
        for start, end in sorted(_intervals(hours, day)):
            opens = max(_at_wall_clock(day, start, zone).astimezone(UTC), last_close)
            closes = _at_wall_clock(day, end, zone).astimezone(UTC)
            if closes > opens:
                yield opens, closes
                last_close = closes


def old_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("business time needs an aware datetime")
    return moment.astimezone(UTC)


def old_first_day(calendar: Calendar, moment: datetime) -> date:
    return moment.astimezone(ZoneInfo(calendar.timezone)).date() - timedelta(days=1)


def old_business_seconds(calendar: Calendar, start: datetime, end: datetime) -> int:
    start, end = old_utc(start), old_utc(end)
    if end <= start:
        return 0
    total = timedelta(0)
    for opens, closes in old_openings(calendar, old_first_day(calendar, start)):
        if opens >= end:
            break
        overlap = min(closes, end) - max(opens, start)
        if overlap > timedelta(0):
            total += overlap
    return total // timedelta(seconds=1)


def old_add_business_seconds(
    calendar: Calendar, start: datetime, seconds: int
) -> datetime | None:
    start = old_utc(start)
    remaining = timedelta(seconds=max(0, seconds))
    for opens, closes in old_openings(calendar, old_first_day(calendar, start)):
        if closes <= start:
            continue
        begin = max(opens, start)
        available = closes - begin
        if remaining <= available:
            return begin + remaining
        remaining -= available
    return None


def old_is_business_time(calendar: Calendar, at: datetime) -> bool:
    at = old_utc(at)
    for opens, closes in old_openings(calendar, old_first_day(calendar, at)):
        if opens > at:
            return False
        if opens <= at < closes:
            return True
    return False


def old_deadlines(
    conversation: Conversation,
    calendar: Calendar,
    window: timedelta,
    *,
    run_start: datetime,
    target: int,
    used: int,
    followers: int,
) -> dict[str, object]:
    due = old_add_business_seconds(calendar, run_start, max(0, target - used))
    soon_at = target * 8 // 10
    soon = old_add_business_seconds(calendar, run_start, max(0, soon_at - used))
    negative = conversation.sentiment == Conversation.Sentiment.NEGATIVE
    bonus = sla.reach_bonus(followers, window, negative=negative)
    return {
        "sla_due_at": due,
        "sla_due_soon_at": soon,
        "queue_at": due - bonus if due is not None else None,
    }


# --- Random brands ------------------------------------------------------------------


def clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# Mostly quarter hours (where clocks change), sometimes any minute, up to 24:00.
minutes = st.one_of(
    st.integers(0, 96).map(lambda quarter: quarter * 15), st.integers(0, 1440)
)
# In order mostly; now and then backwards (hours that bypassed brand_rules).
interval = st.one_of(
    st.tuples(minutes, minutes).map(lambda pair: [clock(min(pair)), clock(max(pair))]),
    st.tuples(minutes, minutes).map(lambda pair: [clock(pair[0]), clock(pair[1])]),
)
hours: st.SearchStrategy[dict[str, list[list[str]]]] = st.one_of(
    st.just({}),
    st.just({day: [] for day in DAYS}),
    st.just({day: [["00:00", "24:00"]] for day in DAYS}),
    st.dictionaries(st.sampled_from(DAYS), st.lists(interval, max_size=3)),
)
instants = st.builds(
    lambda base, offset: base + timedelta(microseconds=offset),
    st.sampled_from(AROUND),
    st.integers(-3 * 86_400_000_000, 3 * 86_400_000_000),
)


@st.composite
def calendars(draw: Any) -> Calendar:
    spans = draw(
        st.lists(
            st.tuples(st.integers(-5, 20), st.integers(0, 6)), max_size=3, unique=True
        )
    )
    base = draw(st.sampled_from(AROUND)).date()
    holidays = tuple(
        sorted(
            (base + timedelta(days=gap), base + timedelta(days=gap + length))
            for gap, length in spans
        )
    )
    return Calendar(
        timezone=draw(st.sampled_from(ZONES)), hours=draw(hours), holidays=holidays
    )


amounts = st.one_of(
    st.integers(0, 4 * 3600), st.integers(-3600, 30 * 86_400), st.just(0)
)


# --- Same answers -------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(calendar=calendars(), start=instants, length=amounts, seconds=amounts)
def test_the_calendar_gives_the_same_answers(
    calendar: Calendar, start: datetime, length: int, seconds: int
) -> None:
    end = start + timedelta(seconds=length)
    # A calendar of the same content made apart shares the first one's schedule.
    again = Calendar(
        timezone=calendar.timezone,
        hours={
            day: [list(span) for span in spans] for day, spans in calendar.hours.items()
        },
        holidays=calendar.holidays,
    )
    for each in (calendar, again):
        assert business_seconds(each, start, end) == old_business_seconds(
            calendar, start, end
        )
        assert add_business_seconds(each, start, seconds) == old_add_business_seconds(
            calendar, start, seconds
        )
        assert is_business_time(each, start) == old_is_business_time(calendar, start)
        assert next_opening(each, start) == old_add_business_seconds(calendar, start, 0)
    assert again._schedule is calendar._schedule


@settings(max_examples=300, deadline=None)
@given(
    calendar=calendars(),
    start=instants,
    seconds=st.lists(amounts, max_size=4),
)
def test_adding_several_amounts_at_once_gives_each_alone(
    calendar: Calendar, start: datetime, seconds: list[int]
) -> None:
    assert add_business_seconds_each(calendar, start, seconds) == [
        old_add_business_seconds(calendar, start, amount) for amount in seconds
    ]


@settings(max_examples=300, deadline=None)
@given(
    calendar=calendars(),
    run_start=instants,
    target=st.integers(0, 3 * 86_400),
    used=st.integers(0, 4 * 86_400),
    followers=st.one_of(st.integers(0, 200), st.integers(0, 50_000_000)),
    negative=st.booleans(),
    window=st.integers(0, 60),
)
def test_the_clocks_deadlines_are_the_same(
    calendar: Calendar,
    run_start: datetime,
    target: int,
    used: int,
    followers: int,
    negative: bool,
    window: int,
) -> None:
    brand = Brand(
        timezone=calendar.timezone,
        business_hours=calendar.hours,
        queue_window_minutes=window,
    )
    sentiment = "negative" if negative else "neutral"
    conversation = Conversation(sentiment=sentiment)
    time = sla.BrandTime(brand)
    time._calendar = calendar
    expected = old_deadlines(
        conversation,
        calendar,
        timedelta(minutes=window),
        run_start=run_start,
        target=target,
        used=used,
        followers=followers,
    )
    assert (
        sla._deadlines(
            conversation,
            time,
            run_start=run_start,
            target=target,
            used=used,
            followers=followers,
        )
        == expected
    )


@settings(max_examples=200, deadline=None)
@given(
    calendar=calendars(),
    at=instants,
    followers=st.integers(0, 50_000_000),
    negative=st.booleans(),
    opened=st.booleans(),
    first_response=st.booleans(),
)
def test_a_customer_messages_clock_is_the_same(
    calendar: Calendar,
    at: datetime,
    followers: int,
    negative: bool,
    opened: bool,
    first_response: bool,
) -> None:
    """A clock started by a customer message (its fields, and the opened fact's
    off-hours flag), against the old arithmetic."""
    brand = Brand(
        timezone=calendar.timezone,
        business_hours=calendar.hours,
        queue_window_minutes=5,
    )
    spans = [sla._Span(first, last) for first, last in calendar.holidays]
    sla.preload(brand, None, spans)
    conversation = Conversation(
        sentiment="negative" if negative else "neutral",
        first_customer_message_at=at,
        created_at=at,
        first_response_at=at - timedelta(hours=1) if first_response else None,
    )
    with mock.patch.object(sla, "record_fact") as record_fact:
        changed = sla.customer_message_clock(
            conversation,
            brand=brand,
            at=at,
            followers=followers,
            negative=negative,
            opened=opened,
        )
    targets = sla.DEFAULT_TARGETS
    lane = "urgent" if negative else "normal"
    target = targets.seconds("first" if not first_response else "next", lane)
    expected = old_deadlines(
        conversation,
        calendar,
        timedelta(minutes=5),
        run_start=at,
        target=target,
        used=0,
        followers=followers,
    )
    assert {name: getattr(conversation, name) for name in expected} == expected
    assert conversation.sla_lane == lane
    assert conversation.sla_target_seconds == target
    assert changed["sla_started_at"] == at
    if opened:
        assert record_fact.call_args.kwargs["off_hours"] is not old_is_business_time(
            calendar, at
        )
    else:
        record_fact.assert_not_called()


# --- Changes and odd hours ----------------------------------------------------------


def test_changed_hours_holidays_or_zone_are_a_new_schedule() -> None:
    hours = {"mon": [["09:00", "17:00"]]}
    monday = datetime(2026, 12, 7, 8, tzinfo=UTC)
    first = Calendar(timezone="UTC", hours=hours)
    assert add_business_seconds(first, monday, 3600) == datetime(
        2026, 12, 7, 10, tzinfo=UTC
    )
    # The brand's hours edited in place, then read again: the new hours count.
    hours["mon"][0][0] = "12:00"
    edited = Calendar(timezone="UTC", hours=hours)
    assert add_business_seconds(edited, monday, 3600) == datetime(
        2026, 12, 7, 13, tzinfo=UTC
    )
    closed = Calendar(
        timezone="UTC", hours=hours, holidays=((date(2026, 12, 7), date(2026, 12, 7)),)
    )
    assert add_business_seconds(closed, monday, 3600) == datetime(
        2026, 12, 14, 13, tzinfo=UTC
    )
    paris = Calendar(timezone="Europe/Paris", hours=hours)
    assert add_business_seconds(paris, monday, 3600) == datetime(
        2026, 12, 7, 12, tzinfo=UTC
    )
    # The first calendar's schedule kept its own copy of the hours it was made of.
    again = Calendar(timezone="UTC", hours={"mon": [["09:00", "17:00"]]})
    assert add_business_seconds(again, monday, 3600) == datetime(
        2026, 12, 7, 10, tzinfo=UTC
    )
    assert len({id(c._schedule) for c in (first, edited, closed, paris, again)}) == 4


def test_the_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cal, "_SCHEDULES", {})
    monkeypatch.setattr(cal, "_MAX_SCHEDULES", 3)
    monkeypatch.setattr(cal, "_MAX_DAYS", 5)
    start = datetime(2026, 12, 7, tzinfo=UTC)
    for minute in range(6):
        calendar = Calendar(
            timezone="UTC", hours={"mon": [["00:00", clock(minute + 1)]]}
        )
        # Mondays only: three Mondays' worth walks sixteen days.
        assert add_business_seconds(calendar, start, 3 * 60 * (minute + 1)) == (
            start + timedelta(days=14, minutes=minute + 1)
        )
        assert len(calendar._schedule.days) <= 5
    assert len(cal._SCHEDULES) == 3


def test_hours_of_another_shape_fail_as_before() -> None:
    start = datetime(2026, 12, 7, 9, tzinfo=UTC)
    for hours in ({"mon": "09:00-17:00"}, {"mon": [["9h", "17h"]]}, ["mon"]):
        calendar = Calendar(timezone="UTC", hours=hours)  # type: ignore[arg-type]
        with pytest.raises((ValueError, AttributeError)) as new:
            add_business_seconds(calendar, start, 60)
        with pytest.raises((ValueError, AttributeError)) as old:
            old_add_business_seconds(calendar, start, 60)
        assert type(new.value) is type(old.value)
