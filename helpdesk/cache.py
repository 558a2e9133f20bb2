"""Django's Redis cache backend with its connections kept for the whole process.

Django keeps one cache backend per thread and async context (`caches` is a
context-local handler), and each backend builds its own connection pools on
first use. Under ASGI every request runs in a context of its own, so every
request that touched the cache (the API rate limit: all of them) opened a new TCP
connection to Redis, which went away with the request's backend. Django's client
also builds a new `redis.Redis` (with its table of reply parsers) for every
operation.

`RedisCache` here shares one client holder per configuration in the process: the
same connection pools, and one `redis.Redis` per pool, for every backend
instance. redis-py clients are safe to share between threads (each command takes
a connection from the pool) and a pool reconnects after a fork. Everything else
is Django's backend.
"""

import hashlib
import os
import pickle
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches
from django.core.cache.backends import redis as django_redis
from django.core.cache.backends.base import memcache_key_warnings

from tenants.resp import Reply, ScriptCall, run_script


class RedisCacheClient(django_redis.RedisCacheClient):
    """Django's client holder, with one redis client per connection pool."""

    def __init__(self, servers: list[str], **options: Any) -> None:
        super().__init__(servers, **options)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        django: Any = self  # the stubs leave out Django's private helpers
        index = django._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            pool = django._get_connection_pool(write)
            client = self._clients.setdefault(
                index, django._client(connection_pool=pool)
            )
        return client


_holders: dict[tuple[int, str], RedisCacheClient] = {}
_holders_lock = threading.Lock()


class RedisCache(django_redis.RedisCache):
    """Django's RedisCache whose connections outlive the request (see above)."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        django: Any = self  # the stubs leave out Django's private attributes
        django._class = RedisCacheClient
        self._servers: list[str] = django._servers
        self._options: dict[str, Any] = django._options
        self._configuration = repr((self._servers, sorted(self._options.items())))

    @property
    def _cache(self) -> RedisCacheClient:
        # One holder per process and configuration (a forked child builds its own).
        key = (os.getpid(), self._configuration)
        holder = _holders.get(key)
        if holder is None:
            with _holders_lock:
                holder = _holders.get(key)
                if holder is None:
                    holder = _holders[key] = RedisCacheClient(
                        self._servers, **self._options
                    )
        return holder


# Reading ahead: a request that reads several cached answers one after the other
# (an inbound create: routing's presence, the incident-rule flag, the webhook
# endpoints) can read them in one round trip first, one Lua script (`reading_ahead`).
# Each reader takes its answer from there once, then reads as before; what was
# not read ahead (the demo's memory cache and presence, presence kept elsewhere
# than the cache) is read as before. An error of the round trip is raised again
# to each reader, which handles it as it handled an error of its own read.

NOT_READ: Any = object()


class ReadAhead:
    """Answers read together, each handed out once (a second read asks again)."""

    def __init__(
        self,
        values: dict[str, Any],
        online: dict[tuple[str, str], Any],
        error: BaseException | None = None,
    ) -> None:
        self._values = values
        self._online = online
        self._error = error

    def value(self, key: str) -> Any:
        """The default cache's value for `key` (None when absent), or NOT_READ."""
        value = self._values.pop(key, NOT_READ)
        if value is not NOT_READ and self._error is not None:
            raise self._error
        if isinstance(value, _Failed):
            raise value.error
        return value

    def online(self, url: str, presence_key: str) -> set[int] | None:
        """The agents online under the presence key (a tenant's sorted set) of
        the Redis at `url`, or None when not read ahead."""
        members = self._online.pop((url, presence_key), None)
        if members is not None and self._error is not None:
            raise self._error
        if isinstance(members, _Failed):
            raise members.error
        return None if members is None else set(members)


_ahead: ContextVar[ReadAhead | None] = ContextVar("earshot_read_ahead", default=None)


def read_ahead() -> ReadAhead | None:
    """The current request's answers read ahead, if any."""
    return _ahead.get()


@dataclass(frozen=True)
class PresenceRead:
    """A tenant's online agents to read ahead (helpdesk.presence.read_target):
    the sorted set `key` of the Redis at `url`, members scored from `cutoff`,
    their ids parsed by `members`. Described here, built by presence, so that
    this module imports no helpdesk module."""

    url: str
    key: str
    cutoff: float
    members: Callable[[Any], set[int]]


@contextmanager
def reading_ahead(
    keys: Iterable[str], *, presence: PresenceRead | None
) -> Iterator[None]:
    """Read the default cache's `keys` and (`presence`) a tenant's online agents
    in one Redis round trip; the readers inside the block take them from there
    (incident_rules_open, webhook_outbox's endpoints, presence.online). When
    this context read them already along with another script (`read_ahead_call`)
    those answers are used, and nothing is sent."""
    keys = list(keys)
    ahead = _take_prefetched(keys, presence)
    if ahead is NOT_READ:
        ahead = _read(keys, presence)
    token = _ahead.set(ahead)
    try:
        yield
    finally:
        _ahead.reset(token)


# A read made along with another script (the API rate limit's): its keys, its
# presence key, and the answers, for the next reading_ahead of this context.
_prefetched: ContextVar[
    tuple[frozenset[str], tuple[str, str] | None, ReadAhead | None] | None
] = ContextVar("earshot_read_prefetched", default=None)


