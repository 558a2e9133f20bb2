"""Report quantiles read per group (helpdesk.reports._group_quantiles) are the
floats histograms.quantiles reads from the same cells merged in Python.

The report selectors ask PostgreSQL for one row per group (its keys and counts
as arrays in key order, walked in Python) instead of fetching every histogram
cell; these tests compare the two on random cells, on every rank of small
histograms (where q * (total - 1) lands on or next to an integer), across a
UNION ALL whose parts repeat keys, on cells not summed per key first, and with
zero counts.
"""

import random
from datetime import date, timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import QuerySet, Sum
from django.test.utils import CaptureQueriesContext

from helpdesk import histograms
from helpdesk.models import ReportBlockBucket
from helpdesk.reports import _group_quantiles, _python_quantiles
from tenants.context import tenant_context
from tenants.models import Brand, Tenant
from tests.helpdesk.report_support import first_brand

pytestmark = pytest.mark.django_db

SHARES = (0.0, 0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0)
DAY = date(2026, 3, 2)


def _cells(brand: Brand, rows: list[tuple[int, str, int, int, int]]) -> None:
    """Block cells (agent_id, follower_band, day offset, key, count)."""
    ReportBlockBucket.objects.bulk_create(
        ReportBlockBucket(
            brand=brand,
            metric="first_raw",
            agent_id=agent_id,
            follower_band=band,
            span=1,
            day=DAY + timedelta(days=offset),
            key=key,
            count=count,
        )
        for agent_id, band, offset, key, count in rows
    )


def _by_agent(queryset: QuerySet[Any]) -> QuerySet[Any]:
    result: QuerySet[Any] = (
        queryset.values("agent_id", "key")
        .annotate(n=Sum("count"))
        .values_list("agent_id", "key", "n")
    )
    return result


def _oracle(
    rows: list[tuple[Any, ...]], groups: int
) -> dict[tuple[Any, ...], list[float | None]]:
    """histograms.quantiles over each group's cells, merged by hand."""
    merged: dict[tuple[Any, ...], dict[int, int]] = {}
    for row in rows:
        cells = merged.setdefault(tuple(row[:groups]), {})
        cells[row[groups]] = cells.get(row[groups], 0) + row[groups + 1]
    return {
        group: histograms.quantiles(cells, SHARES)
        for group, cells in merged.items()
        if any(count > 0 for count in cells.values())
    }


def test_random_histograms_give_the_same_floats(tenant: Tenant) -> None:
    brand = first_brand(tenant)
    chance = random.Random(20261207)
    rows = []
    for agent_id in range(1, 41):
        keys = chance.sample(range(-50, 1500), chance.randint(1, 120))
        for key in keys:
            count = chance.choice((0, 1, 1, 2, 3, 7, 40, chance.randint(1, 10**6)))
            rows.append((agent_id, "", 0, key, count))
    with tenant_context(tenant):
        _cells(brand, rows)
        queryset = _by_agent(ReportBlockBucket.objects.all())
        expected = _oracle([(a, k, n) for a, _, _, k, n in rows], 1)
        assert _python_quantiles(list(queryset), 1, SHARES) == expected
        with CaptureQueriesContext(connection) as captured:
            found = _group_quantiles(queryset, 1, SHARES)
    assert found == expected
    assert len(found) == len({a for a, _, _, _, n in rows if n > 0})
    assert len(captured.captured_queries) == 1


def test_every_rank_of_small_histograms(tenant: Tenant) -> None:
    # Histograms of 1..80 values, one per bucket (and a heavy one at each end):
    # each share's rank q * (total - 1) takes every position, on and between
    # integers, where an exact decimal and a double could disagree.
    brand = first_brand(tenant)
    rows: list[tuple[int, str, int, int, int]] = []
    for total in range(1, 81):
        rows.extend((total, "", 0, 100 + n, 1) for n in range(total))
        rows.append((1000 + total, "", 0, 5, total))
        rows.extend((1000 + total, "", 0, 6 + n, 1) for n in range(total))
    with tenant_context(tenant):
        _cells(brand, rows)
        found = _group_quantiles(_by_agent(ReportBlockBucket.objects.all()), 1, SHARES)
    assert found == _oracle([(a, k, n) for a, _, _, k, n in rows], 1)
    # Three values: ranks 0, 0.2, 0.5, 1, 1.8, 1.9, 1.98 and 2.
    keys = (100, 100, 100, 101, 101, 101, 101, 102)
    assert found[(3,)] == [histograms.value(key) for key in keys]


