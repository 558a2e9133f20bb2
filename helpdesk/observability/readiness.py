"""Readiness: can this process serve? The database, Redis and the broker answer.

`/healthz` is liveness (the process answers HTTP at all, no dependency touched);
`/readyz` runs `check_readiness`: the three checks run at once on a small thread
pool, each with a connect/read timeout of CHECK_TIMEOUT seconds, and the whole is
bounded by TOTAL_TIMEOUT (a check still running then is reported "timeout"). A
dependency this deployment does not use (the demo: no REDIS_URL, the in-memory
broker) is reported "not used" and does not fail readiness. Errors name only the
exception's class: never a URL, a host's credentials or a message from the server.

Each process answers from a result at most CACHE_SECONDS old, so a flood of probes
opens at most one set of connections a second.
"""

import copy
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypedDict

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import load_backend
from kombu import Connection

from helpdesk.observability.queues import ONE_ATTEMPT, TIMEOUT_SECONDS, broker_kind

CHECK_TIMEOUT = 1.5
TOTAL_TIMEOUT = 2.0
CACHE_SECONDS = 1.0
OK = "ok"
NOT_USED = "not used"
FAILED = "failed"
TIMEOUT = "timeout"


class CheckResult(TypedDict, total=False):
    status: str
    error: str


class Readiness(TypedDict):
    ready: bool
    checks: dict[str, CheckResult]


def check_database() -> str:
    """Open a new connection to the default database (not from the pool: the
    pool's wait is long) and ask it SELECT 1."""
    config = copy.deepcopy(connections.settings[DEFAULT_DB_ALIAS])
    options = config.setdefault("OPTIONS", {})
    options.pop("pool", None)
    if config["ENGINE"].endswith("sqlite3"):
        options["timeout"] = CHECK_TIMEOUT
    else:
        options["connect_timeout"] = max(1, round(CHECK_TIMEOUT))
    wrapper = load_backend(config["ENGINE"]).DatabaseWrapper(config, DEFAULT_DB_ALIAS)
    try:
        wrapper.ensure_connection()
        if not wrapper.is_usable():
            raise ConnectionError("the database did not answer SELECT 1")
    finally:
        wrapper.close()
    return OK


def _ping_redis(url: str) -> None:
    client = redis.Redis.from_url(
        url,
        socket_timeout=CHECK_TIMEOUT,
        socket_connect_timeout=CHECK_TIMEOUT,
        retry_on_timeout=False,
    )
    try:
        client.ping()
    finally:
        client.close()


def check_redis() -> str:
    """PING the Redis of the cache and channel layer, when one is configured."""
    url = settings.REDIS_URL
    if not url:
        return NOT_USED
    _ping_redis(url)
    return OK


def check_broker() -> str:
    """Reach the Celery broker: PING for Redis, an AMQP handshake for RabbitMQ."""
    url = settings.CELERY_BROKER_URL
    kind = broker_kind(url)
    if kind == "redis":
        _ping_redis(url)
        return OK
    if kind == "amqp":
        with Connection(
            url,
            connect_timeout=CHECK_TIMEOUT,
            transport_options={
                "read_timeout": TIMEOUT_SECONDS,
                "write_timeout": TIMEOUT_SECONDS,
            },
        ) as connection:
            connection.ensure_connection(**ONE_ATTEMPT)
        return OK
    return NOT_USED


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "redis": check_redis,
    "broker": check_broker,
}

_pool = ThreadPoolExecutor(max_workers=len(CHECKS) * 2, thread_name_prefix="readyz")
_cache_lock = threading.Lock()
_cached: tuple[float, Readiness] | None = None


def _run(check: Callable[[], str]) -> CheckResult:
    try:
        return {"status": check()}
    except Exception as exc:
        return {"status": FAILED, "error": type(exc).__name__}


def run_checks() -> Readiness:
    """Run every check now, in parallel, within TOTAL_TIMEOUT."""
    futures: dict[str, Future[CheckResult]] = {
        name: _pool.submit(_run, check) for name, check in CHECKS.items()
    }
    wait(futures.values(), timeout=TOTAL_TIMEOUT)
    checks: dict[str, CheckResult] = {}
    for name, future in futures.items():
        if future.done():
            checks[name] = future.result()
        else:
            future.cancel()
            checks[name] = {"status": TIMEOUT}
    ready = all(result["status"] in (OK, NOT_USED) for result in checks.values())
    return {"ready": ready, "checks": checks}


def check_readiness() -> Readiness:
    """The readiness of this process's dependencies, at most CACHE_SECONDS old."""
    global _cached
    with _cache_lock:
        now = time.monotonic()
        if _cached is not None and now - _cached[0] < CACHE_SECONDS:
            return _cached[1]
        result = run_checks()
        _cached = (time.monotonic(), result)
        return result


def forget_cached() -> None:
    """Drop the cached answer (tests, and after a configuration change)."""
    global _cached
    with _cache_lock:
        _cached = None
