"""Commands to a plain Redis over one kept socket per thread, in Redis's wire
protocol (RESP2), for the few commands a request sends on its hot path.

redis-py's command path (its pool's get and release, the command's packing,
the reply parser's layers, the retry wrapper) costs about 100 us of CPU per
command inside a request, where its code has gone cold; the command itself
costs Redis a few microseconds. `plain_client(client)` gives, for a redis-py
client whose connections are plain TCP (no password, TLS or unix socket), an
object with one method, `execute(*args)`: the same bytes sent, the reply read
as redis-py reads it (bytes, int, None, lists; an error inside a list is
returned in its place, an error reply is raised as redis-py's exception class,
e.g. NoScriptError), and redis-py's ConnectionError and TimeoutError when the
server cannot be reached or does not answer in the pool's socket timeout.

A socket that failed is closed (the next command connects again); one the
server closed while idle (or that holds stray bytes) is replaced before it is
used. There is no retry: a command that fails raises, as when Redis is away,
and the callers handle that as before. Keyed by process, so a forked child
connects for itself. Kept in `tenants` (which imports nothing of ours), so
every layer can use it.
"""

import contextlib
import os
import select
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import redis
import redis.exceptions
from redis._parsers.base import BaseParser
from redis.connection import Connection

Reply = Any  # bytes | int | None | list[Reply] | ResponseError


