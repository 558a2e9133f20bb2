"""Prometheus metrics: the counters, one small hook per event, and the scrape.

Code paths call the `count_*`/`observe_*` hooks with one line. A hook never raises
into its caller: a metrics failure must not fail a webhook, a delivery or a sweep,
so each one logs at debug level and returns. Labels are bounded on purpose: a
platform outside settings.SOCIAL_PLATFORMS is "other", and no metric carries a
tenant, user, conversation or any other unbounded or personal value.

With PROMETHEUS_MULTIPROC_DIR set (`make serve`: two uvicorn workers and several
Celery workers), prometheus_client keeps every process's values in files in that
directory and the scrape sums them (`render_metrics`); the serving command empties
the directory before it starts the processes, and each process marks itself dead
on exit so its live gauges (websocket connections) drop out. Without it (the demo,
the tests) the values live in this process's default registry.
"""

import asyncio
import atexit
import logging
import os
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from typing import Any

from django.conf import settings
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from helpdesk.observability.queues import QueueDepthCollector

logger = logging.getLogger(__name__)

# No `_created` series beside every counter and histogram: they double the
# exposition and nothing here reads them.
disable_created_metrics()

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"


class _FoldedHistogram(Histogram):
    """WEBHOOK_ACK_SECONDS: what is counted is folded in before it is read."""

    def collect(self) -> Iterable[Metric]:
        fold_webhook_acks()
        return super().collect()


# The webhook acknowledgement budget is p99 < 20 ms (DESIGN §6): buckets around it.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

WEBHOOK_ACK_SECONDS = _FoldedHistogram(
    "earshot_webhook_ack_seconds",
    "Time from a platform's webhook POST to its answer, by platform and HTTP "
    "status (the _count is the number of acknowledgements).",
    ["platform", "status"],
    buckets=ACK_BUCKETS,
)
INGEST_ITEMS = Counter(
    "earshot_ingest_items",
    "Inbound items recorded as new customer messages, by platform.",
    ["platform"],
)
DELIVERIES = Counter(
    "earshot_deliveries",
    "Reply delivery attempts by outcome: sent, failed (final), retried (transient "
    "error, tried again later).",
    ["platform", "outcome"],
)
WEBSOCKET_CONNECTIONS = Gauge(
    "earshot_websocket_connections",
    "Open websocket connections by consumer kind.",
    ["consumer"],
    multiprocess_mode="livesum",
)
SLA_BREACHES = Counter(
    "earshot_sla_breaches",
    "SLA response clocks recorded as breached, by clock kind (first, next).",
    ["kind"],
)
OUTBOUND_WEBHOOK_FAILURES = Counter(
    "earshot_outbound_webhook_failures",
    "Failed outbound webhook attempts by reason: refused (SSRF guard), timeout, "
    "connect, redirect, http_4xx, http_5xx, other.",
    ["reason"],
)

DELIVERY_OUTCOMES = frozenset({"sent", "failed", "retried"})
SLA_KINDS = frozenset({"first", "next"})
FAILURE_REASONS = (
    "refused",
    "timeout",
    "connect",
    "redirect",
    "http_4xx",
    "http_5xx",
    OTHER,
)
CONSUMERS = ("inbox",)


def initialise_series() -> None:
    """Create every known label set at zero, so a rate or an alert has a series to
    read before the first event (an absent series is not a zero). Called when the
    app is ready (it reads settings); idempotent."""
    for platform in (*settings.SOCIAL_PLATFORMS, OTHER):
        INGEST_ITEMS.labels(platform)
        for outcome in DELIVERY_OUTCOMES:
            DELIVERIES.labels(platform, outcome)
    for kind in SLA_KINDS:
        SLA_BREACHES.labels(kind)
    for reason in FAILURE_REASONS:
        OUTBOUND_WEBHOOK_FAILURES.labels(reason)
    for consumer in CONSUMERS:
        WEBSOCKET_CONNECTIONS.labels(consumer)


def _platform(value: object) -> str:
    text = str(value)
    return text if text in settings.SOCIAL_PLATFORMS else OTHER


