"""The spike detector on constructed series: a real spike, a daily rhythm, a
quiet brand, a daylight-saving change and a brand with no history."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from spikes.detector import (
    BUCKET,
    Assessment,
    DetectorSettings,
    Verdict,
    assess,
    baseline_windows,
    floor_bucket,
    seasonal_samples,
)

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 12, 7, 9, 35, tzinfo=UTC)  # a Monday, 10:35 in Paris


def series(
    start: datetime, end: datetime, count: Callable[[datetime], int]
) -> dict[datetime, int]:
    """Five-minute counts from `start` to `end`, `count(bucket)` each."""
    counts, moment = {}, floor_bucket(start)
    while moment < end:
        counts[moment] = count(moment)
        moment += BUCKET
    return counts


def judge(
    counts: dict[datetime, int],
    bucket: datetime,
    current: int,
    *,
    tz: ZoneInfo = PARIS,
    history_start: datetime | None = None,
    settings: DetectorSettings = DetectorSettings(),  # noqa: B008
) -> Assessment:
    start = history_start if history_start is not None else min(counts, default=None)
    weeks = seasonal_samples(counts, baseline_windows(bucket, tz), history_start=start)
    return assess(current, weeks, settings=settings)


def test_a_burst_far_above_the_usual_hour_is_a_spike() -> None:
    # About 6 a bucket at this hour every week, with one earlier spike of 60
    # (an outlier the median and MAD ignore).
    history = series(
        NOW - timedelta(weeks=5),
        NOW - BUCKET,
        lambda b: 60 if b == NOW - timedelta(weeks=2) else 5 + b.minute % 3,
    )
    result = judge(history, NOW, 40)
    assert result.verdict is Verdict.SPIKE
    assert result.weeks == 4
    assert result.median == 6.0
    assert result.mad == 1.0
    assert result.scale == pytest.approx(6**0.5)
    assert result.threshold == pytest.approx(6 + 5 * 6**0.5)  # 18.25
    assert judge(history, NOW, 18).verdict is Verdict.NORMAL
    assert judge(history, NOW, 19).verdict is Verdict.SPIKE


def test_a_daily_rush_hour_is_not_a_spike() -> None:
    # 50 a bucket from 10:00 to 11:00 Paris time every day, 2 otherwise: the rush
    # is compared with earlier rushes, not with the quiet night before it.
    def rhythm(bucket: datetime) -> int:
        return 50 if bucket.astimezone(PARIS).hour == 10 else 2

    history = series(NOW - timedelta(weeks=5), NOW - BUCKET, rhythm)
    rush = judge(history, NOW, 55)
    assert rush.verdict is Verdict.NORMAL
    assert rush.median == 50.0
    assert rush.threshold == pytest.approx(50 + 5 * 50**0.5)  # 85.4
    # The same 55 at 03:00, when 2 is usual, is a spike.
    night = NOW.replace(hour=2)  # 03:00 in Paris
    assert judge(history, night, 55).verdict is Verdict.SPIKE


def test_a_quiet_brand_needs_the_floor_to_alert() -> None:
    # Nothing at all, or one message now and then: the threshold is the floor.
    history = series(
        NOW - timedelta(weeks=5), NOW - BUCKET, lambda b: int(b.minute == 0)
    )
    result = judge(history, NOW, 9)
    assert result.median == 0.0
    assert result.threshold == 10.0
    assert result.verdict is Verdict.NORMAL
    assert judge(history, NOW, 10).verdict is Verdict.SPIKE
    stricter = DetectorSettings(threshold=5, min_count=25)
    assert judge(history, NOW, 24, settings=stricter).verdict is Verdict.NORMAL
    assert judge(history, NOW, 25, settings=stricter).verdict is Verdict.SPIKE


def test_the_baseline_keeps_the_local_hour_across_a_daylight_saving_change() -> None:
    # Paris leaves summer time on Sunday 25 October 2026. A Monday 10:00-11:00
    # local rush is 08:00 UTC in summer and 09:00 UTC in winter.
    monday = datetime(2026, 11, 9, 9, 30, tzinfo=UTC)  # 10:30 in Paris (winter)
    windows = baseline_windows(monday, PARIS)
    assert [start.astimezone(PARIS).hour for start, _ in windows] == [10, 10, 10, 10]
    assert [start.hour for start, _ in windows] == [9, 9, 8, 8]
    assert all(end - start == timedelta(hours=1) for start, end in windows)

    def rush(bucket: datetime) -> int:
        local = bucket.astimezone(PARIS)
        return 40 if local.weekday() == 0 and local.hour == 10 else 1

    history = series(monday - timedelta(weeks=5), monday - BUCKET, rush)
    result = judge(history, monday, 45)
    assert result.median == 40.0
    assert result.verdict is Verdict.NORMAL
    # An hour earlier (09:30 local, usually 1 a bucket), 30 is a spike. Taking
    # the same UTC hour instead would have mixed the summer weeks' rush into its
    # baseline (median 20.5) and missed it.
    early = monday - timedelta(hours=1)
    local = judge(history, early, 30)
    assert (local.median, local.verdict) == (1.0, Verdict.SPIKE)
    utc = judge(history, early, 30, tz=ZoneInfo("UTC"))
    assert (utc.median, utc.verdict) == (20.5, Verdict.NORMAL)


def test_a_brand_without_history_gets_no_verdict_until_two_weeks() -> None:
    assert judge({}, NOW, 500).verdict is Verdict.NOT_ENOUGH_HISTORY
    # Ten days of history: one week's window lies inside it, not enough.
    start = NOW - timedelta(days=10)
    recent = series(start, NOW - BUCKET, lambda b: 3)
    early = judge(recent, NOW, 500)
    assert early.verdict is Verdict.NOT_ENOUGH_HISTORY
    assert early.weeks == 1
    assert not early.is_calm(0)
    # From fifteen days, two weeks: a verdict.
    longer = series(NOW - timedelta(days=15), NOW - BUCKET, lambda b: 3)
    assert judge(longer, NOW, 500).verdict is Verdict.SPIKE


def test_an_open_spike_calms_only_near_the_baseline() -> None:
    history = series(NOW - timedelta(weeks=5), NOW - BUCKET, lambda b: 16)
    result = judge(history, NOW, 100)
    assert result.verdict is Verdict.SPIKE
    assert result.threshold == 36.0  # 16 + 5 * 4
    assert result.calm == 24.0  # 16 + 2 * 4
    assert not result.is_calm(30)
    assert result.is_calm(24)


def test_floor_bucket_truncates_to_five_minutes_in_utc() -> None:
    moment = datetime(2026, 3, 29, 3, 7, 59, tzinfo=PARIS)
    assert floor_bucket(moment) == datetime(2026, 3, 29, 1, 5, tzinfo=UTC)
