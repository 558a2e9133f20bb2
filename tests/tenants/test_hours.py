"""Business hours in the brand's time zone (R8): online now, and the next change."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from tenants import hours
from tenants.hours import availability, is_open, next_change
from tenants.models import Brand, default_business_hours

WEEKDAYS_9_TO_5 = default_business_hours()


def brand(
    timezone: str = "UTC", hours: dict[str, list[list[str]]] | None = None
) -> Brand:
    return Brand(
        name="Acme Air",
        timezone=timezone,
        business_hours=WEEKDAYS_9_TO_5 if hours is None else hours,
    )


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local(moment: datetime | None) -> str:
    assert moment is not None
    return moment.strftime("%a %Y-%m-%d %H:%M %Z")


# 2025-01-15 is a Wednesday.
@pytest.mark.parametrize(
    ("at", "online", "change"),
    [
        (utc(2025, 1, 15, 10, 0), True, "Wed 2025-01-15 17:00 UTC"),
        (utc(2025, 1, 15, 9, 0), True, "Wed 2025-01-15 17:00 UTC"),
        (utc(2025, 1, 15, 8, 59), False, "Wed 2025-01-15 09:00 UTC"),
        (utc(2025, 1, 15, 17, 0), False, "Thu 2025-01-16 09:00 UTC"),
        (utc(2025, 1, 17, 18, 30), False, "Mon 2025-01-20 09:00 UTC"),
        (utc(2025, 1, 18, 12, 0), False, "Mon 2025-01-20 09:00 UTC"),
    ],
)
def test_weekday_hours(at: datetime, online: bool, change: str) -> None:
    assert is_open(brand(), at) is online
    assert local(next_change(brand(), at)) == change


def test_hours_are_read_in_the_brand_time_zone() -> None:
    paris = brand("Europe/Paris")
    # 08:30 UTC is 09:30 in Paris in winter (UTC+1).
    assert is_open(paris, utc(2025, 1, 15, 8, 30)) is True
    assert is_open(paris, utc(2025, 1, 15, 7, 30)) is False
    assert local(next_change(paris, utc(2025, 1, 15, 7, 30))) == (
        "Wed 2025-01-15 09:00 CET"
    )
    tokyo = brand("Asia/Tokyo")
    # Wednesday 23:00 UTC is Thursday 08:00 in Tokyo.
    assert is_open(tokyo, utc(2025, 1, 15, 23, 0)) is False
    assert next_change(tokyo, utc(2025, 1, 15, 23, 0)) == utc(2025, 1, 16, 0, 0)


def test_opening_after_the_clocks_go_forward_keeps_the_wall_clock() -> None:
    # London moves to BST (UTC+1) on Sunday 2025-03-30.
    london = brand("Europe/London")
    friday_evening = utc(2025, 3, 28, 18, 0)
    change = next_change(london, friday_evening)
    assert local(change) == "Mon 2025-03-31 09:00 BST"
    assert change == utc(2025, 3, 31, 8, 0)
    assert is_open(london, utc(2025, 3, 31, 8, 0)) is True
    assert is_open(london, utc(2025, 3, 31, 7, 59)) is False


def test_closing_after_the_clocks_go_back_keeps_the_wall_clock() -> None:
    # New York leaves EDT (UTC-4) for EST (UTC-5) on Sunday 2025-11-02.
    new_york = brand("America/New_York", {"sun": [["01:00", "12:00"]]})
    at = utc(2025, 11, 2, 6, 0)  # 01:00 EST, the second 01:00 of the night
    assert is_open(new_york, at) is True
    assert next_change(new_york, at) == utc(2025, 11, 2, 17, 0)  # 12:00 EST


def test_an_opening_the_clocks_skip_happens_at_the_jump() -> None:
    # Paris jumps from 02:00 CET to 03:00 CEST on Sunday 2025-03-30; 02:30 never
    # shows on its clocks, so the brand opens at the jump (01:00 UTC).
    paris = brand("Europe/Paris", {"sun": [["02:30", "04:00"]]})
    before = utc(2025, 3, 30, 0, 30)  # 01:30 CET
    assert is_open(paris, before) is False
    assert next_change(paris, before) == utc(2025, 3, 30, 1, 0)
    assert is_open(paris, utc(2025, 3, 30, 1, 0)) is True
    assert next_change(paris, utc(2025, 3, 30, 1, 0)) == utc(2025, 3, 30, 2, 0)


def test_hours_past_midnight_are_one_opening() -> None:
    night = brand(
        "Europe/Lisbon",
        {"fri": [["22:00", "24:00"]], "sat": [["00:00", "02:00"], ["10:00", "12:00"]]},
    )
    # Lisbon is on UTC in winter. 2025-01-17 is a Friday.
    assert is_open(night, utc(2025, 1, 17, 21, 59)) is False
    assert local(next_change(night, utc(2025, 1, 17, 21, 59))) == (
        "Fri 2025-01-17 22:00 WET"
    )
    assert is_open(night, utc(2025, 1, 17, 23, 30)) is True
    # No change at midnight: the night runs on into Saturday.
    assert local(next_change(night, utc(2025, 1, 17, 23, 30))) == (
        "Sat 2025-01-18 02:00 WET"
    )
    assert is_open(night, utc(2025, 1, 18, 0, 0)) is True
    assert is_open(night, utc(2025, 1, 18, 2, 0)) is False
    assert local(next_change(night, utc(2025, 1, 18, 2, 0))) == (
        "Sat 2025-01-18 10:00 WET"
    )


def test_split_hours_close_and_reopen_the_same_day() -> None:
    lunch = brand(hours={"mon": [["09:00", "12:00"], ["13:00", "17:00"]]})
    monday_morning = utc(2025, 1, 13, 11, 0)
    assert next_change(lunch, monday_morning) == utc(2025, 1, 13, 12, 0)
    assert next_change(lunch, utc(2025, 1, 13, 12, 0)) == utc(2025, 1, 13, 13, 0)
    # After Monday's hours, the next opening is a week later.
    assert next_change(lunch, utc(2025, 1, 13, 17, 0)) == utc(2025, 1, 20, 9, 0)


def test_always_open_and_never_open_never_change() -> None:
    always = brand(hours={day: [["00:00", "24:00"]] for day in WEEKDAYS_9_TO_5})
    never = brand(hours={})
    at = utc(2025, 1, 15, 3, 0)
    assert availability(always, at).online is True
    assert availability(always, at).next_change is None
    assert availability(never, at).online is False
    assert availability(never, at).next_change is None


def test_next_change_is_given_in_the_brand_time_zone() -> None:
    change = next_change(brand("Asia/Kolkata"), utc(2025, 1, 15, 0, 0))
    assert change is not None
    assert str(change.tzinfo) == "Asia/Kolkata"
    assert change.strftime("%H:%M") == "09:00"


def test_wall_clock_edges_are_worked_out_once_and_answer_the_same() -> None:
    acme = brand("Europe/Paris")
    # Sunday 29 March 2026: the clocks skip 02:00-03:00 in Paris.
    at = utc(2026, 3, 28, 20, 0)
    hours._at_wall_clock.cache_clear()
    first = next_change(acme, at)
    worked_out = hours._at_wall_clock.cache_info().misses
    assert worked_out > 0
    assert next_change(acme, at) == first
    assert hours._at_wall_clock.cache_info().misses == worked_out
    assert local(first) == "Mon 2026-03-30 09:00 CEST"
    zone = ZoneInfo("Europe/Paris")
    for minute in (0, 120, 150, 180, 540, 1440):
        day = date(2026, 3, 29)
        assert hours._at_wall_clock(day, minute, zone) == (
            hours._at_wall_clock.__wrapped__(day, minute, zone)
        )
    skipped = hours._at_wall_clock(date(2026, 3, 29), 150, zone)
    assert skipped.strftime("%H:%M %Z") == "03:00 CEST"
