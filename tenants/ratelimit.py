"""Earshot's one rate limiter: the two windows its callers need, failing open.

- `fixed_window_wait`: N requests per window of W seconds aligned to the epoch, a
  counter on the Django cache (any backend). The public status endpoint, the
  Sandbox's API and the send limits of platform accounts (social.sending) use it.
- `sliding_window`: N requests in any W seconds, a sorted set in Redis, decided in
  one round trip by a Lua script (a refused request is taken back, so it is not
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
from weakref import WeakKeyDictionary

from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache

from tenants.outages import CACHE_ERRORS
from tenants.resp import ScriptCall, run_script, run_scripts

logger = logging.getLogger(__name__)

_sequence = itertools.count()
# os.getpid() is a system call on every request; a forked child learns its own.
_pid = os.getpid()


def _new_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_new_pid)


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


# One redis client per cache backend: Django's RedisCache builds a new client (with
# its table of ~170 reply parsers, about 50 us of CPU) for every operation, and the
# limits run on every API request and every Sandbox call. The client shares the
# backend's connection pool.
_clients: "WeakKeyDictionary[Any, Any]" = WeakKeyDictionary()


def redis_client(backend: Any) -> Any | None:
    """The redis client of a Redis cache backend (None for other backends)."""
    if not isinstance(backend, RedisCache):
        return None
    holder = backend._cache
    client = _clients.get(holder)
    if client is None:
        client = _clients[holder] = holder.get_client(write=True)
    return client


def _window_key(scope: str, ident: str, window: int, now: float) -> str:
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return f"{scope}:rl:{digest}:{int(now // window)}"


def _count(key: str, window: int, delta: int = 1) -> int | None:
    backend = caches[DEFAULT_CACHE_ALIAS]
    client = redis_client(backend)
    if client is not None:
        # add + incr in one round trip (Django's incr is EXISTS then INCRBY: three),
        # over tenants.resp's plain socket when the pool is plain TCP.
        name = backend.make_and_validate_key(key)
        return int(
            run_script(client, _COUNT_SHA, _COUNT_LUA, 1, name, delta, window + 10)
        )
    for _ in range(2):
        cache.add(key, 0, timeout=window + 10)
        try:
            return int(cache.incr(key, delta))
        except ValueError:
            continue  # the key vanished after add: count afresh
    return None


# KEYS[1] the window's counter; ARGV: the delta, the counter's lifetime in seconds.
# cache.add(key, 0, timeout) then cache.incr(key, delta), atomically.
_COUNT_LUA = """
redis.call('SET', KEYS[1], 0, 'NX', 'EX', ARGV[2])
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""
_COUNT_SHA = hashlib.sha1(_COUNT_LUA.encode(), usedforsecurity=False).hexdigest()


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
    also: ScriptCall | None = None,
) -> SlidingVerdict:
    """Count one request in the last `window` seconds of the sorted set `key`, on
    the redis `client`; allowed while at most `limit` are in the window (DRF's
    rule for its throttles).

    One round trip: a Lua script (EVALSHA; EVAL once when this Redis does not
    know it yet; over tenants.resp's plain socket when the client's pool is plain
    TCP) drops the expired, adds, expires, counts and, over the limit,
    reads the oldest and removes the request again, so a refused one is not
    counted. When Redis cannot be reached the request is allowed and a warning
    logged on `log` ("<label> rate limit not applied, cache unavailable: ...").

    `also`: another caller's script sent in the same round trip
    (tenants.resp.run_scripts); its reply, or the error that kept it from
    Redis, goes to `also.answer` before the verdict is made.
    """
    member = f"{now!r}:{_pid}:{next(_sequence)}"
    args = (key, now - window, now, member, max(1, int(window)), limit)
    try:
        if also is None:
            reply = run_script(client, _SLIDING_SHA, _SLIDING_LUA, 1, *args)
        else:
            reply = _with(client, args, also)
    except CACHE_ERRORS as error:
        log.warning("%s rate limit not applied, cache unavailable: %r", label, error)
        return ALLOWED
    count = int(reply[0])
    if count <= limit:
        return ALLOWED
    return SlidingVerdict(
        allowed=False,
        counted=count - 1,
        oldest=float(reply[1]) if len(reply) > 1 else None,
    )


def _with(client: Any, args: tuple[Any, ...], also: ScriptCall) -> Any:
    """The window's reply, `also`'s sent along (and answered, whatever happens)."""
    try:
        reply, other = run_scripts(
            client,
            [
                (_SLIDING_SHA, _SLIDING_LUA, 1, args),
                (also.sha, also.script, also.numkeys, also.args),
            ],
        )
    except BaseException as error:
        also.answer(error)
        raise
    also.answer(other)
    if isinstance(reply, BaseException):
        raise reply
    return reply


# KEYS[1] the window's sorted set; ARGV: the window's start (older scores go),
# now, this request's member, the key's lifetime in seconds, the limit. Returns
# {count} or, over the limit, {count, oldest score} (read before the request is
# taken back, as the pipeline did).
_SLIDING_LUA = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local count = redis.call('ZCARD', KEYS[1])
if count <= tonumber(ARGV[5]) then
  return {count}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
redis.call('ZREM', KEYS[1], ARGV[3])
return {count, oldest[2]}
"""
_SLIDING_SHA = hashlib.sha1(_SLIDING_LUA.encode(), usedforsecurity=False).hexdigest()
