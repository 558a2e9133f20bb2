"""The fixed window on a Redis cache (tenants.ratelimit._count): the add and the
increment are one round trip (a Lua script; EVAL once when the Redis does not know
it), the counter is the cache's own value with the window's lifetime."""

import hashlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import cache

from tenants import ratelimit
from tenants.ratelimit import fixed_window_take, fixed_window_wait
from tenants.resp import PlainRedis
from tests.helpdesk.live import count_redis_clients

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
MINUTE_START = 6_000_000.0  # a multiple of 60: a window starts here


@pytest.fixture
def redis_cache(settings: Any) -> Iterator[None]:
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"test-rl-{uuid.uuid4().hex}",
        }
    }
    yield
    cache.clear()


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The Redis commands sent, by name (through redis-py or tenants.resp's plain
    sockets)."""
    sent: list[str] = []
    real: Any = redis.Redis.execute_command
    real_plain = PlainRedis._send

    def execute_command(self: redis.Redis, *args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return real(self, *args, **options)

    def send_plain(self: PlainRedis, command: bytes) -> None:
        sent.append(command.split(b"\r\n")[2].decode())
        real_plain(self, command)

    monkeypatch.setattr(redis.Redis, "execute_command", execute_command)
    monkeypatch.setattr(PlainRedis, "_send", send_plain)
    return sent


def key_of(ident: str, window: int = 60) -> str:
    return ratelimit._window_key("s", ident, window, MINUTE_START)


@pytest.mark.usefixtures("redis_cache")
def test_each_counted_request_is_one_round_trip(commands: list[str]) -> None:
    ident = uuid.uuid4().hex
    fixed_window_wait("s", ident, limit=2, now=MINUTE_START)  # the script known
    commands.clear()

    waits = [
        fixed_window_wait("s", ident, limit=2, now=MINUTE_START + at) for at in (1, 50)
    ]

    assert waits == [None, 10]
    assert commands == ["EVALSHA", "EVALSHA"]
    # The cache's own counter (Django stores integers as they are), living
    # for the window and ten seconds more.
    assert cache.get(key_of(ident)) == 3
    name = cache.make_and_validate_key(key_of(ident))
    assert 60 < redis.Redis.from_url(REDIS_URL).ttl(name) <= 70


@pytest.mark.usefixtures("redis_cache")
def test_a_batch_takes_its_calls_in_one_round_trip(commands: list[str]) -> None:
    ident = uuid.uuid4().hex
    fixed_window_wait("s", ident, limit=5, now=MINUTE_START)
    commands.clear()

    taken = [
        fixed_window_take("s", ident, count=3, limit=5, now=MINUTE_START)
        for _ in range(2)
    ]

    assert taken == [3, 1]
    assert commands == ["EVALSHA", "EVALSHA"]
    assert cache.get(key_of(ident)) == 7


@pytest.mark.usefixtures("redis_cache")
def test_a_redis_that_does_not_know_the_script_is_sent_it(
    commands: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script of this test's own, which this Redis has never seen."""
    script = f"{ratelimit._COUNT_LUA}-- {uuid.uuid4().hex}\n"
    monkeypatch.setattr(ratelimit, "_COUNT_LUA", script)
    monkeypatch.setattr(
        ratelimit,
        "_COUNT_SHA",
        hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest(),
    )
    ident = uuid.uuid4().hex
    first = fixed_window_wait("s", ident, limit=1, now=MINUTE_START)
    second = fixed_window_wait("s", ident, limit=1, now=MINUTE_START)

    assert (first, second) == (None, 60)
    assert commands == ["EVALSHA", "EVAL", "EVALSHA"]
    assert cache.get(key_of(ident)) == 2


@pytest.mark.usefixtures("redis_cache")
def test_counted_requests_share_one_redis_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Django's RedisCache builds a redis client for every operation (about 50 us
    of CPU each); the limit keeps one per cache backend, on its connection pool."""
    ident = uuid.uuid4().hex
    fixed_window_wait("s", ident, limit=5, now=MINUTE_START)
    made = count_redis_clients(monkeypatch)

    waits = [fixed_window_wait("s", ident, limit=5, now=MINUTE_START) for _ in range(3)]
    taken = fixed_window_take("s", ident, count=3, limit=5, now=MINUTE_START)

    assert (waits, taken) == ([None, None, None], 1)
    assert made == []
    assert cache.get(key_of(ident)) == 7
