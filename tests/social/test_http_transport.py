"""social.transport: httpx's Request and Response over plain sockets, with kept-alive
connections per thread, against raw servers on 127.0.0.1 that write the answers
byte for byte (keep-alive, closes, chunked and sized bodies, gzip, drips)."""

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from social import http as social_http
from social import transport
from social.connectors.base import ConnectorError
from social.transport import KeepAliveTransport

# (request bytes, index of the connection, index of the request on it) -> the
# bytes to answer, and whether to close the connection after them; None: close
# without answering.
Script = Callable[[bytes, int, int], tuple[list[bytes], bool] | None]


@dataclass
class RawServer:
    """Answers each request as its script says; counts connections and keeps the
    requests exactly as they arrived."""

    script: Script
    drip: float = 0.0  # seconds between two parts of an answer
    url: str = ""
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


def _read_request(connection: socket.socket, buffered: bytes) -> tuple[bytes, bytes]:
    """One request (head and a sized or chunked body) and what came after it."""
    data = buffered
    while b"\r\n\r\n" not in data:
        received = connection.recv(65536)
        if not received:
            return b"", b""
        data += received
    head, _, rest = data.partition(b"\r\n\r\n")
    lowered = head.lower()
    if b"transfer-encoding: chunked" in lowered:
        while b"0\r\n\r\n" not in rest:
            rest += connection.recv(65536)
        end = rest.index(b"0\r\n\r\n") + 5
    else:
        length = 0
        for line in lowered.split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(rest) < length:
            rest += connection.recv(65536)
        end = length
    return head + b"\r\n\r\n" + rest[:end], rest[end:]


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    listeners: list[socket.socket] = []
    stop = threading.Event()

    def start(script: Script, drip: float = 0.0) -> RawServer:
        server = RawServer(script, drip)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.1)
        listeners.append(listener)
        server.url = f"http://127.0.0.1:{listener.getsockname()[1]}"

        def handle(connection: socket.socket, number: int) -> None:
            with connection:
                connection.settimeout(10)
                buffered = b""
                for index in range(1000):
                    try:
                        request, buffered = _read_request(connection, buffered)
                    except OSError:
                        return
                    if not request:
                        return
                    server.requests.append(request)
                    answer = script(request, number, index)
                    if answer is None:
                        return
                    parts, close = answer
                    for part in parts:
                        if stop.is_set():
                            return
                        try:
                            connection.sendall(part)
                        except OSError:
                            return
                        time.sleep(server.drip)
                    if close:
                        return

        def accept() -> None:
            while not stop.is_set():
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                server.connections += 1
                threading.Thread(
                    target=handle, args=(connection, server.connections), daemon=True
                ).start()

        threading.Thread(target=accept, daemon=True).start()
        return server

    yield start
    stop.set()
    for listener in listeners:
        listener.close()


