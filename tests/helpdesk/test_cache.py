"""helpdesk/cache.py: the Redis cache keeps its connections across requests."""

import contextvars
import os
from typing import Any

import pytest
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache

from helpdesk.cache import RedisCache

LOCATION = os.environ["REDIS_URL"]


def backend(**options: Any) -> RedisCache:
    return RedisCache(LOCATION, {"KEY_PREFIX": "cache-test", "OPTIONS": options})


def in_new_context(make: Any) -> Any:
    # Each request runs in a context of its own, and Django's `caches` builds a
    # backend per context: two requests, two backends.
    return contextvars.copy_context().run(make)


def test_backends_of_different_requests_share_pools_and_clients() -> None:
    first = in_new_context(backend)
    second = in_new_context(backend)
    first.set("greeting", "hello", 30)

    assert second.get("greeting") == "hello"
    assert first is not second
    assert first._cache is second._cache
    assert first._cache.get_client(write=True) is second._cache.get_client(write=True)
    first.delete("greeting")


def test_one_connection_serves_request_after_request() -> None:
    pools = []
    for _ in range(5):
        cache = in_new_context(backend)
        cache.set("n", 1, 30)
        pools.append(cache._cache.get_client(write=True).connection_pool)
    cache.delete("n")

    assert all(pool is pools[0] for pool in pools)
    assert pools[0]._created_connections == 1


def test_other_options_get_their_own_connections() -> None:
    plain, bounded = backend(), backend(socket_timeout=2)

    assert plain._cache is not bounded._cache


def test_a_forked_process_builds_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = backend()._cache
    monkeypatch.setattr("helpdesk.cache.os.getpid", lambda: -1)

    assert backend()._cache is not parent


def test_it_is_still_djangos_backend() -> None:
    # tenants/api_auth.py recognises the Redis cache by Django's class.
    assert isinstance(backend(), DjangoRedisCache)
