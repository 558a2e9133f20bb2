"""tenants.resp: commands to a plain Redis over a kept socket per thread answer
what redis-py answers, with redis-py's errors, and recover from a socket the
server closed."""

import hashlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.exceptions

from tenants import resp
from tenants.resp import PlainRedis, plain_client, run_script

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    made = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    yield made
    made.close()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every request the plain clients send, as its bytes."""
    requests: list[bytes] = []
    real = PlainRedis._send

    def send(self: PlainRedis, command: bytes) -> None:
        requests.append(command)
        real(self, command)

    monkeypatch.setattr(PlainRedis, "_send", send)
    return requests


def test_a_plain_pool_gets_one_plain_client(client: redis.Redis) -> None:
    plain = plain_client(client)
    assert plain is not None
    assert plain_client(client) is plain
    kwargs = client.connection_pool.connection_kwargs
    assert plain.address == (kwargs["host"], kwargs["port"])
    assert plain.db == kwargs.get("db", 0)
    assert (plain.timeout, plain.connect_timeout) == (2, 2)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:secret@127.0.0.1:6379/0",
        "redis://user:secret@127.0.0.1:6379/0",
        "rediss://127.0.0.1:6379/0",
        "unix:///tmp/redis.sock?db=0",
        "redis://127.0.0.1:6379/0?client_name=named",
    ],
)
def test_other_pools_keep_redis_py(url: str) -> None:
    assert plain_client(redis.Redis.from_url(url)) is None


def test_something_else_than_redis_py_keeps_its_own_path() -> None:
    assert plain_client(object()) is None


def test_replies_read_as_redis_py_reads_them(client: redis.Redis) -> None:
    plain = plain_client(client)
    assert plain is not None
    key, other = f"resp-test:{uuid.uuid4().hex}", f"resp-test:{uuid.uuid4().hex}"
    client.set(key, b"caf\xc3\xa9\r\n")
    client.lpush(other, "x")
    script = (
        "return {redis.call('GET', KEYS[1]), redis.pcall('GET', KEYS[2]),"
        " redis.call('GET', KEYS[3]), 42, {'a', 7}, redis.status_reply('FINE')}"
    )
    missing = f"resp-test:{uuid.uuid4().hex}"
    args = (script, 3, key, other, missing)
    ours = plain.execute("EVAL", *args)
    theirs = client.eval(*args)
    assert isinstance(ours[1], redis.exceptions.ResponseError)
    assert str(ours[1]) == str(theirs[1])
    assert type(ours[1]) is type(theirs[1])
    assert ours[:1] + ours[2:] == theirs[:1] + theirs[2:]
    assert ours[:1] + ours[2:5] == [b"caf\xc3\xa9\r\n", None, 42, [b"a", 7]]
    assert plain.execute("GET", missing) is None
    assert plain.execute("EXISTS", key, other) == 2
    assert plain.execute("PING") == b"PONG"
    client.delete(key, other)


def test_arguments_are_encoded_as_redis_py_encodes_them(
    client: redis.Redis, sent: list[bytes]
) -> None:
    plain = plain_client(client)
    assert plain is not None
    args = ("ECHO", 0.1 + 0.2)
    assert plain.execute(*args) == client.echo(args[1])
    assert sent[-1] == b"*2\r\n$4\r\nECHO\r\n$19\r\n0.30000000000000004\r\n"
    assert resp.pack(("A", b"b", 3, -1.5, "é")) == (
        b"*5\r\n$1\r\nA\r\n$1\r\nb\r\n$1\r\n3\r\n$4\r\n-1.5\r\n$2\r\n\xc3\xa9\r\n"
    )
    with pytest.raises(redis.exceptions.DataError):
        plain.execute("ECHO", True)


def test_an_error_reply_is_raised_as_redis_py_raises_it(client: redis.Redis) -> None:
    plain = plain_client(client)
    assert plain is not None
    with pytest.raises(redis.exceptions.NoScriptError, match="No matching script"):
        plain.execute("EVALSHA", "0" * 40, 0)
    key = f"resp-test:{uuid.uuid4().hex}"
    client.lpush(key, "x")
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE") as raised:
        plain.execute("GET", key)
    assert type(raised.value) is redis.exceptions.ResponseError
    # The connection stays in step after an error reply.
    assert plain.execute("LLEN", key) == 1
    client.delete(key)


def test_the_pools_database_is_selected(client: redis.Redis) -> None:
    plain = plain_client(client)
    assert plain is not None
    key = f"resp-test:{uuid.uuid4().hex}"
    plain.execute("SET", key, "here")
    assert client.get(key) == b"here"
    host, port = plain.address
    assert redis.Redis(host, port, db=(plain.db + 1) % 16).get(key) is None
    client.delete(key)


def test_one_socket_per_thread_kept_between_commands(client: redis.Redis) -> None:
    plain = plain_client(client)
    assert plain is not None
    mine = [plain.execute("CLIENT", "ID") for _ in range(3)]
    theirs: list[int] = []
    thread = threading.Thread(
        target=lambda: theirs.extend(plain.execute("CLIENT", "ID") for _ in range(2))
    )
    thread.start()
    thread.join()
    assert len(set(mine)) == 1
    assert len(set(theirs)) == 1
    assert set(mine) != set(theirs)


def test_a_socket_the_server_closed_is_replaced(client: redis.Redis) -> None:
    plain = plain_client(client)
    assert plain is not None
    first = plain.execute("CLIENT", "ID")
    assert client.client_kill_filter(_id=first) == 1
    second = plain.execute("CLIENT", "ID")
    assert second != first
    assert plain.execute("CLIENT", "ID") == second


def test_an_unreachable_redis_is_a_connection_error() -> None:
    dead = redis.Redis.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2
    )
    plain = plain_client(dead)
    assert plain is not None
    with pytest.raises(redis.exceptions.ConnectionError):
        plain.execute("PING")
    with pytest.raises(redis.exceptions.ConnectionError):
        run_script(dead, "0" * 40, "return 1", 0)


def test_a_redis_that_does_not_answer_is_a_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        plain = PlainRedis("127.0.0.1", port, 0, timeout=0.2, connect_timeout=0.2)
        with pytest.raises(redis.exceptions.TimeoutError):
            plain.execute("PING")
        assert plain.local.reader is None  # closed: the next command reconnects


def test_a_script_redis_does_not_know_is_sent_whole_once(
    client: redis.Redis, sent: list[bytes]
) -> None:
    script = f"return '{uuid.uuid4().hex}'"
    sha = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
    answers = [run_script(client, sha, script, 0) for _ in range(2)]

    assert answers == [script[8:-1].encode()] * 2
    assert [request.split(b"\r\n")[2] for request in sent] == [
        b"EVALSHA",
        b"EVAL",
        b"EVALSHA",
    ]


def test_redis_py_runs_scripts_for_other_clients() -> None:
    calls: list[tuple[Any, ...]] = []

    class Other:
        def evalsha(self, *args: Any) -> Any:
            calls.append(("evalsha", *args))
            raise redis.exceptions.NoScriptError("NOSCRIPT No matching script.")

        def eval(self, *args: Any) -> Any:
            calls.append(("eval", *args))
            return [1]

    assert run_script(Other(), "abc", "return {1}", 1, "k", 2) == [1]
    assert calls == [("evalsha", "abc", 1, "k", 2), ("eval", "return {1}", 1, "k", 2)]
