"""Business time (tenants.calendar): exact due times across DST changes, midnight,
weekends, night shifts and holidays, and the two directions agreeing.

Dates used: Europe/Paris changes clocks on Sun 2026-03-29 (02:00 CET -> 03:00
CEST) and Sun 2026-10-25 (03:00 CEST -> 02:00 CET); America/New_York on Sun
2026-03-08 (02:00 EST -> 03:00 EDT) and Sun 2026-11-01 (02:00 EDT -> 01:00 EST).
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenants.calendar import (
    Calendar,
    add_business_seconds,
    brand_calendar,
    business_seconds,
    is_business_time,
    next_opening,
)
from tenants.context import tenant_context
from tenants.models import Brand, Holiday, Tenant
from tests.factories import make_brand

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"
LONDON = "Europe/London"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NINE_TO_FIVE = {day: [["09:00", "17:00"]] for day in DAYS[:5]}
EVERY_DAY_NINE_TO_FIVE = {day: [["09:00", "17:00"]] for day in DAYS}
ALL_DAY = {day: [["00:00", "24:00"]] for day in DAYS}
NIGHT_SHIFT = {"mon": [["22:00", "24:00"]], "tue": [["00:00", "02:00"]]}
HOUR = 3600


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc, arg-type]


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))  # type: ignore[misc, arg-type]


def calendar(
    zone: str,
    hours: dict[str, list[list[str]]],
    holidays: tuple[tuple[date, date], ...] = (),
) -> Calendar:
    return Calendar(timezone=zone, hours=hours, holidays=holidays)


# --- DST ------------------------------------------------------------------------------


def test_spring_forward_shortens_only_the_hours_that_span_the_jump() -> None:
    cal = calendar(PARIS, {"sun": [["01:00", "04:00"]]})
    day = (local(PARIS, 2026, 3, 29), local(PARIS, 2026, 3, 30))
    # 01:00 CET is 00:00 UTC, 04:00 CEST is 02:00 UTC: two real hours.
    assert business_seconds(cal, *day) == 2 * HOUR
    # A message at 00:30 waits for 01:00, then 90 minutes: 03:30 CEST.
    due = add_business_seconds(cal, local(PARIS, 2026, 3, 29, 0, 30), 90 * 60)
    assert due == utc(2026, 3, 29, 1, 30)
    assert due.astimezone(ZoneInfo(PARIS)).hour == 3


def test_spring_forward_opening_inside_the_gap_opens_at_the_jump() -> None:
    cal = calendar(PARIS, {"sun": [["02:30", "05:00"]]})
    assert next_opening(cal, local(PARIS, 2026, 3, 29, 0, 0)) == utc(2026, 3, 29, 1)
    assert business_seconds(
        cal, local(PARIS, 2026, 3, 29), local(PARIS, 2026, 3, 30)
    ) == (2 * HOUR)


def test_fall_back_lengthens_the_hours_that_span_the_repeat() -> None:
    cal = calendar(PARIS, {"sun": [["01:00", "04:00"]]})
    day = (local(PARIS, 2026, 10, 25), local(PARIS, 2026, 10, 26))
    # 01:00 CEST is 23:00 UTC the day before, 04:00 CET is 03:00 UTC: four hours.
    assert business_seconds(cal, *day) == 4 * HOUR
    due = add_business_seconds(cal, local(PARIS, 2026, 10, 24, 22, 0), 210 * 60)
    assert due == utc(2026, 10, 25, 2, 30)  # 03:30 CET


def test_a_closing_time_shown_twice_means_the_first_time() -> None:
    cal = calendar(PARIS, {"sun": [["00:00", "02:30"]]})
    day = (local(PARIS, 2026, 10, 25), local(PARIS, 2026, 10, 26))
    assert business_seconds(cal, *day) == int(2.5 * HOUR)
    assert add_business_seconds(cal, day[0], int(2.5 * HOUR)) == utc(
        2026, 10, 25, 0, 30
    )


def test_wall_clock_hours_keep_their_length_on_both_dst_days() -> None:
    cal = calendar(PARIS, EVERY_DAY_NINE_TO_FIVE)
    spring = (local(PARIS, 2026, 3, 28), local(PARIS, 2026, 3, 30))
    autumn = (local(PARIS, 2026, 10, 24), local(PARIS, 2026, 10, 26))
    assert business_seconds(cal, *spring) == 16 * HOUR
    assert business_seconds(cal, *autumn) == 16 * HOUR
    # 09:00 Sunday is 08:00 UTC in spring (CEST) and 08:00 UTC in autumn (CET).
    assert next_opening(cal, local(PARIS, 2026, 3, 29, 3)) == utc(2026, 3, 29, 7)
    assert next_opening(cal, local(PARIS, 2026, 10, 25, 3)) == utc(2026, 10, 25, 8)


def test_around_the_clock_days_have_23_and_25_hours() -> None:
    cal = calendar(PARIS, ALL_DAY)
    assert business_seconds(
        cal, local(PARIS, 2026, 3, 29), local(PARIS, 2026, 3, 30)
    ) == (23 * HOUR)
    assert business_seconds(
        cal, local(PARIS, 2026, 10, 25), local(PARIS, 2026, 10, 26)
    ) == (25 * HOUR)


def test_new_york_weekend_across_spring_forward() -> None:
    cal = calendar(NEW_YORK, NINE_TO_FIVE)
    # Friday 16:30 EST: 30 minutes on Friday, 30 on Monday from 09:00 EDT.
    start = local(NEW_YORK, 2026, 3, 6, 16, 30)
    assert start == utc(2026, 3, 6, 21, 30)
    due = add_business_seconds(cal, start, HOUR)
    assert due == utc(2026, 3, 9, 13, 30)
    assert business_seconds(cal, start, due) == HOUR


def test_new_york_weekend_across_fall_back() -> None:
    cal = calendar(NEW_YORK, NINE_TO_FIVE)
    start = local(NEW_YORK, 2026, 10, 30, 16, 30)  # EDT, 20:30 UTC
    due = add_business_seconds(cal, start, HOUR)
    assert due == utc(2026, 11, 2, 14, 30)  # 09:30 EST
    assert business_seconds(cal, start, local(NEW_YORK, 2026, 11, 2, 9, 30)) == HOUR


# --- Midnight, weekends, night shifts -------------------------------------------------


def test_a_message_at_midnight_on_saturday_waits_for_monday() -> None:
    cal = calendar(LONDON, NINE_TO_FIVE)
    start = local(LONDON, 2026, 3, 7, 0, 0)
    assert not is_business_time(cal, start)
    assert add_business_seconds(cal, start, 15 * 60) == utc(2026, 3, 9, 9, 15)
    assert business_seconds(cal, start, utc(2026, 3, 9, 9, 15)) == 15 * 60


def test_the_clock_stops_at_five_and_runs_on_after_the_weekend() -> None:
    cal = calendar(LONDON, NINE_TO_FIVE)
    start = local(LONDON, 2026, 3, 6, 16, 45)
    assert add_business_seconds(cal, start, 30 * 60) == utc(2026, 3, 9, 9, 15)
    # Exactly the time left today ends at closing time, not on Monday.
    assert add_business_seconds(cal, start, 15 * 60) == utc(2026, 3, 6, 17, 0)


def test_a_night_shift_runs_through_midnight() -> None:
    cal = calendar(PARIS, NIGHT_SHIFT)
    start = local(PARIS, 2026, 3, 2, 23, 0)  # Monday 23:00 CET = 22:00 UTC
    assert add_business_seconds(cal, start, 2 * HOUR) == utc(2026, 3, 3, 0, 0)
    # All three hours left end the shift at 02:00 Tuesday...
    assert add_business_seconds(cal, start, 3 * HOUR) == utc(2026, 3, 3, 1, 0)
    # ...one second more waits for next Monday's 22:00.
    assert add_business_seconds(cal, start, 3 * HOUR + 1) == utc(2026, 3, 9, 21, 0, 1)
    assert is_business_time(cal, local(PARIS, 2026, 3, 3, 0, 0))
    assert is_business_time(cal, local(PARIS, 2026, 3, 3, 1, 59, 59))
    assert not is_business_time(cal, local(PARIS, 2026, 3, 3, 2, 0))
    assert not is_business_time(cal, local(PARIS, 2026, 3, 2, 21, 59, 59))
    assert (
        business_seconds(cal, local(PARIS, 2026, 3, 2, 21), local(PARIS, 2026, 3, 3, 3))
        == 4 * HOUR
    )


def test_unordered_or_overlapping_hours_count_each_second_once() -> None:
    cal = calendar(LONDON, {"mon": [["13:00", "17:00"], ["09:00", "14:00"]]})
    monday = (local(LONDON, 2026, 3, 2), local(LONDON, 2026, 3, 3))
    assert business_seconds(cal, *monday) == 8 * HOUR
    assert add_business_seconds(cal, monday[0], 5 * HOUR) == utc(2026, 3, 2, 14)


def test_a_brand_without_hours_counts_calendar_time() -> None:
    cal = calendar(NEW_YORK, {})
    start = local(NEW_YORK, 2026, 3, 7, 23, 0)  # Saturday night, before the jump
    assert add_business_seconds(cal, start, 3 * HOUR) == utc(2026, 3, 8, 7)
    assert business_seconds(cal, start, utc(2026, 3, 8, 7)) == 3 * HOUR


# --- Holidays -------------------------------------------------------------------------

CHRISTMAS = (date(2026, 12, 25), date(2026, 12, 25))
NEW_YEAR_WEEK = (date(2026, 12, 28), date(2027, 1, 1))


def test_single_holidays_and_ranges_stop_the_clock() -> None:
    cal = calendar(LONDON, NINE_TO_FIVE, (CHRISTMAS, NEW_YEAR_WEEK))
    start = local(LONDON, 2026, 12, 24, 16, 30)
    due = add_business_seconds(cal, start, HOUR)
    assert due == utc(2027, 1, 4, 9, 30)
    assert business_seconds(cal, start, due) == HOUR
    only_christmas = calendar(LONDON, NINE_TO_FIVE, (CHRISTMAS,))
    assert add_business_seconds(only_christmas, start, HOUR) == utc(2026, 12, 28, 9, 30)


def test_a_message_at_2359_before_a_holiday() -> None:
    around_the_clock = calendar(LONDON, ALL_DAY, (CHRISTMAS,))
    start = local(LONDON, 2026, 12, 24, 23, 59)
    # One minute counts before midnight; Christmas Day does not; 59 on the 26th.
    assert add_business_seconds(around_the_clock, start, HOUR) == utc(
        2026, 12, 26, 0, 59
    )
    assert not is_business_time(around_the_clock, local(LONDON, 2026, 12, 25, 12))
    office = calendar(LONDON, NINE_TO_FIVE, (CHRISTMAS, NEW_YEAR_WEEK))
    assert add_business_seconds(office, start, HOUR) == utc(2027, 1, 4, 10)


def test_a_holiday_is_read_in_the_brands_zone() -> None:
    labour_day = (date(2026, 5, 1), date(2026, 5, 1))
    cal = calendar(PARIS, ALL_DAY, (labour_day,))
    start = local(PARIS, 2026, 4, 30, 23, 59)  # 21:59 UTC
    # Closed from 22:00 UTC on the 30th to 22:00 UTC on the 1st (CEST).
    assert add_business_seconds(cal, start, HOUR) == utc(2026, 5, 1, 22, 59)
    assert business_seconds(cal, start, utc(2026, 5, 1, 22, 59)) == HOUR


def test_a_brand_closed_beyond_the_search_horizon_has_no_due_time() -> None:
    forever = (date(2026, 1, 1), date(2029, 12, 31))
    cal = calendar(LONDON, NINE_TO_FIVE, (forever,))
    assert add_business_seconds(cal, utc(2026, 3, 2, 10), 60) is None
    assert next_opening(cal, utc(2026, 3, 2, 10)) is None


def test_naive_datetimes_are_refused() -> None:
    cal = calendar(LONDON, NINE_TO_FIVE)
    naive = datetime(2026, 3, 2, 10)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="aware"):
        business_seconds(cal, naive, utc(2026, 3, 3))
    with pytest.raises(ValueError, match="aware"):
        add_business_seconds(cal, naive, 60)
    with pytest.raises(ValueError, match="aware"):
        is_business_time(cal, naive)


@pytest.mark.django_db(transaction=True)
def test_brand_calendar_reads_only_the_brands_own_holidays(tenant: Tenant) -> None:
    cargo = make_brand(tenant, "Cargo")
    with tenant_context(tenant):
        air = Brand.objects.get(slug="acme-air")
        Brand.objects.filter(pk=air.pk).update(timezone=PARIS)
        air.refresh_from_db()
        Holiday.objects.create(
            brand=air, name="Noël", start_date=date(2026, 12, 25), end_date=CHRISTMAS[1]
        )
        Holiday.objects.create(
            brand=cargo,
            name="Audit",
            start_date=date(2026, 3, 2),
            end_date=date(2026, 3, 6),
        )
        cal = brand_calendar(air)
    assert cal == Calendar(
        timezone=PARIS,
        hours=NINE_TO_FIVE | {"sat": [], "sun": []},
        holidays=(CHRISTMAS,),
    )


# --- The two directions agree ---------------------------------------------------------

CALENDARS = [
    calendar(PARIS, NINE_TO_FIVE, (CHRISTMAS, NEW_YEAR_WEEK)),
    calendar(PARIS, {"sun": [["01:00", "04:00"]], "sat": [["02:30", "05:00"]]}),
    calendar(NEW_YORK, NIGHT_SHIFT | {"fri": [["08:00", "12:00"], ["13:00", "24:00"]]}),
    calendar(LONDON, ALL_DAY, ((date(2026, 12, 24), date(2026, 12, 26)),)),
    calendar(NEW_YORK, {}),
]
START = datetime(2026, 1, 1, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(
    which=st.integers(0, len(CALENDARS) - 1),
    offset=st.integers(0, 365 * 24 * HOUR),
    micros=st.integers(0, 999_999),
    seconds=st.integers(0, 10 * 24 * HOUR),
)
def test_adding_then_counting_gives_back_the_seconds(
    which: int, offset: int, micros: int, seconds: int
) -> None:
    cal = CALENDARS[which]
    start = START + timedelta(seconds=offset, microseconds=micros)
    due = add_business_seconds(cal, start, seconds)
    assert due is not None
    assert business_seconds(cal, start, due) == seconds
    # Business time never runs faster than the clock, and the due time is the
    # earliest: a second less of waiting is a second less of business time.
    assert due - start >= timedelta(seconds=seconds)
    if seconds:
        assert business_seconds(cal, start, due - timedelta(seconds=1)) == seconds - 1


@settings(max_examples=200, deadline=None)
@given(
    which=st.integers(0, len(CALENDARS) - 1),
    offset=st.integers(0, 365 * 24 * HOUR),
    length=st.integers(0, 20 * 24 * HOUR),
)
def test_counting_then_adding_lands_at_or_before_the_end(
    which: int, offset: int, length: int
) -> None:
    cal = CALENDARS[which]
    start = START + timedelta(seconds=offset)
    end = start + timedelta(seconds=length)
    counted = business_seconds(cal, start, end)
    due = add_business_seconds(cal, start, counted)
    assert due is not None
    if counted:
        assert due <= end
        assert business_seconds(cal, due, end) == 0
