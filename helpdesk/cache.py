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

import os
import threading
from typing import Any

from django.core.cache.backends import redis as django_redis


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
