"""An httpx transport of plain HTTP/1.1 over sockets, with kept-alive connections
per thread: the default clients of social/http.py send through it.

A delivery worker makes one platform call per reply. Through social.http.request
against a bare ASGI app, a call cost about 0.7-0.8 ms of CPU over httpx's own
transport (httpcore and h11: pure-Python parsing, the pool's bookkeeping), 0.45-0.48
ms over the standard library's http.client (whose headers go through the email
package's parser) and 0.36-0.43 ms over this one (load 7.7). The request goes out
in one write, as httpx built it; the answer is read by a small parser of its own.
Connectors keep httpx's Request and Response, and its errors:

- every wait (connect, TLS handshake, write, each read of the answer) is bounded
  by the request's "timeout" extension, asked again before each one, so a
  `social.http._Budget` ends the whole call by its deadline, an answer that drips
  in included (the answer is read in full here, against that deadline);
- failures are httpx's: ConnectError / ConnectTimeout, WriteError / WriteTimeout,
  ReadError / ReadTimeout, RemoteProtocolError for a malformed or cut answer,
  LocalProtocolError for a header that cannot be sent, UnsupportedProtocol;
- a connection is kept for the next call of the same thread to the same origin
  unless either side says it closes; one idle for KEEPALIVE_EXPIRY seconds, or
  that the server closed (or wrote to) while it was idle, is not used again. A
  call is never retried here: a request that may have reached the platform is the
  caller's to settle.

Answers are framed as RFC 9112 section 6.3 says, with h11's refusals: a transfer
coding other than chunked, a Content-Length that is not one number, a 101. No
proxies: social.http keeps httpx's own transport when the environment names one.
"""

import io
import os
import re
import select
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

# Idle connections older than this are closed instead of used (httpx's default).
KEEPALIVE_EXPIRY = 5.0
# Idle connections a thread keeps, all origins together.
MAX_IDLE = 8
DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 9110 token characters (methods and field names); values may not hold CR, LF
# or NUL (a header split in two would be a request smuggled by a stored value).
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSENDABLE = re.compile(rb"[\r\n\x00]")
_STATUS_LINE = re.compile(rb"(HTTP/1\.[01]) ([0-9]{3})(?: ([^\r\n]*))?\r?\n")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
# Bounds on what an answer's head may hold (http.client's).
MAX_LINE = 65536
MAX_FIELDS = 100

# Connections made before a fork belong to the parent; a child drops them.
_generation = 0


def _forked() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_forked)


class _Connection:
    __slots__ = ("__weakref__", "generation", "idle_since", "origin", "sock")

    def __init__(self, sock: socket.socket, origin: tuple[str, str, int]) -> None:
        self.sock = sock
        self.origin = origin
        self.idle_since = 0.0
        self.generation = _generation

    def reusable(self, now: float) -> bool:
        """Still ours, not idle too long, and nothing (an end of stream, a stray
        byte) arrived while idle."""
        if self.generation != _generation:
            return False
        if now - self.idle_since > KEEPALIVE_EXPIRY or self.sock.fileno() < 0:
            return False
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return not poller.poll(0)

    def close(self) -> None:
        self.sock.close()


def _seconds(timeouts: Mapping[str, Any], operation: str) -> float | None:
    """The timeout of the next blocking operation; past a `_Budget`'s deadline,
    TimeoutError at once."""
    deadline = getattr(timeouts, "deadline", None)
    if deadline is not None and time.monotonic() >= deadline:
        raise TimeoutError("the request's deadline has passed")
    value: float | None = timeouts.get(operation)
    return value


class _DeadlineReader(io.RawIOBase):
    """The socket's reads for one answer, each bounded by the request's read
    timeout as it stands at that read (a `_Budget` shrinks it to the deadline)."""

    def __init__(self, sock: socket.socket, timeouts: Mapping[str, Any]) -> None:
        super().__init__()
        self._sock = sock
        self._timeouts = timeouts

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(_seconds(self._timeouts, "read"))
        return self._sock.recv_into(buffer)


