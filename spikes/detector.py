"""The spike detector (R13): is this five-minute count unusual for this brand at
this hour of its week? Pure functions, no database.

The baseline is seasonal: the same local hour of the week (the brand's time zone)
over the trailing four weeks, so a Monday-morning rush is compared with earlier
Monday mornings, not with Sunday night. Each week contributes the twelve
five-minute counts of that hour, so a full history is 48 samples.

The statistics are robust: the median of the samples and the median absolute
deviation (MAD), scaled by 1.4826 to estimate a standard deviation. One earlier
spike in the samples moves neither. Counts are small integers, where the MAD is
often 0, so the scale never drops below the Poisson deviation sqrt(median) (and 1).
A count is a spike when it reaches

    threshold = max(min_count, median + k * scale)

with `k` the brand's `spike_threshold` and `min_count` the floor that keeps a
quiet brand (median 0) from alerting on three messages. An open spike ends when a
complete bucket falls back to `calm = median + 2 * scale` or below (hysteresis,
so a spike that hovers at the threshold does not open and close every run).

A week counts only when its window lies inside the brand's history (it had begun
counting by then); with fewer than `min_weeks` such weeks the answer is
NOT_ENOUGH_HISTORY, and nothing is alerted.
"""

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

BUCKET = timedelta(minutes=5)
BUCKETS_PER_HOUR = 12
BASELINE_WEEKS = 4
MAD_TO_SIGMA = 1.4826
CALM_DEVIATIONS = 2.0


class Verdict(StrEnum):
    SPIKE = "spike"
    NORMAL = "normal"
    NOT_ENOUGH_HISTORY = "not_enough_history"


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """A brand's sensitivity: `threshold` robust deviations, never fewer than
    `min_count` messages, and at least `min_weeks` weeks of history."""

    threshold: float = 5.0
    min_count: int = 10
    min_weeks: int = 2


@dataclass(frozen=True, slots=True)
class Assessment:
    """What the detector concluded about one count, with the figures behind it."""

    verdict: Verdict
    count: int
    weeks: int
    median: float
    mad: float
    scale: float
    threshold: float
    calm: float

    @property
    def is_spike(self) -> bool:
        return self.verdict is Verdict.SPIKE

    def is_calm(self, count: int) -> bool:
        """Whether `count` is back near the baseline (an open spike may end)."""
        return self.verdict is not Verdict.NOT_ENOUGH_HISTORY and count <= self.calm


def floor_bucket(moment: datetime) -> datetime:
    """The start (UTC) of the five-minute bucket holding `moment`."""
    moment = moment.astimezone(UTC)
    return moment.replace(
        minute=moment.minute - moment.minute % 5, second=0, microsecond=0
    )


def baseline_windows(
    bucket: datetime, tz: ZoneInfo, *, weeks: int = BASELINE_WEEKS
) -> list[tuple[datetime, datetime]]:
    """The UTC `[start, end)` of the same local hour of the week, 1..`weeks` weeks
    before `bucket`, newest first.

    Computed on the wall clock: across a daylight-saving change the window is the
    same local hour, so its UTC time differs by the change (an hour).
    """
    local = bucket.astimezone(tz).replace(tzinfo=None)
    hour = local.replace(minute=0, second=0, microsecond=0)
    windows = []
    for back in range(1, weeks + 1):
        start = (hour - timedelta(weeks=back)).replace(tzinfo=tz).astimezone(UTC)
        end = (hour - timedelta(weeks=back) + timedelta(hours=1)).replace(tzinfo=tz)
        windows.append((start, end.astimezone(UTC)))
    return windows


def seasonal_samples(
    counts: Mapping[datetime, int],
    windows: Sequence[tuple[datetime, datetime]],
    *,
    history_start: datetime | None,
) -> list[list[int]]:
    """The five-minute counts of each window inside the history (from
    `history_start`, the brand's first counted bucket), a missing bucket as 0."""
    if history_start is None:
        return []
    weeks = []
    for start, end in windows:
        if start < history_start:
            continue
        buckets = range(int((end - start) / BUCKET))
        weeks.append([counts.get(start + n * BUCKET, 0) for n in buckets])
    return weeks


def assess(
    count: int,
    weeks: Sequence[Sequence[int]],
    *,
    settings: DetectorSettings = DetectorSettings(),
) -> Assessment:
    """Judge a five-minute `count` against the samples of the weeks of history.

    `weeks` holds, for each trailing week inside the brand's history, the
    five-minute counts of the same local hour (missing buckets as 0). Fewer
    than `settings.min_weeks` weeks give NOT_ENOUGH_HISTORY.
    """
    samples = [n for week in weeks for n in week]
    if len(weeks) < settings.min_weeks or not samples:
        return Assessment(
            verdict=Verdict.NOT_ENOUGH_HISTORY,
            count=count,
            weeks=len(weeks),
            median=0.0,
            mad=0.0,
            scale=0.0,
            threshold=math.inf,
            calm=math.inf,
        )
    median = float(statistics.median(samples))
    mad = float(statistics.median(abs(n - median) for n in samples))
    scale = max(MAD_TO_SIGMA * mad, math.sqrt(median), 1.0)
    threshold = max(float(settings.min_count), median + settings.threshold * scale)
    calm = median + CALM_DEVIATIONS * scale
    return Assessment(
        verdict=Verdict.SPIKE if count >= threshold else Verdict.NORMAL,
        count=count,
        weeks=len(weeks),
        median=median,
        mad=mad,
        scale=scale,
        threshold=threshold,
        calm=calm,
    )
