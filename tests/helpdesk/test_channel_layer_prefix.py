"""The production channel layer's prefix (helpdesk/settings.py): Redis pub/sub
channels belong to the server, not to a database, so two deployments on databases
of one Redis server (staging and production) would otherwise hear each other's
groups, which share names (inbox.t1 in both)."""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.core.exceptions import ImproperlyConfigured

from helpdesk.settings import channel_layer_prefix
from tests import redis_dbs

ROOT = Path(__file__).resolve().parents[2]
# A group of this test's own: a real one would reach other test processes' stacks.
GROUP = f"probe.{uuid.uuid4().hex}"


@pytest.mark.parametrize(
    ("url", "prefix"),
    [
        ("redis://127.0.0.1:6379", "asgi"),
        ("redis://127.0.0.1:6379/0", "asgi"),
        ("redis://127.0.0.1:6379/1", "asgi-db1"),
        ("rediss://:secret@cache.example:6380/12", "asgi-db12"),
        ("redis://127.0.0.1:6379/3?db=5", "asgi-db5"),
        ("unix:///run/redis.sock?db=7", "asgi-db7"),
        ("unix:///run/redis.sock", "asgi"),
    ],
)
def test_the_prefix_follows_the_urls_database(url: str, prefix: str) -> None:
    assert channel_layer_prefix(url) == prefix


def test_a_database_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(
        ImproperlyConfigured,
        match="REDIS_URL must name its database by number, got 'cache'",
    ):
        channel_layer_prefix("redis://127.0.0.1:6379/cache")


def production_layer(redis_url: str, **extra: str) -> dict[str, Any]:
    """CHANNEL_LAYERS["default"] as helpdesk.settings makes it for `redis_url`."""
    env = {
        **os.environ,
        "DATABASE_URL": "sqlite:///unused-channel-layer.sqlite3",
        "EARSHOT_DEMO": "1",
        "REDIS_URL": redis_url,
        **extra,
    }
    env.pop("MIGRATOR_DATABASE_URL", None)
    if "CHANNEL_LAYER_PREFIX" not in extra:
        env.pop("CHANNEL_LAYER_PREFIX", None)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, helpdesk.settings as s;"
            " print(json.dumps(s.CHANNEL_LAYERS['default']))",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    layer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return layer


def hears(sender: dict[str, Any], receiver: dict[str, Any]) -> list[Any]:
    """What a layer configured as `receiver` hears of a group message sent by one
    configured as `sender`."""

    async def scenario() -> list[Any]:
        sending = RedisPubSubChannelLayer(**sender["CONFIG"])
        listening = RedisPubSubChannelLayer(**receiver["CONFIG"])
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


def test_deployments_on_two_databases_of_one_server_do_not_hear_each_other() -> None:
    ours = redis_dbs.redis_url("cache")
    parts = urlsplit(ours)
    database = int(parts.path.strip("/") or 0)
    # Its neighbour database, which exists on any Redis (see tests/test_redis_dbs).
    other = f"redis://{parts.netloc}/{database ^ 1}"
    staging, production = production_layer(other), production_layer(ours)

    assert production == {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [ours], "prefix": channel_layer_prefix(ours)},
    }
    assert staging["CONFIG"]["prefix"] != production["CONFIG"]["prefix"]
    assert hears(staging, production) == []
    assert hears(production, staging) == []
    # Each still hears its own groups.
    message = {"type": "event.message", "seq": 500}
    assert hears(production, production) == [message]
    assert hears(staging, staging) == [message]


def test_channel_layer_prefix_names_it_outright() -> None:
    ours = redis_dbs.redis_url("cache")
    layer = production_layer(ours, CHANNEL_LAYER_PREFIX="earshot-staging")
    assert layer["CONFIG"] == {"hosts": [ours], "prefix": "earshot-staging"}
