"""Acknowledgements counted in plain ints and folded into the Prometheus histogram
before it is read (helpdesk/metrics.py, issue 12 item 6).

Each test swaps in a fresh earshot_webhook_ack_seconds in a registry of its own and
compares it with a plain Histogram that observed the same acknowledgements one by
one, as the hook did before.
"""

import asyncio
import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from helpdesk import metrics

NAME = "earshot_webhook_ack_seconds"
HELP = "acks"


@pytest.fixture
def folded(monkeypatch: pytest.MonkeyPatch) -> CollectorRegistry:
    """A fresh folded histogram as metrics.WEBHOOK_ACK_SECONDS, with no counts."""
    registry = CollectorRegistry()
    histogram = metrics._FoldedHistogram(
        NAME,
        HELP,
        ["platform", "status"],
        buckets=metrics.ACK_BUCKETS,
        registry=registry,
    )
    monkeypatch.setattr(metrics, "WEBHOOK_ACK_SECONDS", histogram)
    monkeypatch.setattr(metrics, "_ack_series", {})
    monkeypatch.setattr(metrics, "_ack_by_labels", {})
    monkeypatch.setattr(metrics, "_ack_waiting", [])
    monkeypatch.setattr(metrics, "_fold_due", False)
    monkeypatch.setattr(metrics, "_multiprocess", False)
    return registry


def eager() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    histogram = Histogram(
        NAME,
        HELP,
        ["platform", "status"],
        buckets=metrics.ACK_BUCKETS,
        registry=registry,
    )
    return registry, histogram


def acknowledgements(count: int, seed: int) -> list[tuple[str, int, float]]:
    """Platforms known and not, several statuses, durations on and around every
    bucket bound, tiny and past the last bound."""
    rng = random.Random(seed)
    durations = [
        *metrics.ACK_BUCKETS,
        *(bound * 1.000001 for bound in metrics.ACK_BUCKETS),
        0.0,
        1e-7,
        3.7,
        30.0,
    ]
    out = []
    for _ in range(count):
        seconds = rng.choice(durations) if rng.random() < 0.3 else rng.random() / 20
        platform = rng.choice(["sandbox", "sandbox", "instagram", "myspace", "x"])
        out.append((platform, rng.choice([200, 200, 200, 401, 404, 503]), seconds))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_exposition_is_the_one_observed_one_by_one(
    folded: CollectorRegistry, seed: int
) -> None:
    reference, histogram = eager()
    acks = acknowledgements(3000, seed)
    for n, (platform, status, seconds) in enumerate(acks):
        metrics.observe_webhook_ack(platform, status, seconds)
        histogram.labels(metrics._platform(platform), str(status)).observe(seconds)
        if n in (10, 1500):  # scrapes in between fold what was counted so far
            assert generate_latest(folded) == generate_latest(reference)
    assert generate_latest(folded) == generate_latest(reference)
    assert b'platform="other",status="404"' in generate_latest(folded)


def test_an_acknowledgement_is_counted_without_touching_the_histogram(
    folded: CollectorRegistry,
) -> None:
    metrics.observe_webhook_ack("sandbox", 200, 0.003)
    child = metrics.WEBHOOK_ACK_SECONDS.labels("sandbox", "200")
    assert (child._sum.get(), [b.get() for b in child._buckets]) == (0.0, [0.0] * 12)
    assert folded.get_sample_value(f"{NAME}_count", _labels()) == 1
    assert child._sum.get() == 0.003


def test_in_multiprocess_mode_a_loop_folds_within_its_interval(
    folded: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # There the scrape reads every process's files, not this histogram.
    monkeypatch.setattr(metrics, "_multiprocess", True)
    monkeypatch.setattr(metrics, "FOLD_SECONDS", 0.05)
    child = metrics.WEBHOOK_ACK_SECONDS.labels("sandbox", "200")

    async def acknowledge() -> list[float]:
        seen = []
        for _ in range(3):
            metrics.observe_webhook_ack("sandbox", 200, 0.003)
        seen.append(child._buckets[2].get())
        await asyncio.sleep(0.2)
        seen.append(child._buckets[2].get())
        return seen

    assert asyncio.run(acknowledge()) == [0.0, 3.0]
    assert metrics._fold_due is False
    # Without a running loop (a sync caller) it is folded at once.
    metrics.observe_webhook_ack("sandbox", 200, 0.003)
    assert child._buckets[2].get() == 4.0


def test_a_bad_status_is_dropped_and_does_not_raise(folded: CollectorRegistry) -> None:
    metrics.observe_webhook_ack("sandbox", "not a status", 0.1)  # type: ignore[arg-type]
    metrics.observe_webhook_ack("sandbox", 200, float("nan"))
    reference, histogram = eager()
    histogram.labels("sandbox", "200").observe(float("nan"))
    assert generate_latest(folded) == generate_latest(reference)


def _labels() -> dict[str, str]:
    return {"platform": "sandbox", "status": "200"}
