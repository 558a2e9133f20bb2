"""Mergeable histograms (helpdesk.histograms): DDSketch buckets, merged by adding
counts, read back within 1% of the exact percentiles."""

import math
import random
import statistics
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpdesk import histograms

QS = (0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 1.0)


def exact(values: list[int], q: float) -> float:
    """Lower nearest rank: the sorted value at index floor(q * (n - 1))."""
    ordered = sorted(max(v, 1) for v in values)
    return float(ordered[math.floor(q * (len(ordered) - 1))])


def histogram(values: list[int]) -> Counter[int]:
    return Counter(histograms.key(v) for v in values)


def test_quantiles_of_response_times_lie_within_one_percent_of_exact() -> None:
    rng = random.Random(11)
    values = [int(rng.lognormvariate(7, 2)) for _ in range(20_000)]

    counts = histogram(values)

    for q in QS:
        estimate = histograms.quantile(counts, q)
        assert estimate is not None
        assert abs(estimate - exact(values, q)) <= 0.01 * exact(values, q)
    # The median agrees with the statistics module's as well (an odd count).
    odd = values[:-1]
    median = statistics.median_low(max(v, 1) for v in odd)
    estimate = histograms.quantile(histogram(odd), 0.5)
    assert estimate is not None
    assert abs(estimate - median) <= 0.01 * median


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(
        st.lists(st.integers(0, 10_000_000), min_size=0, max_size=40),
        min_size=1,
        max_size=5,
    ),
    q=st.floats(0, 1),
)
def test_merged_parts_answer_like_the_whole_within_one_percent(
    parts: list[list[int]], q: float
) -> None:
    merged: Counter[int] = Counter()
    for part in parts:
        merged.update(histogram(part))
    values = [v for part in parts for v in part]

    estimate = histograms.quantile(merged, q)

    if not values:
        assert estimate is None
        return
    assert merged == histogram(values)
    assert estimate is not None
    assert abs(estimate - exact(values, q)) <= 0.01 * exact(values, q)


def test_values_below_one_second_count_as_one_second() -> None:
    assert histograms.key(0) == histograms.key(0.4) == histograms.key(1) == 0
    assert histograms.quantile({0: 3}, 0.5) == pytest.approx(1.0, rel=0.01)


def test_empty_or_zero_counts_have_no_quantile_and_q_must_be_a_share() -> None:
    assert histograms.quantile({}, 0.5) is None
    assert histograms.quantile({5: 0}, 0.5) is None
    with pytest.raises(ValueError, match="q must lie between 0 and 1"):
        histograms.quantile({5: 1}, 1.5)


def test_quantiles_reads_several_in_order() -> None:
    counts = histogram([10, 20, 30, 40, 1000])

    p0, p50, p100 = histograms.quantiles(counts, (0, 0.5, 1))

    assert p0 == pytest.approx(10, rel=0.01)
    assert p50 == pytest.approx(30, rel=0.01)
    assert p100 == pytest.approx(1000, rel=0.01)


@settings(max_examples=200, deadline=None)
@given(
    counts=st.dictionaries(st.integers(-5, 2000), st.integers(-2, 50), max_size=60),
    qs=st.lists(st.floats(0, 1), max_size=6),
)
def test_quantiles_in_one_walk_equal_quantile_for_each_share(
    counts: dict[int, int], qs: list[float]
) -> None:
    assert histograms.quantiles(counts, qs) == [
        histograms.quantile(counts, q) for q in qs
    ]


def test_quantiles_refuses_a_share_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="q must lie between 0 and 1"):
        histograms.quantiles({5: 1}, (0.5, -0.1))