def _request_bytes(request: httpx.Request) -> bytes:
    """The request line, headers and body as they go on the wire."""
    method = request.method.encode("ascii")
    if _TOKEN.fullmatch(method) is None:
        raise httpx.LocalProtocolError(f"Illegal method {request.method!r}")
    lines = [b"%s %s HTTP/1.1" % (method, request.url.raw_path)]
    chunked = False
    for name, value in request.headers.raw:
        if _TOKEN.fullmatch(name) is None or _UNSENDABLE.search(value) is not None:
            raise httpx.LocalProtocolError(f"Illegal header {name!r}")
        if name.lower() == b"transfer-encoding" and value.lower() == b"chunked":
            chunked = True
        lines.append(b"%s: %s" % (name, value))
    lines.append(b"\r\n")
    body = request.read()
    if chunked:  # a stream of unknown length: sent as one chunk
        body = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
    return b"\r\n".join(lines) + body


@dataclass(slots=True)
class _Answer:
    version: bytes
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool


def _line(reader: io.BufferedIOBase) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise httpx.RemoteProtocolError("A line of the answer is too long.")
    return line


def _fields(reader: io.BufferedIOBase) -> list[tuple[bytes, bytes]]:
    """Header (or trailer) fields up to the empty line."""
    fields: list[tuple[bytes, bytes]] = []
    while True:
        line = _line(reader)
        if line in (b"\r\n", b"\n"):
            return fields
        if not line:
            raise httpx.RemoteProtocolError("The answer ended inside its headers.")
        name, colon, value = line.partition(b":")
        if not colon or _TOKEN.fullmatch(name) is None:
            raise httpx.RemoteProtocolError(f"Malformed header line {line[:80]!r}")
        if len(fields) == MAX_FIELDS:
            raise httpx.RemoteProtocolError("The answer has too many headers.")
        fields.append((name, value.strip(b" \t\r\n")))


def _values(fields: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """The comma-separated values of every `name` field, lowercased."""
    return [
        value.strip().lower()
        for field, values in fields
        if field.lower() == name
        for value in values.split(b",")
    ]


def _exactly(reader: io.BufferedIOBase, size: int) -> bytes:
    """`size` bytes, read a megabyte at most at a time (a read of n bytes takes
    n bytes of memory first, whatever a length announced)."""
    parts: list[bytes] = []
    left = size
    while left:
        part = reader.read(min(left, 1 << 20))
        if not part:
            raise httpx.RemoteProtocolError(
                f"The answer ended early: {size - left} of {size} bytes."
            )
        parts.append(part)
        left -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _chunked(reader: io.BufferedIOBase) -> bytes:
    parts: list[bytes] = []
    while True:
        size = _line(reader).split(b";", 1)[0].strip()
        if _HEX.fullmatch(size) is None:
            raise httpx.RemoteProtocolError(f"Malformed chunk size {size[:20]!r}")
        if size.strip(b"0") == b"":
            _fields(reader)  # trailers: read, not kept
            return b"".join(parts)
        parts.append(_exactly(reader, int(size, 16)))
        if _line(reader) not in (b"\r\n", b"\n"):
            raise httpx.RemoteProtocolError("A chunk is longer than its size.")


def _read_answer(reader: io.BufferedIOBase, method: str) -> _Answer:
    """Read one answer: its status line and headers (1xx answers skipped), then the
    body as RFC 9112 section 6.3 frames it."""
    while True:
        line = _line(reader)
        if not line:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response."
            )
        match = _STATUS_LINE.fullmatch(line)
        if match is None:
            raise httpx.RemoteProtocolError(f"Malformed status line {line[:80]!r}")
        version, code, reason = match.group(1, 2, 3)
        status = int(code)
        fields = _fields(reader)
        if status >= 200:
            break
        if status == 101:
            raise httpx.RemoteProtocolError("The server switched protocols.")
    keep_alive = version == b"HTTP/1.1" and b"close" not in _values(
        fields, b"connection"
    )
    codings = _values(fields, b"transfer-encoding")
    lengths = set(_values(fields, b"content-length"))
    if method == "HEAD" or status in (204, 304):
        body = b""
    elif codings:
        if codings[-1] != b"chunked":
            raise httpx.RemoteProtocolError("A transfer coding other than chunked.")
        body = _chunked(reader)
        keep_alive = keep_alive and not lengths  # both: a smuggling attempt
    elif lengths:
        length = lengths.pop()
        if lengths or not length.isdigit():
            raise httpx.RemoteProtocolError("Malformed Content-Length.")
        body = _exactly(reader, int(length))
    else:
        body = reader.read()  # until the server closes
        keep_alive = False
    return _Answer(version, status, reason or b"", fields, body, keep_alive)