class PlainRedis:
    """RESP2 commands over one socket per thread to the Redis at host:port, db."""

    def __init__(
        self,
        host: str,
        port: int,
        db: int,
        *,
        timeout: float | None,
        connect_timeout: float | None,
    ) -> None:
        self.address = (host, port)
        self.db = db
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.local = threading.local()

    def execute(self, *args: str | bytes | int | float) -> Reply:
        """Send one command and return its reply (an error reply is raised)."""
        (reply,) = self.execute_many((args,))
        if isinstance(reply, redis.exceptions.ResponseError):
            raise reply
        return reply

    def execute_many(self, commands: Sequence[tuple[Any, ...]]) -> list[Reply]:
        """Send several commands at once (one write) and read their replies in
        order: one round trip. An error reply is returned in its command's
        place, not raised; a connection failure closes the socket and raises
        redis-py's TimeoutError or ConnectionError."""
        packed = b"".join(pack(args) for args in commands)
        # What `talking` does, without a generator context manager on every call.
        try:
            reader = self._reader()
            self._send(packed)
            return [read_reply(reader) for _ in commands]
        except OSError as error:  # TimeoutError included
            raise self._failed(error, "reading from") from error
        except redis.exceptions.ConnectionError:
            self._close()
            raise

    @contextlib.contextmanager
    def talking(self, timing_out: str) -> Iterator[None]:
        """A failure on the socket inside the block closes it and raises redis-py's
        TimeoutError ("Timeout <timing_out> <address>") or ConnectionError."""
        try:
            yield
        except OSError as error:  # TimeoutError included
            raise self._failed(error, timing_out) from error
        except redis.exceptions.ConnectionError:
            self._close()
            raise

    def _failed(self, error: OSError, timing_out: str) -> redis.exceptions.RedisError:
        """Close the socket; redis-py's error for `error` (see `talking`)."""
        self._close()
        if isinstance(error, TimeoutError):
            return redis.exceptions.TimeoutError(
                f"Timeout {timing_out} {self._where()}: {error}"
            )
        return redis.exceptions.ConnectionError(
            f"Error talking to {self._where()}: {error}"
        )

    def _send(self, command: bytes) -> None:
        self.local.socket.sendall(command)

    def _reader(self) -> Any:
        local = self.local
        reader: Any = getattr(local, "reader", None)
        if reader is not None and local.poller.poll(0):
            self._close()  # closed by the server, or out of step: not reused
            reader = None
        if reader is None:
            sock = socket.create_connection(self.address, self.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.timeout)
            # One poller per socket (`_readable` builds one per call).
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            local.socket, local.poller = sock, poller
            local.reader = reader = sock.makefile("rb")
            if self.db:
                sock.sendall(pack(("SELECT", self.db)))  # setup, not a command
                answer = read_reply(reader)
                if isinstance(answer, redis.exceptions.ResponseError):
                    self._close()
                    raise answer
        return reader

    def _close(self) -> None:
        reader = getattr(self.local, "reader", None)
        sock = getattr(self.local, "socket", None)
        self.local.reader = self.local.socket = self.local.poller = None
        if reader is not None:
            reader.close()
        if sock is not None:
            sock.close()

    def _where(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"


def pack(args: tuple[str | bytes | int | float, ...]) -> bytes:
    """A command in RESP2, each argument encoded as redis-py encodes it."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, bool):
            msg = (
                "Invalid input of type: 'bool'. Convert to a bytes, string, int or "
                "float first."
            )
            raise redis.exceptions.DataError(msg)
        else:
            data = repr(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


def read_reply(reader: Any) -> Reply:
    """One reply, as redis-py's RESP2 parser returns it (errors not raised)."""
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise redis.exceptions.ConnectionError("Connection closed by server.")
    kind, rest = line[:1], line[1:-2]
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = reader.read(size + 2)
        if len(data) != size + 2:
            raise redis.exceptions.ConnectionError("Connection closed by server.")
        return data[:-2]
    if kind == b"*":
        count = int(rest)
        if count < 0:
            return None
        return [read_reply(reader) for _ in range(count)]
    if kind == b":":
        return int(rest)
    if kind == b"+":
        return rest
    if kind == b"-":
        error = BaseParser.parse_error(rest.decode(errors="replace"))
        if isinstance(error, redis.exceptions.ConnectionError):
            raise error
        return error
    raise redis.exceptions.InvalidResponse(f"Protocol Error: {line!r}")


def _readable(sock: socket.socket) -> bool:
    """Whether an idle socket has something to read (EOF or stray bytes)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


_plain: "WeakKeyDictionary[Any, tuple[int, PlainRedis | None]]" = WeakKeyDictionary()
_plain_lock = threading.Lock()


def plain_client(client: Any) -> PlainRedis | None:
    """The plain client of a redis-py client's connection pool, or None when its
    connections are not plain TCP without credentials (or it is not redis-py)."""
    if not isinstance(client, redis.Redis):
        return None
    pool = client.connection_pool
    known = _plain.get(pool)
    pid = os.getpid()
    if known is not None and known[0] == pid:
        return known[1]
    with _plain_lock:
        plain = _plain_of(pool)
        _plain[pool] = (pid, plain)
    return plain


# The options of a pool's connections that the plain client reproduces or that
# change nothing on the wire for the commands it sends.
_PLAIN_OPTIONS = {
    "host",
    "port",
    "db",
    "socket_timeout",
    "socket_connect_timeout",
    "parser_class",
    "driver_info",
    "himport_registry",
    "maint_notifications_pool_handler",
    "maint_notifications_config",
    "orig_host_address",
    "orig_socket_timeout",
    "orig_socket_connect_timeout",
    "retry",
    "retry_on_error",
    "retry_on_timeout",
    "health_check_interval",
    "client_name",
    "lib_name",
    "lib_version",
}


def _plain_of(pool: Any) -> PlainRedis | None:
    if getattr(pool, "connection_class", None) is not Connection:
        return None
    options: dict[str, Any] = dict(getattr(pool, "connection_kwargs", {}))
    if not set(options) <= _PLAIN_OPTIONS or options.get("client_name"):
        return None
    return PlainRedis(
        str(options.get("host", "localhost")),
        int(options.get("port", 6379)),
        int(options.get("db", 0) or 0),
        timeout=options.get("socket_timeout"),
        connect_timeout=options.get("socket_connect_timeout"),
    )


def run_script(client: Any, sha: str, script: str, numkeys: int, *args: Any) -> Reply:
    """A Lua script by its hash (EVALSHA), sent whole (EVAL) when this Redis does
    not know it yet: over the plain client when the pool allows one, else
    through redis-py's client."""
    plain = plain_client(client)
    if plain is None:
        try:
            return client.evalsha(sha, numkeys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(script, numkeys, *args)
    try:
        return plain.execute("EVALSHA", sha, numkeys, *args)
    except redis.exceptions.NoScriptError:
        return plain.execute("EVAL", script, numkeys, *args)


@dataclass(frozen=True)
class ScriptCall:
    """A Lua script to run together with another caller's (`run_scripts`), and
    who takes its reply (`answer`: the reply, or the error it raised)."""

    sha: str
    script: str
    numkeys: int
    args: tuple[Any, ...]
    answer: Callable[[Reply | BaseException], None]


def run_scripts(
    client: Any, calls: Sequence[tuple[str, str, int, tuple[Any, ...]]]
) -> list[Reply]:
    """Several Lua scripts (sha, script, numkeys, args), each as `run_script`
    runs it, in one round trip over the plain client (their EVALSHAs sent
    together; a script Redis does not know is then sent whole, once); through
    redis-py one after the other. Each reply in its place, an error reply as
    its exception (returned, not raised); a failure to reach Redis raises."""
    plain = plain_client(client)
    if plain is None:
        replies: list[Reply] = []
        for sha, script, numkeys, args in calls:
            try:
                replies.append(run_script(client, sha, script, numkeys, *args))
            except redis.exceptions.ConnectionError:
                raise
            except redis.exceptions.ResponseError as error:
                replies.append(error)
        return replies
    replies = plain.execute_many(
        [("EVALSHA", sha, numkeys, *args) for sha, _, numkeys, args in calls]
    )
    for index, (_, script, numkeys, args) in enumerate(calls):
        if isinstance(replies[index], redis.exceptions.NoScriptError):
            try:
                replies[index] = plain.execute("EVAL", script, numkeys, *args)
            except redis.exceptions.ResponseError as error:
                replies[index] = error
    return replies
