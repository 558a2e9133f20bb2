"""Events pushed after commit through a channels-redis pub/sub layer go out as plain
PUBLISH commands from the calling thread (helpdesk.publish._DirectPublisher): a
consumer of the layer receives them as the layer's own group_send sends them."""

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from helpdesk import publish
from tenants.resp import _readable
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


def test_a_plain_address_publishes_over_plain_sockets() -> None:
    plain = publish._publish_client("redis://127.0.0.1:6390/3")
    with_password = publish._publish_client("redis://:secret@127.0.0.1:6390/3")
    over_tls = publish._publish_client("rediss://127.0.0.1:6390/3")

    assert isinstance(plain, publish._PlainPublisher)
    assert plain.address == ("127.0.0.1", 6390)
    assert isinstance(with_password, redis.Redis)
    assert isinstance(over_tls, redis.Redis)


def test_a_socket_the_server_closed_is_replaced_before_it_is_used() -> None:
    client = publish._publish_client(SCRATCH)
    assert isinstance(client, publish._PlainPublisher)
    assert client.publish(GROUP, b"first") == 0
    closed = client.local.socket
    host, port = closed.getsockname()[:2]
    assert redis.Redis.from_url(SCRATCH).client_kill(f"{host}:{port}") is True
    deadline = time.monotonic() + 2
    while not _readable(closed) and time.monotonic() < deadline:
        time.sleep(0.01)

    assert client.publish(GROUP, b"second") == 0

    assert closed.fileno() == -1
    assert client.local.socket.getsockname()[:2] != (host, port)


def answering(reply: bytes) -> tuple[publish._PlainPublisher, list[bytes]]:
    """A publisher whose server reads one command, answers `reply` and closes;
    the commands it read are listed."""
    server = socket.create_server(("127.0.0.1", 0))
    commands: list[bytes] = []

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            commands.append(connection.recv(4096))
            connection.sendall(reply)
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return publish._PlainPublisher(*server.getsockname()[:2]), commands


def test_the_command_is_redis_publish_and_its_answer_the_receivers() -> None:
    client, commands = answering(b":2\r\n")

    assert client.publish("asgi__group__t1", b"\x81\xa1a\x01") == 2
    assert commands == [
        b"*3\r\n$7\r\nPUBLISH\r\n$15\r\nasgi__group__t1\r\n$4\r\n\x81\xa1a\x01\r\n"
    ]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"-ERR nope\r\n", redis.exceptions.ResponseError),
        (b"", redis.exceptions.ConnectionError),
        (b":1", redis.exceptions.ConnectionError),
        (b"+OK\r\n", redis.exceptions.ConnectionError),
    ],
)
def test_a_bad_answer_raises_and_drops_the_socket(
    reply: bytes, error: type[Exception]
) -> None:
    client, _ = answering(reply)

    with pytest.raises(error):
        client.publish("asgi__group__t1", b"x")

    assert client.local.socket is None