class KeepAliveTransport(httpx.BaseTransport):
    """HTTP/1.1 with kept-alive connections per thread (see the module's
    docstring). Thread-safe: each thread has its own connections."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._local = threading.local()
        self._open: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: Mapping[str, Any] = request.extensions.get("timeout", {})
        url = request.url
        scheme = url.scheme
        if scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"Unsupported URL scheme {scheme!r}")
        origin = (
            scheme,
            url.raw_host.decode("ascii"),
            url.port or DEFAULT_PORTS[scheme],
        )
        payload = _request_bytes(request)
        connection = self._idle(origin) or self._connect(origin, timeouts)
        try:
            answer = self._exchange(connection.sock, payload, request, timeouts)
        except BaseException:
            self._discard(connection)
            raise
        if answer.keep_alive:
            self._keep(connection)
        else:
            self._discard(connection)
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            content=answer.body,
            request=request,
            extensions={
                "http_version": answer.version,
                "reason_phrase": answer.reason,
            },
        )

    def _exchange(
        self,
        sock: socket.socket,
        payload: bytes,
        request: httpx.Request,
        timeouts: Mapping[str, Any],
    ) -> "_Answer":
        try:
            sock.settimeout(_seconds(timeouts, "write"))
            sock.sendall(payload)
        except TimeoutError as exc:
            raise httpx.WriteTimeout(str(exc), request=request) from exc
        except OSError as exc:
            raise httpx.WriteError(str(exc), request=request) from exc
        reader = io.BufferedReader(_DeadlineReader(sock, timeouts))
        try:
            return _read_answer(reader, request.method)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except httpx.RemoteProtocolError as exc:
            exc.request = request
            raise
        except OSError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        finally:
            reader.close()  # not the socket

    def _pool(self) -> list[_Connection]:
        try:
            idle: list[_Connection] = self._local.idle
        except AttributeError:
            idle = self._local.idle = []
        return idle

    def _idle(self, origin: tuple[str, str, int]) -> _Connection | None:
        """This thread's most recent idle connection to `origin` that can still
        serve (the ones that cannot are closed on the way)."""
        idle = self._pool()
        now = time.monotonic()
        for index in range(len(idle) - 1, -1, -1):
            connection = idle[index]
            if connection.origin != origin:
                continue
            del idle[index]
            if connection.reusable(now):
                return connection
            self._discard(connection)
        return None

    def _keep(self, connection: _Connection) -> None:
        idle = self._pool()
        connection.idle_since = time.monotonic()
        idle.append(connection)
        while len(idle) > MAX_IDLE:
            self._discard(idle.pop(0))

    def _connect(
        self, origin: tuple[str, str, int], timeouts: Mapping[str, Any]
    ) -> _Connection:
        scheme, host, port = origin
        try:
            sock = socket.create_connection(
                (host, port), timeout=_seconds(timeouts, "connect")
            )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock.settimeout(_seconds(timeouts, "connect"))
                sock = self._tls().wrap_socket(sock, server_hostname=host)
        except TimeoutError as exc:
            sock.close()
            raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
        except OSError as exc:  # ssl.SSLError included
            sock.close()
            raise httpx.ConnectError(str(exc)) from exc
        connection = _Connection(sock, origin)
        with self._lock:
            self._open.add(connection)
        return connection

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            context = httpx.create_ssl_context()
            context.set_alpn_protocols(["http/1.1"])
            self._ssl_context = context
        return self._ssl_context

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        with self._lock:
            self._open.discard(connection)

    def close(self) -> None:
        """Close every connection of every thread (the client is closed)."""
        with self._lock:
            connections = list(self._open)
            self._open.clear()
        for connection in connections:
            connection.close()
