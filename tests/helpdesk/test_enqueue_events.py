"""Events pushed after commit through a channels-redis pub/sub layer go out as plain
PUBLISH commands from the calling thread (helpdesk.publish._DirectPublisher): a
consumer of the layer receives them as the layer's own group_send sends them."""

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from helpdesk import publish
from tests.redis_dbs import redis_url

SCRATCH = redis_url("scratch")
GROUP = "t-events-direct"


@pytest.fixture
def layer(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisPubSubChannelLayer]:
    """A pub/sub layer on this process's scratch Redis, as `get_channel_layer()`."""
    layer = RedisPubSubChannelLayer(hosts=[SCRATCH])
    monkeypatch.setattr(publish, "get_channel_layer", lambda: layer)
    yield layer
    publish._directs.pop((id(layer), os.getpid()), None)


def received(
    layer: RedisPubSubChannelLayer, send: Any, count: int
) -> list[dict[str, Any]]:
    """What a consumer subscribed to GROUP receives while `send()` runs."""

    async def listen() -> list[dict[str, Any]]:
        channel = await layer.new_channel()
        await layer.group_add(GROUP, channel)
        await asyncio.to_thread(send)
        got = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(count)]
        await layer.flush()
        return got

    return asyncio.run(listen())


def test_a_batch_reaches_a_consumer_in_order_without_the_publishing_loop(
    layer: RedisPubSubChannelLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages: list[dict[str, Any]] = [
        {"type": "event.message", "event": {"seq": 1, "type": "message.created"}},
        {"type": "event.batch", "events": [{"seq": 2}, {"seq": 3, "x": "é"}]},
    ]
    monkeypatch.setattr(publish, "_publisher", lambda: pytest.fail("loop used"))
    sent: list[int] = []

    got = received(
        layer, lambda: publish.group_send_many(GROUP, messages, sent=sent), 2
    )

    assert got == messages
    assert sent == [0, 1]


def test_one_message_reaches_a_consumer(layer: RedisPubSubChannelLayer) -> None:
    message = {"type": "session.close", "reason": "revoked"}

    got = received(layer, lambda: publish.group_send(GROUP, message), 1)

    assert got == [message]


def test_a_down_redis_raises_at_once_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layer = RedisPubSubChannelLayer(hosts=["redis://127.0.0.1:1/0"])
    monkeypatch.setattr(publish, "get_channel_layer", lambda: layer)
    sent: list[int] = []
    started = time.monotonic()

    with pytest.raises(redis.exceptions.ConnectionError):
        publish.group_send_many(GROUP, [{"type": "event.message"}], sent=sent)

    assert sent == []
    assert time.monotonic() - started < publish.PUSH_TIMEOUT
    publish._directs.pop((id(layer), os.getpid()), None)


@pytest.mark.parametrize(
    "make",
    [
        InMemoryChannelLayer,
        lambda: RedisPubSubChannelLayer(hosts=[{"address": SCRATCH, "db": 2}]),
        lambda: RedisPubSubChannelLayer(hosts=[("127.0.0.1", 6379)]),
    ],
)
def test_other_layers_send_through_the_layer(make: Any) -> None:
    layer = make()

    assert publish._direct(layer) is None
    publish._directs.pop((id(layer), os.getpid()), None)
