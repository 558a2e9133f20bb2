"""The Redis databases of a test process (tests/redis_dbs.py) on a 64-database Redis."""

import asyncio
import contextlib
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync
from channels_redis.pubsub import RedisPubSubChannelLayer

from tests import redis_dbs


def roles_of(monkeypatch: pytest.MonkeyPatch, url: str) -> dict[str, str]:
    monkeypatch.delenv("EARSHOT_TEST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    for name in redis_dbs.ENV_OVERRIDES.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EARSHOT_TEST_REDIS_URL", url)
    return {role: redis_dbs.redis_url(role) for role in redis_dbs.OFFSETS}


def test_the_roles_follow_a_redis_url_database_at_fixed_offsets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert roles_of(monkeypatch, "redis://127.0.0.1:6380/17") == {
        "cache": "redis://127.0.0.1:6380/17",
        "live_broker": "redis://127.0.0.1:6380/37",
        "browser_broker": "redis://127.0.0.1:6380/57",
        "browser_layer": "redis://127.0.0.1:6380/58",
        "scratch": "redis://127.0.0.1:6380/63",
    }


@pytest.mark.parametrize("database", [18, 40, 63])
def test_a_database_without_room_for_the_offsets_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, database: int
) -> None:
    with pytest.raises(pytest.UsageError) as raised:
        roles_of(monkeypatch, f"redis://127.0.0.1:6380/{database}")
    assert str(raised.value) == (
        f"REDIS_URL names database {database}: the test roles sit at offsets up to "
        "+46 on a Redis of 64 databases, so its database must be 0 to 17 "
        "(e.g. redis://127.0.0.1:6380/8)"
    )


def test_the_default_redis_keeps_the_worker_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert roles_of(monkeypatch, "redis://127.0.0.1:6379/3")["scratch"] == (
        "redis://127.0.0.1:6379/9"
    )


# A group of this test's own: a real one (inbox.t1) would reach the running stacks
# of other test processes that still use the default prefix.
GROUP = f"probe.{uuid.uuid4().hex}"


def hears(sender: str, receiver: str, *, prefixed: bool) -> list[Any]:
    """What a pub/sub channel layer on `receiver` hears of a group message sent
    by one on `sender` (two Redis databases of one server)."""

    def layer(url: str) -> RedisPubSubChannelLayer:
        prefix = {"prefix": redis_dbs.layer_prefix(url)} if prefixed else {}
        return RedisPubSubChannelLayer(hosts=[url], **prefix)

    async def scenario() -> list[Any]:
        sending, listening = layer(sender), layer(receiver)
        channel = await listening.new_channel()
        await listening.group_add(GROUP, channel)
        await sending.group_send(GROUP, {"type": "event.message", "seq": 500})
        heard = []
        with contextlib.suppress(TimeoutError):
            heard.append(await asyncio.wait_for(listening.receive(channel), 1.0))
        await listening.flush()
        await sending.flush()
        return heard

    return async_to_sync(scenario)()


def test_stacks_on_two_databases_do_not_hear_each_others_groups() -> None:
    ours = redis_dbs.redis_url("cache")
    parts = urlsplit(ours)
    # Its neighbour database, which exists on any Redis (`^ 1`: 15 -> 14 on the
    # default 16-database one, where gw0's cache is the last database).
    other = f"redis://{parts.netloc}/{int(parts.path.strip('/') or 0) ^ 1}"
    assert redis_dbs.layer_prefix(ours) != redis_dbs.layer_prefix(other)
    # Pub/sub ignores the database: without the prefix the other stack hears it.
    assert hears(other, ours, prefixed=False) == [{"type": "event.message", "seq": 500}]
    assert hears(other, ours, prefixed=True) == []
    assert hears(ours, ours, prefixed=True) == [{"type": "event.message", "seq": 500}]