def read_ahead_call(
    keys: Iterable[str], *, presence: PresenceRead | None
) -> ScriptCall | None:
    """The read of `reading_ahead(keys, presence=presence)` as a script to send
    with another one (tenants.resp.run_scripts; the API rate limit's, before the
    view runs); its answers wait in this context for the next `reading_ahead`
    asking for these keys (or fewer) and the same presence, which then sends
    nothing. None when there is nothing to read in Redis."""
    keys = list(keys)
    plan = _plan(keys, presence)
    if plan is None:
        return None
    target, names, args = plan
    wanted = frozenset(keys)
    presence_key = None if target is None else (target.url, target.key)

    def answer(reply: Reply | BaseException) -> None:
        ahead = _answers(keys, target, reply)
        _prefetched.set((wanted, presence_key, ahead))

    return ScriptCall(_READ_SHA, _READ_LUA, len(names), (*names, *args), answer)


def drop_prefetched() -> None:
    """Forget answers read ahead along with another script and not used."""
    _prefetched.set(None)


def _take_prefetched(keys: list[str], target: PresenceRead | None) -> Any:
    """The answers read ahead for `keys` and `target` (used once), or NOT_READ."""
    found = _prefetched.get()
    if found is None:
        return NOT_READ
    _prefetched.set(None)
    wanted, presence_key, ahead = found
    if target is not None and presence_key != (target.url, target.key):
        return NOT_READ
    if target is None and presence_key is not None:
        return NOT_READ
    if not wanted.issuperset(keys):
        return NOT_READ
    return ahead


def _plan(
    keys: list[str], target: PresenceRead | None
) -> tuple[PresenceRead | None, list[str], list[Any]] | None:
    """The presence read kept (None when it is not in the cache's Redis), the
    script's KEYS and ARGV; None when nothing is to be read from Redis."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None  # the demo's memory cache (and memory presence): no round trip
    # Presence rides along only when it lives in the cache's own Redis database.
    if target is not None and backend._servers != [target.url]:
        target = None
    if not keys and target is None:
        return None
    names = [_name(backend, key) for key in keys]
    args = [len(names), 0 if target is None else target.cutoff]
    if target is not None:
        names.append(target.key)
    return target, names, args


# The cache's name of a key read ahead, by the backend's key function, prefix and
# version and the key: make_and_validate_key's answer, which depends on nothing
# else (about 10 us of a push's CPU each, two keys a push). Only a name that
# validates silently is kept, so a key that warns (too long for memcached, a
# space or control character) still warns at every read. Bounded: emptied when
# full (two keys per workspace that pushes).
_names: dict[tuple[Any, str, Any, str], str] = {}
_NAMES_KEPT = 4096


def _name(backend: Any, key: str) -> str:
    """backend.make_and_validate_key(key), remembered (see _names)."""
    memo = (backend.key_func, backend.key_prefix, backend.version, key)
    name = _names.get(memo)
    if name is None:
        name = backend.make_and_validate_key(key)
        if next(memcache_key_warnings(name), None) is None:
            if len(_names) >= _NAMES_KEPT:
                _names.clear()
            _names[memo] = name
    return name


def _loads(serializer: Any, reply: bytes) -> Any:
    """serializer.loads(reply): Django's RedisSerializer tries int() first and
    unpickles on its ValueError; a pickle (protocol 2 and later: the first byte
    is PROTO, 0x80) is never an int, so it goes to pickle at once (about 25 us
    less inside a push: the raised and caught ValueError)."""
    if type(serializer) is django_redis.RedisSerializer and reply[:1] == b"\x80":
        return pickle.loads(reply)  # noqa: S301 - the cache's own pickles, as Django
    return serializer.loads(reply)


def _read(keys: list[str], target: PresenceRead | None) -> ReadAhead | None:
    plan = _plan(keys, target)
    if plan is None:
        return None
    target, names, args = plan
    backend: Any = caches["default"]
    client = backend._cache.get_client()
    try:
        replies = run_script(client, _READ_SHA, _READ_LUA, len(names), *names, *args)
    except Exception as error:  # each reader handles it as its own read's error
        return _answers(keys, target, error)
    return _answers(keys, target, replies)


def _answers(
    keys: list[str], target: PresenceRead | None, replies: Reply | BaseException
) -> ReadAhead:
    """The script's replies (or the error of its round trip) as a ReadAhead."""
    presence = None if target is None else (target.url, target.key)
    if isinstance(replies, BaseException):
        return ReadAhead(
            dict.fromkeys(keys), {} if presence is None else {presence: set()}, replies
        )
    backend: Any = caches["default"]
    holder = backend._cache
    values: dict[str, Any] = {}
    for key, reply in zip(keys, replies, strict=False):
        try:
            if isinstance(reply, Exception):
                raise reply
            values[key] = None if reply is None else _loads(holder._serializer, reply)
        except Exception as error:  # raised again to its reader
            values[key] = _Failed(error)
    online: dict[tuple[str, str], Any] = {}
    if presence is not None and target is not None:
        reply = replies[-1]
        online[presence] = (
            _Failed(reply) if isinstance(reply, Exception) else target.members(reply)
        )
    return ReadAhead(values, online)


# One command, not a pipeline (less client work): KEYS are the cache keys, then
# the presence key if any; ARGV the number of cache keys and presence's cutoff.
# A key's own error (a wrong type) is returned in its place (pcall).
_READ_LUA = """
local out = {}
local gets = tonumber(ARGV[1])
for i = 1, gets do
  out[i] = redis.pcall('GET', KEYS[i])
end
if #KEYS > gets then
  out[gets + 1] = redis.pcall('ZRANGEBYSCORE', KEYS[gets + 1], ARGV[2], '+inf')
end
return out
"""
_READ_SHA = hashlib.sha1(_READ_LUA.encode(), usedforsecurity=False).hexdigest()


class _Failed:
    def __init__(self, error: Exception) -> None:
        self.error = error