def sized(body: bytes, *headers: bytes) -> bytes:
    lines = [b"HTTP/1.1 200 OK", b"Content-Length: %d" % len(body), *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def always(*parts: bytes, close: bool = False) -> Script:
    return lambda request, connection, index: (list(parts), close)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(transport=KeepAliveTransport(), timeout=5.0) as client:
        yield client


def test_a_thread_keeps_its_connection_alive(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    server = serve(always(sized(b'{"id": "1"}', b"Content-Type: application/json")))

    answers = [http.get(f"{server.url}/n/{n}").json() for n in range(3)]

    assert answers == [{"id": "1"}] * 3
    assert server.connections == 1
    assert [request.split(b"\r\n")[0] for request in server.requests] == [
        b"GET /n/0 HTTP/1.1",
        b"GET /n/1 HTTP/1.1",
        b"GET /n/2 HTTP/1.1",
    ]


def test_each_thread_has_connections_of_its_own(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    server = serve(always(sized(b"ok")))
    together = threading.Barrier(3)

    def twice(_: int) -> list[bytes]:
        together.wait(timeout=5)
        return [http.get(server.url).content, http.get(server.url).content]

    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(twice, range(3)))

    assert answers == [[b"ok", b"ok"]] * 3
    assert server.connections == 3


def test_the_request_goes_out_as_httpx_built_it(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    server = serve(always(sized(b"")))

    http.post(
        f"{server.url}/api/posts?x=a%20b",
        json={"text": "hé"},
        headers={"Authorization": "Bearer t0k"},
    )

    assert server.requests == [
        b"POST /api/posts?x=a%20b HTTP/1.1\r\n"
        + b"Host: "
        + server.url.removeprefix("http://").encode()
        + b"\r\n"
        b"Accept: */*\r\n"
        b"Accept-Encoding: gzip, deflate\r\n"
        b"Connection: keep-alive\r\n"
        b"User-Agent: python-httpx/" + httpx.__version__.encode() + b"\r\n"
        b"Authorization: Bearer t0k\r\n"
        b"Content-Length: 14\r\n"
        b"Content-Type: application/json\r\n"
        b"\r\n" + '{"text":"hé"}'.encode()
    ]


def test_a_body_of_unknown_length_goes_as_one_chunk(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    server = serve(always(sized(b"")))

    http.post(server.url, content=iter([b"ab", b"cde"]))

    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    assert b"\r\nTransfer-Encoding: chunked" in head
    assert body == b"5\r\nabcde\r\n0\r\n\r\n"


def test_a_header_that_would_split_the_request_is_not_sent(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    server = serve(always(sized(b"")))

    with pytest.raises(httpx.LocalProtocolError):
        http.get(server.url, headers={"Authorization": "Bearer x\r\nX-Evil: 1"})

    assert server.connections == 0


def test_a_connection_the_server_closed_while_idle_is_replaced(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    # Each answer says keep-alive, and the server closes anyway right after it.
    server = serve(always(sized(b"ok"), close=True))

    first = http.get(server.url)
    time.sleep(0.1)  # the server's close reaches us
    second = http.get(server.url)

    assert (first.content, second.content) == (b"ok", b"ok")
    assert server.connections == 2


def test_an_answer_that_says_close_is_not_reused(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    server = serve(always(sized(b"ok", b"Connection: close")))

    contents = [http.get(server.url).content for _ in range(2)]

    assert contents == [b"ok", b"ok"]
    assert server.connections == 2


def test_an_idle_connection_expires(
    serve: Callable[..., RawServer],
    http: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = serve(always(sized(b"ok")))
    http.get(server.url)
    monkeypatch.setattr(transport, "KEEPALIVE_EXPIRY", 0.05)
    time.sleep(0.1)

    http.get(server.url)
    http.get(server.url)

    assert server.connections == 2


def test_a_forked_child_opens_connections_of_its_own(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    server = serve(always(sized(b"ok")))
    http.get(server.url)

    transport._forked()  # as os.register_at_fork calls it in a child
    http.get(server.url)
    http.get(server.url)

    assert server.connections == 2


def test_chunked_and_sized_bodies(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n"
        b"7;ext=1\r\n, world\r\n"
        b"0\r\nX-Trailer: t\r\n\r\n"
    )
    answers = {0: [chunked], 1: [sized(b"sized body")], 2: [chunked]}
    server = serve(lambda request, connection, index: (answers[index], False))

    contents = [http.get(server.url).content for _ in range(3)]

    assert contents == [b"hello, world", b"sized body", b"hello, world"]
    assert server.connections == 1


def test_an_answer_read_until_the_server_closes(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    server = serve(always(b"HTTP/1.1 200 OK\r\n\r\nto the end", close=True))

    response = http.get(server.url)

    assert (response.content, response.http_version) == (b"to the end", "HTTP/1.1")


def test_a_gzip_answer_is_decoded_and_keeps_its_headers(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    packed = gzip.compress(b'{"data": [1, 2]}')
    server = serve(
        always(
            sized(
                packed,
                b"Content-Encoding: gzip",
                b"Content-Type: application/json",
                b"X-Rate-Limit-Remaining: 7",
            )
        )
    )

    response = http.get(server.url)

    assert response.json() == {"data": [1, 2]}
    assert response.headers.multi_items() == [
        ("content-length", str(len(packed))),
        ("content-encoding", "gzip"),
        ("content-type", "application/json"),
        ("x-rate-limit-remaining", "7"),
    ]
    assert (response.status_code, response.reason_phrase) == (200, "OK")


def test_the_status_and_reason_come_through(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    server = serve(
        always(b"HTTP/1.1 429 Slow Down\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n")
    )

    response = http.get(server.url)

    assert (response.status_code, response.reason_phrase) == (429, "Slow Down")
    assert response.headers["retry-after"] == "3"
    assert response.content == b""


def test_a_refused_connection_is_a_connect_error(http: httpx.Client) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nobody listens there now

    with pytest.raises(httpx.ConnectError):
        http.get(f"http://127.0.0.1:{port}/")


def test_a_server_that_closes_without_answering(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    server = serve(lambda request, connection, index: None)

    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        http.get(server.url)


def test_an_answer_cut_short(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"
    server = serve(always(cut, close=True))

    with pytest.raises(httpx.RemoteProtocolError, match="ended early: 4 of 10 bytes"):
        http.get(server.url)


def test_a_malformed_status_line(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    server = serve(always(b"HTTX/9 what\r\n\r\n", close=True))

    with pytest.raises(httpx.RemoteProtocolError, match="Malformed status line"):
        http.get(server.url)


def test_informational_answers_are_skipped(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    early = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    )
    server = serve(always(early + sized(b"final")))

    response = http.get(server.url)

    assert (response.status_code, response.content) == (200, b"final")
    assert "link" not in response.headers


def test_answers_without_a_body_leave_the_connection_ready(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    answers = {
        0: b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",  # to a HEAD
        1: b"HTTP/1.1 204 No Content\r\n\r\n",
        2: sized(b"after"),
    }
    server = serve(lambda request, connection, index: ([answers[index]], False))

    head = http.head(server.url)
    empty = http.delete(server.url)
    after = http.get(server.url)

    assert [head.content, empty.content, after.content] == [b"", b"", b"after"]
    assert head.headers["content-length"] == "99"
    assert server.connections == 1


def test_an_http_1_0_answer_closes_its_connection(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    server = serve(always(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold"))

    responses = [http.get(server.url) for _ in range(2)]

    assert [(r.http_version, r.content) for r in responses] == [
        ("HTTP/1.0", b"old")
    ] * 2
    assert server.connections == 2


def test_chunks_and_a_length_together_are_read_as_chunks_then_closed(
    serve: Callable[..., RawServer], http: httpx.Client
) -> None:
    both = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nbody\r\n0\r\n\r\n"
    )
    server = serve(always(both))

    contents = [http.get(server.url).content for _ in range(2)]

    assert contents == [b"body", b"body"]
    assert server.connections == 2


@pytest.mark.parametrize(
    ("answer", "refusal"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "Malformed Content-Length",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Malformed Content-Length"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx",
            "transfer coding other than chunked",
        ),
        (
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n",
            "Malformed header line",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "Malformed chunk size",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
            "longer than its size",
        ),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "switched protocols"),
        (b"HTTP/1.1 200 OK\r\nX-A: 1\r\n", "ended inside its headers"),
    ],
    ids=[
        "two-lengths",
        "negative-length",
        "gzip-coding",
        "obs-fold",
        "chunk-size",
        "chunk-overrun",
        "upgrade",
        "cut-headers",
    ],
)
def test_malformed_answers_are_protocol_errors(
    serve: Callable[..., RawServer], http: httpx.Client, answer: bytes, refusal: str
) -> None:
    server = serve(always(answer, close=True))

    with pytest.raises(httpx.RemoteProtocolError, match=refusal):
        http.get(server.url)


def test_an_unsupported_scheme(http: httpx.Client) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        http.get("ftp://127.0.0.1/file")


@pytest.fixture
def default_client() -> Iterator[None]:
    """A client as social.http makes its default ones (the servers here are
    local)."""
    with social_http.pooled_client() as client:
        social_http.install_client(client)
        yield


@pytest.mark.usefixtures("default_client")
def test_a_silent_server_times_out_by_the_deadline(
    serve: Callable[..., RawServer],
) -> None:
    server = serve(lambda request, connection, index: ([], False))  # never answers
    started = time.monotonic()

    with social_http.deadline(0.5), pytest.raises(ConnectorError) as caught:
        social_http.request("GET", server.url)

    assert 0.45 <= time.monotonic() - started < 0.8
    assert caught.value.message == "The platform did not answer in time (ReadTimeout)."
    assert caught.value.permanent is False


@pytest.mark.usefixtures("default_client")
@pytest.mark.parametrize(
    "parts",
    [
        # the headers drip in: one line every DRIP seconds
        [b"HTTP/1.1 200 OK\r\n"] + [b"X-Slow: %d\r\n" % n for n in range(40)],
        # a chunked body drips in, one chunk every DRIP seconds
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]
        + [b"1\r\na\r\n"] * 40,
    ],
    ids=["headers", "chunks"],
)
def test_an_answer_that_drips_past_the_deadline_is_cut(
    serve: Callable[..., RawServer], parts: list[bytes]
) -> None:
    server = serve(lambda request, connection, index: (parts, False), drip=0.05)
    started = time.monotonic()

    with social_http.deadline(0.5), pytest.raises(ConnectorError) as caught:
        social_http.request("GET", server.url)

    assert 0.45 <= time.monotonic() - started < 0.7
    assert caught.value.message == "The platform did not answer in time (ReadTimeout)."


@pytest.mark.usefixtures("default_client")
def test_a_refused_connection_through_the_seam(serve: Callable[..., RawServer]) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()

    with pytest.raises(ConnectorError) as caught:
        social_http.request("POST", f"http://127.0.0.1:{port}/api/posts", json={})

    assert caught.value.message == "Could not reach the platform (ConnectError)."
    assert caught.value.permanent is False


@pytest.mark.usefixtures("default_client")
def test_a_platform_refusal_keeps_its_answer(serve: Callable[..., RawServer]) -> None:
    body = b'{"detail": "duplicate"}'
    server = serve(
        always(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
    )

    with pytest.raises(ConnectorError) as caught:
        social_http.request("POST", f"{server.url}/api/posts", json={})

    error = caught.value
    assert (error.message, error.permanent, error.status, error.body) == (
        "duplicate",
        True,
        403,
        body,
    )
    assert error.headers["content-type"] == "application/json"


def test_with_a_proxy_in_the_environment_the_default_client_uses_it(
    serve: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = serve(always(sized(b"via the proxy")))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)

    with social_http.pooled_client() as client:
        response = client.get("http://platform.example/api/me")

    assert response.content == b"via the proxy"
    assert proxy.requests[0].startswith(
        b"GET http://platform.example/api/me HTTP/1.1\r\n"
    )


@pytest.mark.usefixtures("default_client")
def test_a_cookie_one_call_got_is_not_sent_on_the_next(
    serve: Callable[..., RawServer],
) -> None:
    server = serve(always(sized(b"ok", b"Set-Cookie: session=tenant-a; Path=/")))

    social_http.request("GET", f"{server.url}/first")
    social_http.request("GET", f"{server.url}/second")

    assert [b"\r\ncookie:" in request.lower() for request in server.requests] == [
        False,
        False,
    ]
