"""helpdesk/cache.py: what the push's read ahead costs besides its round trip.

The cache's names of the keys read ahead are remembered (make_and_validate_key's
answer, which depends only on the backend's key function, prefix and version),
and a pickled answer goes straight to pickle. Both must answer exactly as
Django's backend does.
"""

import os
import pickle
import warnings
from typing import Any
from uuid import uuid4

import pytest
from django.core.cache import cache
from django.core.cache.backends.base import CacheKeyWarning
from django.core.cache.backends.redis import RedisSerializer

from helpdesk import cache as read_cache
from helpdesk.cache import RedisCache

LOCATION = os.environ["REDIS_URL"]


def backend(**params: Any) -> RedisCache:
    return RedisCache(LOCATION, {"KEY_PREFIX": "cost-test", **params})


@pytest.mark.parametrize(
    "key", ["incidents.rules.t1", "webhooks.endpoints.t42", "é-unicode", ""]
)
def test_a_name_is_the_backends_own(key: str) -> None:
    for made in (backend(), backend(VERSION=3), backend(KEY_PREFIX="other")):
        expected = made.make_and_validate_key(key)
        assert read_cache._name(made, key) == expected
        assert read_cache._name(made, key) == expected  # remembered, the same


def test_prefix_and_version_get_their_own_names() -> None:
    key = f"k.{uuid4().hex}"
    names = {
        read_cache._name(backend(), key),
        read_cache._name(backend(VERSION=2), key),
        read_cache._name(backend(KEY_PREFIX="p2"), key),
    }
    assert names == {f"cost-test:1:{key}", f"cost-test:2:{key}", f"p2:1:{key}"}


def test_a_key_that_warns_warns_at_every_read_and_is_not_kept() -> None:
    made = backend()
    key = f"with space {uuid4().hex}"
    for _ in range(2):
        with pytest.warns(CacheKeyWarning, match="memcached"):
            assert read_cache._name(made, key) == made.make_key(key)
    assert (made.key_func, made.key_prefix, made.version, key) not in read_cache._names


def test_a_good_key_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_cache._name(backend(), f"good.{uuid4().hex}")


def test_the_names_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_cache, "_names", {})
    monkeypatch.setattr(read_cache, "_NAMES_KEPT", 3)
    made = backend()
    for index in range(7):
        assert read_cache._name(made, f"k{index}") == f"cost-test:1:k{index}"
        assert 1 <= len(read_cache._names) <= 3


@pytest.mark.parametrize(
    "value",
    [False, True, None, 0, 7, -3, 2**70, "text", b"bytes", ((1, ("a", "b")),), 1.5],
)
def test_an_answer_loads_as_djangos_serializer_loads_it(value: Any) -> None:
    serializer = RedisSerializer()
    stored = serializer.dumps(value)
    raw = stored if isinstance(stored, bytes) else str(stored).encode()
    loaded = read_cache._loads(serializer, raw)
    assert loaded == serializer.loads(raw)
    assert type(loaded) is type(serializer.loads(raw))


@pytest.mark.parametrize("raw", [b"12", b" 5 ", b"-0", b"x", b"\x80\x05"])
def test_odd_bytes_answer_or_fail_as_djangos(raw: bytes) -> None:
    serializer = RedisSerializer()
    try:
        expected: Any = serializer.loads(raw)
    except Exception as error:  # compared below
        with pytest.raises(type(error)):
            read_cache._loads(serializer, raw)
    else:
        assert read_cache._loads(serializer, raw) == expected


def test_another_serializer_is_asked_itself() -> None:
    class Marked(RedisSerializer):
        def loads(self, data: Any) -> Any:
            return ("marked", data)

    raw = pickle.dumps(False)
    assert read_cache._loads(Marked(), raw) == ("marked", raw)


def test_a_read_ahead_reads_the_stored_values() -> None:
    keys = [f"cost.{uuid4().hex}" for _ in range(4)]
    values: list[Any] = [False, ((1, ("message.created",)),), 5, None]
    for key, value in zip(keys, values, strict=True):
        if value is not None:
            cache.set(key, value)
    with read_cache.reading_ahead(keys, presence=None):
        ahead = read_cache.read_ahead()
        assert ahead is not None
        assert [ahead.value(key) for key in keys] == values
    cache.delete_many(keys)