def _never_raises[**P](hook: Callable[P, None]) -> Callable[P, None]:
    @wraps(hook)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            hook(*args, **kwargs)
        except Exception:
            logger.debug("metrics hook %s failed", hook.__name__, exc_info=True)

    return guarded


# -- acknowledgements, counted now and folded into the histogram later --------------
# An acknowledgement is observed on the event loop for every webhook delivery:
# Histogram.observe cost about 3 us there (a lock and a value per bucket and sum),
# and 11-15 us with PROMETHEUS_MULTIPROC_DIR (each value is a write to a mapped
# file). Each label set's observations are counted in plain ints instead, and
# folded into WEBHOOK_ACK_SECONDS before the histogram is read: at every collect in
# this process (the scrape, when not in multiprocess mode), and, in multiprocess
# mode (where another process reads the files), within FOLD_SECONDS of the first
# observation not yet folded, and at exit. The folded values are the ones
# observe() would have given: the counts are integers, and the sum is kept as
# observe() adds it, one amount at a time, in order.
FOLD_SECONDS = 1.0
_ACK_BOUNDS = (*ACK_BUCKETS, float("inf"))


class _AckSeries:
    """One label set: its histogram child and what is not yet folded into it."""

    __slots__ = ("child", "counts", "total", "waiting")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.counts = [0] * len(_ACK_BOUNDS)
        self.total: float = child._sum.get()  # the child's sum, kept as observe() does
        self.waiting = False  # in _ack_waiting


_ack_lock = threading.Lock()
# Looked up once each (the key space is bounded: a platform name outside the list
# is kept under its label's series, not its own key).
_ack_series: dict[tuple[str, int], _AckSeries] = {}
_ack_by_labels: dict[tuple[str, str], _AckSeries] = {}
_ack_waiting: list[_AckSeries] = []
_fold_due = False  # multiprocess mode: a fold is scheduled


@_never_raises
def observe_webhook_ack(platform: str, status: int, seconds: float) -> None:
    """One webhook POST answered with `status` after `seconds`."""
    series = _ack_series.get((platform, status))
    if series is None:
        series = _series_for(platform, status)
    index = bisect_left(_ACK_BOUNDS, seconds)
    with _ack_lock:
        if seconds <= _ACK_BOUNDS[index]:  # as observe(): NaN in no bucket
            series.counts[index] += 1
        series.total += seconds
        if not series.waiting:
            series.waiting = True
            _ack_waiting.append(series)
            if _multiprocess and not _fold_due:
                _schedule_fold()


def _series_for(platform: str, status: int) -> _AckSeries:
    label, code = _platform(platform), str(int(status))
    with _ack_lock:
        series = _ack_by_labels.get((label, code))
        if series is None:
            series = _AckSeries(WEBHOOK_ACK_SECONDS.labels(label, code))
            _ack_by_labels[(label, code)] = series
        if label != OTHER and len(_ack_series) < 1024:
            _ack_series[(platform, status)] = series
    return series


def _schedule_fold() -> None:
    """(Under the lock.) Fold within FOLD_SECONDS on this thread's event loop;
    without one (a sync caller), now."""
    global _fold_due
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _fold_locked()
        return
    _fold_due = True
    loop.call_later(FOLD_SECONDS, fold_webhook_acks)


def fold_webhook_acks() -> None:
    """Fold the acknowledgements counted so far into WEBHOOK_ACK_SECONDS."""
    global _fold_due
    with _ack_lock:
        _fold_due = False
        _fold_locked()


def _fold_locked() -> None:
    for series in _ack_waiting:
        counts, buckets = series.counts, series.child._buckets
        for index, count in enumerate(counts):
            if count:
                buckets[index].inc(count)
                counts[index] = 0
        series.child._sum.set(series.total)
        series.waiting = False
    _ack_waiting.clear()


@_never_raises
def count_ingested(platform: str, count: int = 1) -> None:
    """`count` inbound items of `platform` became new messages."""
    INGEST_ITEMS.labels(_platform(platform)).inc(count)


