"""Earshot's one rate limiter: the two windows its callers need, failing open.

- `fixed_window_wait`: N requests per window of W seconds aligned to the epoch, a
  counter on the Django cache (any backend). The public status endpoint, the
  Sandbox's API and the send limits of platform accounts (social.sending) use it.
- `sliding_window`: N requests in any W seconds, a sorted set in Redis, decided in
  one pipelined round trip (a refused request is then taken back, so it is not
  counted). The workspace API's DRF throttle uses it (tenants.api_auth).

A limit protects the servers, it does not guard data: when the cache cannot be
reached the request is allowed and a warning logged, so an outage of Redis never
refuses every call. Each caller is one call; the algorithms and their failure
handling live only here. (allauth's login rate limits are allauth's own, set in
settings.ACCOUNT_RATE_LIMITS.)
"""

import hashlib
import itertools
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from tenants.outages import CACHE_ERRORS

logger = logging.getLogger(__name__)

_sequence = itertools.count()


def fixed_window_wait(
    scope: str,
    ident: str,
    *,
    limit: int,
    window: int = 60,
    now: float | None = None,
) -> int | None:
    """Count one request of `ident` in the current window of `window` seconds.

    Returns the seconds until the window ends when this request is over `limit`,
    else None (also when the cache is unreachable, with a warning). `ident` is
    hashed, so it may be a token or an address; `now` is the epoch time (default:
    the clock's). A counter that vanishes between its creation and its increment
    (an eviction, a flush) is counted afresh once, then the limit fails open.
    """
    now = time.time() if now is None else now
    key = _window_key(scope, ident, window, now)
    try:
        used = _count(key, window)
    except CACHE_ERRORS as error:
        logger.warning("%s rate limit not applied, cache unavailable: %r", scope, error)
        return None
    if used is None:
        logger.warning("%s rate limit not applied, its counter vanished", scope)
        return None
    if used > limit:
        return max(1, window - int(now % window))
    return None


def fixed_window_take(
    scope: str,
    ident: str,
    *,
    count: int,
    limit: int,
    window: int = 60,
    now: float | None = None,
) -> int:
    """Take up to `count` requests of `ident` in the current window at once, with
    one counter update (a delivery batch's calls through one account). Returns how
    many were taken, 0 to `count`; the others wait for a later window
    (`fixed_window_wait`, one each). Counted as `count` calls of
    `fixed_window_wait`: a window taken past its limit stays used up. Fails open
    like it (all taken, with a warning)."""
    if count <= 0:
        return 0
    now = time.time() if now is None else now
    key = _window_key(scope, ident, window, now)
    try:
        used = _count(key, window, count)
    except CACHE_ERRORS as error:
        logger.warning("%s rate limit not applied, cache unavailable: %r", scope, error)
        return count
    if used is None:
        logger.warning("%s rate limit not applied, its counter vanished", scope)
        return count
    return max(0, min(count, limit - (used - count)))


def _window_key(scope: str, ident: str, window: int, now: float) -> str:
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return f"{scope}:rl:{digest}:{int(now // window)}"


def _count(key: str, window: int, delta: int = 1) -> int | None:
    for _ in range(2):
        cache.add(key, 0, timeout=window + 10)
        try:
            return int(cache.incr(key, delta))
        except ValueError:
            continue  # the key vanished after add: count afresh
    return None


@dataclass(frozen=True)
class SlidingVerdict:
    """A sliding window's answer: `counted` requests were in the window before
    this refused one, the oldest at `oldest` (the caller's clock)."""

    allowed: bool
    counted: int = 0
    oldest: float | None = None


ALLOWED = SlidingVerdict(allowed=True)


def sliding_window(
    client: Any,
    key: str,
    *,
    limit: int,
    window: float,
    now: float,
    label: str,
    log: logging.Logger = logger,
) -> SlidingVerdict:
    """Count one request in the last `window` seconds of the sorted set `key`, on
    the redis `client`; allowed while at most `limit` are in the window (DRF's
    rule for its throttles).

    One pipelined round trip (drop the expired, add, expire, count, read the
    oldest); a refused request is removed again, so it is not counted. When Redis
    cannot be reached the request is allowed and a warning logged on `log`
    ("<label> rate limit not applied, cache unavailable: ...").
    """
    member = f"{now!r}:{os.getpid()}:{next(_sequence)}"
    try:
        pipe = client.pipeline()
        pipe.zremrangebyscore(key, "-inf", now - window)
        pipe.zadd(key, {member: now})
        pipe.expire(key, max(1, int(window)))
        pipe.zcard(key)
        pipe.zrange(key, 0, 0, withscores=True)
        *_, count, oldest = pipe.execute()
        if count <= limit:
            return ALLOWED
        client.zrem(key, member)
    except CACHE_ERRORS as error:
        log.warning("%s rate limit not applied, cache unavailable: %r", label, error)
        return ALLOWED
    return SlidingVerdict(
        allowed=False, counted=count - 1, oldest=oldest[0][1] if oldest else None
    )
