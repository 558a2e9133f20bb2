"""Mergeable duration histograms for reports (R9): DDSketch buckets in SQL cells.

A duration in seconds falls in one logarithmic bucket `key(seconds)` of the
maintained `ddsketch` library's mapping at 1% relative accuracy. `ReportBucket`
stores `(dimensions, metric, key) -> count`; merging any set of cells is a SQL
`SUM(count) ... GROUP BY key`, and `quantile()` reads a percentile back from the
merged `{key: count}` the way DDSketch does, within 1% of the exact value
(durations under one second count as one second).
"""

from collections.abc import Iterable, Mapping

from ddsketch.mapping import LogarithmicMapping

RELATIVE_ACCURACY = 0.01
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
# The mapping's constants, for SQL that computes keys the same way
# (helpdesk.services.rollups rebuilds cells set-based).
MULTIPLIER: float = _MAPPING._multiplier
OFFSET: float = _MAPPING._offset


def key(seconds: float) -> int:
    """The bucket of a duration; values below one second count as one second."""
    return int(_MAPPING.key(max(float(seconds), 1.0)))


def value(bucket: int) -> float:
    """The representative duration of a bucket (within 1% of every value in it)."""
    return float(_MAPPING.value(bucket))


def quantile(counts: Mapping[int, int], q: float) -> float | None:
    """The `q` quantile (0..1) of the durations counted in `{key: count}`.

    Lower nearest rank, as DDSketch: the bucket holding the sorted value at index
    `floor(q * (n - 1))`. None when nothing was counted; zero or negative counts
    are ignored.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError("q must lie between 0 and 1")
    items = sorted((k, c) for k, c in counts.items() if c > 0)
    total = sum(c for _, c in items)
    if total == 0:
        return None
    rank = q * (total - 1)
    running = 0
    for bucket, count in items:
        running += count
        if running > rank:
            return value(bucket)
    return value(items[-1][0])  # pragma: no cover - rounding guard


def quantiles(counts: Mapping[int, int], qs: Iterable[float]) -> list[float | None]:
    """Several quantiles of one merged histogram, in the order of `qs`: the same
    values as `quantile` for each, with one sort and one walk for all."""
    wanted = list(qs)
    if any(not 0.0 <= q <= 1.0 for q in wanted):
        raise ValueError("q must lie between 0 and 1")
    items = sorted((k, c) for k, c in counts.items() if c > 0)
    total = sum(c for _, c in items)
    if total == 0:
        return [None] * len(wanted)
    order = sorted(range(len(wanted)), key=lambda n: wanted[n])
    found: list[float | None] = [value(items[-1][0])] * len(wanted)
    running = 0
    position = 0
    for bucket, count in items:
        running += count
        while position < len(order) and running > wanted[order[position]] * (total - 1):
            found[order[position]] = value(bucket)
            position += 1
        if position == len(order):
            break
    return found