@_never_raises
def count_deliveries(messages: Iterable[Any], outcome: str) -> None:
    """Reply delivery outcomes (`sent`, `failed`, `retried`) of `messages` (objects
    with a `platform`)."""
    label = outcome if outcome in DELIVERY_OUTCOMES else OTHER
    for message in messages:
        DELIVERIES.labels(_platform(message.platform), label).inc()


@_never_raises
def count_delivery_failure(message: Any) -> None:
    """A recorded failed attempt: `failed` when the message is marked failed (final),
    else `retried` (it stays sending and is tried again)."""
    outcome = "failed" if message.delivery_status == "failed" else "retried"
    DELIVERIES.labels(_platform(message.platform), outcome).inc()


@_never_raises
def count_sla_breach(kind: str) -> None:
    """One SLA clock of `kind` recorded as breached."""
    SLA_BREACHES.labels(kind if kind in SLA_KINDS else OTHER).inc()


@_never_raises
def count_outbound_webhook_failure(outcome: Any) -> None:
    """One failed outbound webhook attempt (a transport PostOutcome); successes are
    not counted here."""
    if outcome.ok:
        return
    OUTBOUND_WEBHOOK_FAILURES.labels(failure_reason(outcome)).inc()


def failure_reason(outcome: Any) -> str:
    """The bounded reason of a failed attempt, from its status code or error text."""
    code = outcome.status_code
    if code is not None:
        if 300 <= code < 400:
            return "redirect"
        if 400 <= code < 500:
            return "http_4xx"
        if code >= 500:
            return "http_5xx"
        return OTHER
    error = str(outcome.error)
    for prefix, reason in (
        ("Refused", "refused"),
        ("Timed out", "timeout"),
        ("Could not connect", "connect"),
    ):
        if error.startswith(prefix):
            return reason
    return OTHER


@_never_raises
def websocket_opened(consumer: str) -> None:
    """A websocket of `consumer` kind (a class name, not a tenant) was accepted."""
    WEBSOCKET_CONNECTIONS.labels(consumer).inc()


@_never_raises
def websocket_closed(consumer: str) -> None:
    """An accepted websocket of `consumer` kind closed."""
    WEBSOCKET_CONNECTIONS.labels(consumer).dec()


# --- the scrape ---------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    """The multiprocess directory when this process runs in that mode, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


class _Collected:
    """A collector that yields another source's metrics (one registry per scrape)."""

    def __init__(self, source: Callable[[], Iterable[Metric]]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source()

    def describe(self) -> list[Metric]:
        return []


def render_metrics() -> tuple[bytes, str]:
    """The Prometheus text exposition of every process's metrics plus the queue
    depths read from the broker now: (body, content type)."""
    registry = CollectorRegistry(auto_describe=False)
    # First: a broker it cannot read counts an error that this scrape then shows.
    registry.register(QueueDepthCollector())
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(_Collected(REGISTRY.collect))
    return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4


def mark_this_process_dead() -> None:
    """Drop this process's live gauges from the multiprocess files (on exit)."""
    directory = multiprocess_dir()
    if directory is None:
        return
    try:
        mark_process_dead(os.getpid(), directory)
    except OSError:
        logger.debug("could not mark process %s dead", os.getpid(), exc_info=True)


def clear_multiprocess_dir(directory: str) -> None:
    """Empty a multiprocess directory of its value files: what a serving command
    runs before it starts the processes (values of a previous run would be summed
    in otherwise)."""
    for entry in os.scandir(directory):
        if entry.is_file() and entry.name.endswith(".db"):
            os.remove(entry.path)


_multiprocess = multiprocess_dir() is not None
if _multiprocess:
    atexit.register(mark_this_process_dead)
    # Registered after: runs before it (atexit runs last in, first out).
    atexit.register(fold_webhook_acks)


def connect_worker_signals() -> None:
    """Mark a Celery pool process dead when it exits (idempotent)."""
    from celery.signals import worker_process_shutdown

    worker_process_shutdown.connect(
        _worker_process_exiting, weak=False, dispatch_uid="earshot-metrics-exit"
    )


def _worker_process_exiting(**_: Any) -> None:
    mark_this_process_dead()