def test_union_parts_add_up_per_group_and_key(tenant: Tenant) -> None:
    # Two groups (band, day) and the same keys in both parts of a UNION ALL,
    # as the coarse blocks and the hourly edges of a period.
    brand = first_brand(tenant)
    chance = random.Random(7)
    rows = [
        (agent_id, band, offset, chance.randint(0, 40), chance.randint(0, 9))
        for agent_id in (0, 1)
        for band in ("small", "large")
        for offset in range(3)
        for _ in range(30)
    ]
    rows = list({row[:4]: row for row in rows}.values())
    with tenant_context(tenant):
        _cells(brand, rows)

        def part(agent_id: int) -> QuerySet[Any]:
            result: QuerySet[Any] = (
                ReportBlockBucket.objects.filter(agent_id=agent_id)
                .values("follower_band", "day", "key")
                .annotate(n=Sum("count"))
                .values_list("follower_band", "day", "key", "n")
            )
            return result

        union = part(0).union(part(1), all=True)
        found = _group_quantiles(union, 2, SHARES)
        fetched = _python_quantiles(list(union), 2, SHARES)
    expected = _oracle(
        [(band, DAY + timedelta(days=offset), k, n) for _, band, offset, k, n in rows],
        2,
    )
    assert found == expected
    assert fetched == expected
    assert len(found) == 6


def test_groups_with_only_zero_counts_are_left_out(tenant: Tenant) -> None:
    brand = first_brand(tenant)
    with tenant_context(tenant):
        _cells(brand, [(1, "", 0, 10, 0), (1, "", 0, 11, 0), (2, "", 0, 10, 0)])
        _cells(brand, [(2, "", 0, 12, 4)])
        queryset = _by_agent(ReportBlockBucket.objects.all())
        found = _group_quantiles(queryset, 1, (0.5, 0.9))
        fetched = _python_quantiles(list(queryset), 1, (0.5, 0.9))
    assert found == {(2,): [histograms.value(12), histograms.value(12)]}
    assert fetched == found


def test_no_rows_and_an_empty_filter_give_nothing(tenant: Tenant) -> None:
    with tenant_context(tenant):
        queryset = _by_agent(ReportBlockBucket.objects.all())
        assert _group_quantiles(queryset, 1, (0.5,)) == {}
        with CaptureQueriesContext(connection) as captured:
            empty = _group_quantiles(queryset.filter(pk__in=[]), 1, (0.5,))
    assert empty == {}
    assert captured.captured_queries == []


def test_cells_not_summed_per_key_first_give_the_same_floats(tenant: Tenant) -> None:
    # The time series reads its one-day cells as they are (no GROUP BY): here
    # each agent's keys repeat over several days, so a key comes in several
    # rows, and the walk adds them up.
    brand = first_brand(tenant)
    chance = random.Random(31)
    rows = [
        (agent_id, "", offset, key, chance.choice((0, 1, 2, 5, 900)))
        for agent_id in range(1, 9)
        for offset in range(4)
        for key in chance.sample(range(0, 60), 25)
    ]
    with tenant_context(tenant):
        _cells(brand, rows)
        queryset = ReportBlockBucket.objects.values_list("agent_id", "key", "count")
        with CaptureQueriesContext(connection) as captured:
            found = _group_quantiles(queryset, 1, SHARES)
        fetched = _python_quantiles(list(queryset), 1, SHARES)
    expected = _oracle([(a, k, n) for a, _, _, k, n in rows], 1)
    assert found == expected
    assert fetched == expected
    assert len(found) == 8
    assert len(captured.captured_queries) == 1
