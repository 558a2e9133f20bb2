"""Celery queue depths, read from the broker at scrape time.

Redis: the queue is a list under the queue's name, plus one list per priority
step (kombu's `<name>\\x06\\x16<step>`); the depth is the sum of their LLENs.
RabbitMQ: a passive `queue_declare` answers the queue's ready message count (a
queue not declared yet holds nothing). Each read has a short timeout; a broker
that cannot be read gives depth -1 for every queue and one more
earshot_queue_depth_errors. The demo's in-memory broker has no depth to report.
"""

import logging
from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings
from kombu import Connection
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

logger = logging.getLogger(__name__)

QUEUE_DEPTH_ERRORS = Counter(
    "earshot_queue_depth_errors",
    "Scrapes that could not read the Celery queue depths from the broker.",
)

TIMEOUT_SECONDS = 1.0
# The queues `make serve` runs workers for; the configured default queue and any
# routed queue are added to these.
KNOWN_QUEUES = ("inbound", "delivery", "default")
REDIS_PRIORITY_SEP = "\x06\x16"
REDIS_PRIORITY_STEPS = (3, 6, 9)
# kombu's connect() retries after a pause; a probe tries once and reports.
ONE_ATTEMPT: dict[str, Any] = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0,
    "interval_max": 0,
}


def broker_kind(url: str) -> str:
    """ "redis", "amqp" or "memory" (anything else is reported as it is)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in {"redis", "rediss"}:
        return "redis"
    if scheme in {"amqp", "amqps", "pyamqp"}:
        return "amqp"
    return scheme or "memory"


def queue_names() -> list[str]:
    """The queues to measure: the known ones, the default queue and routed ones."""
    names = set(KNOWN_QUEUES)
    names.add(getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery"))
    for route in settings.CELERY_TASK_ROUTES.values():
        queue = route.get("queue") if isinstance(route, dict) else None
        if isinstance(queue, str) and queue:
            names.add(queue)
    return sorted(names)


def queue_depths(url: str, names: list[str]) -> dict[str, int] | None:
    """Each queue's waiting messages on the broker at `url`; None when there is no
    such thing (memory broker). Raises on a broker that cannot be read."""
    kind = broker_kind(url)
    if kind == "redis":
        return _redis_depths(url, names)
    if kind == "amqp":
        return _amqp_depths(url, names)
    return None


def _redis_depths(url: str, names: list[str]) -> dict[str, int]:
    client = redis.Redis.from_url(
        url,
        socket_timeout=TIMEOUT_SECONDS,
        socket_connect_timeout=TIMEOUT_SECONDS,
        retry_on_timeout=False,
    )
    try:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.llen(name)
            for step in REDIS_PRIORITY_STEPS:
                pipe.llen(f"{name}{REDIS_PRIORITY_SEP}{step}")
        lengths = [int(value) for value in pipe.execute()]
    finally:
        client.close()
    per_queue = 1 + len(REDIS_PRIORITY_STEPS)
    return {
        name: sum(lengths[i * per_queue : (i + 1) * per_queue])
        for i, name in enumerate(names)
    }


def _amqp_depths(url: str, names: list[str]) -> dict[str, int]:
    depths = {}
    with Connection(
        url,
        connect_timeout=TIMEOUT_SECONDS,
        transport_options={
            "read_timeout": TIMEOUT_SECONDS,
            "write_timeout": TIMEOUT_SECONDS,
        },
    ) as connection:
        connection.ensure_connection(**ONE_ATTEMPT)
        for name in names:
            channel: Any = connection.channel()
            try:
                _, count, _ = channel.queue_declare(queue=name, passive=True)
                depths[name] = int(count)
            except connection.channel_errors:
                depths[name] = 0  # not declared yet: nothing was ever queued
            finally:
                _close_quietly(channel)
    return depths


def _close_quietly(channel: Any) -> None:
    try:
        channel.close()
    except Exception:
        logger.debug("closing the broker channel failed", exc_info=True)


class QueueDepthCollector:
    """Yields earshot_queue_depth{queue} for the configured broker, at each scrape."""

    def collect(self) -> Iterator[Metric]:
        names = queue_names()
        try:
            depths = queue_depths(settings.CELERY_BROKER_URL, names)
        except Exception as exc:
            logger.warning("queue depths unavailable: %s", type(exc).__name__)
            QUEUE_DEPTH_ERRORS.inc()
            depths = dict.fromkeys(names, -1)
        if depths is None:
            return
        family = GaugeMetricFamily(
            "earshot_queue_depth",
            "Messages waiting in each Celery queue, read from the broker at scrape "
            "time (-1: the broker could not be read).",
            labels=["queue"],
        )
        for name in names:
            family.add_metric([name], depths[name])
        yield family

    def describe(self) -> list[Metric]:
        return []
