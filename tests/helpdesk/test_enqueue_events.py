"""Events pushed after commit through a channels-redis pub/sub layer go out as plain
PUBLISH commands from the calling thread (helpdesk.publish._DirectPublisher): a
consumer of the layer receives them as the layer's own group_send sends them."""

import asyncio
import logging
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


def test_a_socket_the_server_closed_is_replaced_before_it_is_used(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = publish._publish_client(SCRATCH)
    assert isinstance(client, publish._PlainPublisher)
    client.publish(GROUP, b"first")
    closed = client.local.socket
    assert _read_answer(closed) == b":0\r\n"  # answered before the kill
    host, port = closed.getsockname()[:2]
    assert redis.Redis.from_url(SCRATCH).client_kill(f"{host}:{port}") is True
    deadline = time.monotonic() + 2
    while not _readable(closed) and time.monotonic() < deadline:
        time.sleep(0.01)

    with caplog.at_level(logging.WARNING, logger="helpdesk.publish"):
        client.publish(GROUP, b"second")

    assert closed.fileno() == -1
    assert client.local.socket.getsockname()[:2] != (host, port)
    assert caplog.records == []


def _read_answer(sock: socket.socket) -> bytes:
    """Wait for the unread answer on `sock` and leave it there (peeked)."""
    deadline = time.monotonic() + 2
    while not _readable(sock) and time.monotonic() < deadline:
        time.sleep(0.01)
    return sock.recv(64, socket.MSG_PEEK)


def answering(
    *replies: bytes | None,
) -> tuple[publish._PlainPublisher, list[bytes], threading.Thread]:
    """A publisher whose server takes one connection per reply: it reads one
    command, answers the reply and closes (None: answers nothing and waits for
    the client to close). The commands it read are listed, each once its
    connection is closed."""
    server = socket.create_server(("127.0.0.1", 0))
    commands: list[bytes] = []

    def serve() -> None:
        for reply in replies:
            connection, _ = server.accept()
            with connection:
                command = connection.recv(4096)
                if reply is None:
                    connection.recv(1)  # until the client gives up
                else:
                    connection.sendall(reply)
            commands.append(command)  # once that connection is closed
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return publish._PlainPublisher(*server.getsockname()[:2]), commands, thread


PUBLISHED = b"*3\r\n$7\r\nPUBLISH\r\n$15\r\nasgi__group__t1\r\n$4\r\n\x81\xa1a\x01\r\n"


def test_the_command_is_redis_publish_sent_without_waiting_for_its_answer() -> None:
    client, commands, thread = answering(None)
    client.timeout = 10.0

    started = time.monotonic()
    client.publish("asgi__group__t1", b"\x81\xa1a\x01")

    assert time.monotonic() - started < 5
    assert client.local.unread == "asgi__group__t1"
    client._close()
    thread.join(5)
    assert commands == [PUBLISHED]


def test_the_answer_is_read_before_the_next_publish() -> None:
    client, commands, thread = answering(b":2\r\n", b":0\r\n")

    client.publish("asgi__group__t1", b"\x81\xa1a\x01")
    first = client.local.socket
    deadline = time.monotonic() + 5
    while not commands and time.monotonic() < deadline:  # the server has closed
        time.sleep(0.005)
    client.publish("asgi__group__t1", b"\x81\xa1a\x01")

    thread.join(5)
    assert commands == [PUBLISHED, PUBLISHED]
    assert first.fileno() == -1  # answered, then closed by the server: replaced
    assert client.local.unread == "asgi__group__t1"


@pytest.mark.parametrize(
    ("reply", "level", "logged"),
    [
        (b"-ERR nope\r\n", logging.ERROR, ": PUBLISH got server:ResponseError"),
        (b"+OK\r\n", logging.ERROR, ": PUBLISH got b'OK'"),
        (
            b"",
            logging.WARNING,
            ", channel layer unavailable: network:ConnectionError",
        ),
        (
            b":1",
            logging.WARNING,
            ", channel layer unavailable: network:ConnectionError",
        ),
    ],
)
def test_a_bad_answer_is_logged_as_its_push_failing_and_drops_the_socket(
    reply: bytes, level: int, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    client, commands, thread = answering(reply, b":0\r\n")
    client.publish("asgi__group__t1", b"\x81\xa1a\x01")
    first = client.local.socket

    with caplog.at_level(logging.WARNING, logger="helpdesk.publish"):
        client.publish("asgi__group__t1", b"\x81\xa1a\x01")

    thread.join(5)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (level, f"could not push to asgi__group__t1{logged}")
    ]
    assert first.fileno() == -1
    assert commands == [PUBLISHED, PUBLISHED]  # the next one went out anew


def test_a_redis_that_stops_answering_is_logged_after_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The next push waits for the answer up to the timeout (as each push waited
    before), logs the unanswered one as failed and goes out on a new socket."""
    client, commands, thread = answering(None, b":0\r\n")
    client.timeout = 0.2
    client.publish("asgi__group__t1", b"\x81\xa1a\x01")

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="helpdesk.publish"):
        client.publish("asgi__group__t1", b"\x81\xa1a\x01")

    assert 0.2 <= time.monotonic() - started < 5
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            "could not push to asgi__group__t1, channel layer unavailable: "
            "TimeoutError('timed out')",
        )
    ]
    thread.join(5)
    assert commands == [PUBLISHED, PUBLISHED]
