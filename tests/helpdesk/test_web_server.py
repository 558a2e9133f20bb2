"""helpdesk/web_server.py: one acceptor deals connections to uvicorn workers.

Each test runs the real server (`python -m helpdesk.web_server`) in a subprocess on
a free loopback port, serving tests/helpdesk/web_server_app.py, whose answers name
the worker that gave them.
"""

import asyncio
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from websockets.sync.client import connect as websocket_connect

from helpdesk.web_server import _counted
from tests.helpdesk.live import ROOT, free_port

APP = "tests.helpdesk.web_server_app:application"


class Served:
    def __init__(self, workers: int, log: Path) -> None:
        self.port = free_port()
        self.log_path = log
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "helpdesk.web_server",
                APP,
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--timeout-graceful-shutdown",
                "5",
                "--no-access-log",
            ],
            cwd=ROOT,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def ready_workers(self) -> list[int]:
        return [
            int(pid) for pid in re.findall(r"Worker \[(\d+)\] is ready", self.log())
        ]

    def wait_for(self, what: str, condition, timeout: float = 30):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not (found := condition()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} within {timeout} s; log:\n{self.log()}")
            time.sleep(0.05)
        return found

    def children(self) -> set[int]:
        pid = self.process.pid
        path = Path(f"/proc/{pid}/task/{pid}/children")
        return {int(child) for child in path.read_text().split()}

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def served(tmp_path: Path, workers: int) -> Iterator[Served]:
    server = Served(workers, tmp_path / "server.log")
    try:
        children = server.wait_for(
            f"{workers} ready workers", lambda: len(server.ready_workers()) == workers
        )
        assert children
        yield server
    finally:
        leftovers = set()
        with suppress(OSError):
            leftovers = server.children()
        server.stop()
        for pid in leftovers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def get(connection: http.client.HTTPConnection, path: str = "/") -> int:
    connection.request("GET", path)
    response = connection.getresponse()
    assert response.status == 200
    return int(response.read())


def open_at_once(
    server: Served, count: int
) -> list[tuple[http.client.HTTPConnection, int]]:
    """`count` connections opened together, one request on each: (connection, pid)."""
    barrier = threading.Barrier(count)
    opened: list[tuple[http.client.HTTPConnection, int]] = []
    lock = threading.Lock()

    def client() -> None:
        connection = server.connection()
        barrier.wait()
        pid = get(connection)
        with lock:
            opened.append((connection, pid))

    threads = [threading.Thread(target=client) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(opened) == count
    return opened


def pids_of(server: Served, pid: int) -> int:
    """How many established connections worker `pid` holds on the server's port."""
    out = subprocess.run(
        ["/usr/bin/ss", "-tnpH", "state", "established", f"( sport = :{server.port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(f"pid={pid}," in line for line in out.splitlines())


def test_connections_opened_at_once_are_split_evenly(tmp_path: Path) -> None:
    # Under `uvicorn --workers 2` such a burst was split 8/0, 7/1, 6/2 or 5/3 in 7
    # tries of 12 on the bench machine.
    with served(tmp_path, workers=2) as server:
        workers = set(server.ready_workers())
        for _ in range(6):
            opened = open_at_once(server, 8)
            split = Counter(pid for _connection, pid in opened)
            assert set(split) == workers
            assert sorted(split.values()) == [4, 4]
            assert {pid: pids_of(server, pid) for pid in workers} == dict.fromkeys(
                workers, 4
            )
            for connection, _pid in opened:
                connection.close()
            server.wait_for(
                "all connections closed",
                lambda: all(pids_of(server, pid) == 0 for pid in workers),
            )


def test_requests_on_one_connection_stay_with_its_worker(tmp_path: Path) -> None:
    with served(tmp_path, workers=2) as server:
        connection = server.connection()
        assert len({get(connection) for _ in range(25)}) == 1


def test_a_new_connection_goes_to_the_worker_holding_fewest(tmp_path: Path) -> None:
    # Closed connections, a websocket's included, are given back to the count.
    with served(tmp_path, workers=2) as server:
        a, b = server.ready_workers()
        first = server.connection()
        on_first = get(first)
        with websocket_connect(f"ws://127.0.0.1:{server.port}/ws") as websocket:
            on_websocket = int(websocket.recv(timeout=5))
            websocket.send("hello")
            assert websocket.recv(timeout=5) == "hello"
            assert {on_first, on_websocket} == {a, b}
            third, fourth = server.connection(), server.connection()
            assert {get(third), get(fourth)} == {a, b}
            # Now 2 and 2. Close both of the websocket's worker's connections.
        (third if get(third) == on_websocket else fourth).close()
        server.wait_for(
            "the connections closed", lambda: pids_of(server, on_websocket) == 0
        )
        time.sleep(0.3)  # the worker's word reaches the acceptor
        fifth, sixth = server.connection(), server.connection()
        assert [get(fifth), get(sixth)] == [on_websocket, on_websocket]
        assert pids_of(server, on_first) == 2


def test_sighup_replaces_each_worker_and_no_request_fails(tmp_path: Path) -> None:
    with served(tmp_path, workers=2) as server:
        old = set(server.ready_workers())
        assert server.children() == old
        answers: list[int] = []
        failures: list[str] = []
        done = threading.Event()

        def client() -> None:
            # As the peers' bench client: a keep-alive connection the server
            # closed while idle is opened again, once.
            connection = server.connection()
            while not done.is_set():
                reused = connection.sock is not None
                try:
                    answers.append(get(connection))
                except (http.client.RemoteDisconnected, ConnectionResetError) as error:
                    connection.close()
                    if not reused:
                        failures.append(repr(error))
                except Exception as error:  # every failure counts
                    failures.append(repr(error))
                time.sleep(0.005)

        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        server.wait_for("answers before the restart", lambda: len(answers) > 20)
        server.process.send_signal(signal.SIGHUP)
        new = server.wait_for(
            "two new workers, the old ones gone",
            lambda: (c := server.children()) and len(c) == 2 and not c & old and c,
            timeout=60,
        )
        count = len(answers)
        server.wait_for("answers after the restart", lambda: len(answers) > count + 20)
        done.set()
        for thread in clients:
            thread.join()
        assert failures == []
        assert set(answers[-10:]) <= new
        assert set(answers) <= old | new
        assert "Replacing 2 worker(s), one at a time" in server.log()


def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    with served(tmp_path, workers=2) as server:
        survivor, victim = server.ready_workers()
        os.kill(victim, signal.SIGKILL)
        workers = server.wait_for(
            "a replacement",
            lambda: len(ready := server.ready_workers()) == 3 and ready,
        )
        replacement = workers[2]
        assert server.children() == {survivor, replacement}
        assert f"Worker [{victim}] exited with code -9" in server.log()
        opened = open_at_once(server, 4)
        assert Counter(pid for _connection, pid in opened) == {
            survivor: 2,
            replacement: 2,
        }


def test_sigterm_lets_a_request_in_flight_finish(tmp_path: Path) -> None:
    with served(tmp_path, workers=2) as server:
        workers = server.children()
        answer: list[int] = []
        connection = server.connection()
        slow = threading.Thread(target=lambda: answer.append(get(connection, "/slow")))
        slow.start()
        time.sleep(0.2)
        server.process.send_signal(signal.SIGTERM)
        slow.join(timeout=10)
        assert len(answer) == 1
        assert answer[0] in workers
        assert server.process.wait(timeout=20) == 0
        for pid in workers:
            assert (
                not Path(f"/proc/{pid}").exists()
                or "Z" in (Path(f"/proc/{pid}/stat").read_text().split()[2])
            )
        with pytest.raises(ConnectionRefusedError):
            get(server.connection())


def test_an_app_that_cannot_start_stops_the_server(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "helpdesk.web_server"]
    command += ["tests.helpdesk.web_server_app:no_such_app", "--port", str(free_port())]
    with log.open("wb") as out:
        result = subprocess.run(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=60
        )
    assert result.returncode == 3
    text = log.read_text()
    assert 'Attribute "no_such_app" not found in module' in text
    assert "3 workers in a row died before they were ready; stopping" in text
    assert "is ready" not in text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--workers", "0"], "--workers must be at least 1"),
        (["--workers", "two"], "argument --workers: invalid int value: 'two'"),
        (["--port", "http"], "argument --port: invalid int value: 'http'"),
    ],
)
def test_bad_arguments_are_refused(arguments: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "helpdesk.web_server", APP, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr


# -- one write per response (HeadWithBody) -----------------------------------------
# The worker's HTTP protocol against uvicorn's own, on a transport that records
# what is written and when it is closed.

Events = list[tuple[str, bytes]]
ONE_WRITE = _counted(HttpToolsProtocol, lambda: None)
GET_ROOT = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


class RecordingTransport:
    made: "list[RecordingTransport]" = []

    def __init__(self) -> None:
        self.events: Events = []
        self.closing = False
        RecordingTransport.made.append(self)

    def write(self, data: bytes) -> None:
        self.events.append(("write", bytes(data)))

    def close(self) -> None:
        self.events.append(("close", b""))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def connected(
    protocol_class: type, app: Any
) -> tuple[Any, RecordingTransport, ServerState]:
    """A `protocol_class` serving `app` on a RecordingTransport, inside the
    running loop: (protocol, transport, server state)."""
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    state = ServerState()
    protocol = protocol_class(
        config=config,
        server_state=state,
        app_state={},
        _loop=asyncio.get_running_loop(),
    )
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport, state


def exchange(protocol_class: type, app, request: bytes) -> Events:  # type: ignore[no-untyped-def]
    """What `protocol_class` writes to its transport for `request` answered by
    `app`, once the app has finished and the loop has run its callbacks."""

    async def go() -> Events:
        protocol, transport, state = connected(protocol_class, app)
        protocol.data_received(request)
        await asyncio.gather(*state.tasks)
        for _ in range(3):
            await asyncio.sleep(0)
        if protocol.timeout_keep_alive_task is not None:
            protocol.timeout_keep_alive_task.cancel()
        return transport.events

    return asyncio.run(go())


async def answer(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    await receive()
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


def test_a_head_with_content_length_goes_out_with_its_body_in_one_write() -> None:
    plain = exchange(HttpToolsProtocol, answer, GET_ROOT)
    assert [kind for kind, _ in plain] == ["write", "write"]
    assert plain[1] == ("write", b"hello")
    assert exchange(ONE_WRITE, answer, GET_ROOT) == [("write", plain[0][1] + b"hello")]


def test_a_chunked_or_empty_or_head_answer_is_written_as_uvicorn_writes_it() -> None:
    async def chunked(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    async def empty(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await receive()
        headers = [(b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    head = b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"
    for app, request, writes in [
        (chunked, GET_ROOT, 3),
        (empty, GET_ROOT, 2),
        (answer, head, 1),
    ]:
        plain = exchange(HttpToolsProtocol, app, request)
        assert len(plain) == writes
        assert exchange(ONE_WRITE, app, request) == plain


def test_a_held_head_is_written_before_a_body_that_is_slow_to_come() -> None:
    seen: list[Events] = []

    async def slow(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await receive()
        headers = [(b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await asyncio.sleep(0.05)
        seen.append(list(RecordingTransport.made[-1].events))
        await send({"type": "http.response.body", "body": b"hello"})

    plain = exchange(HttpToolsProtocol, slow, GET_ROOT)
    assert seen == [plain[:1]]
    seen.clear()
    assert exchange(ONE_WRITE, slow, GET_ROOT) == plain
    assert seen == [plain[:1]]


def test_a_held_head_is_written_before_the_transport_closes() -> None:
    async def fails(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await receive()
        headers = [(b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        raise RuntimeError("the app failed after its head")

    plain = exchange(HttpToolsProtocol, fails, GET_ROOT)
    assert [kind for kind, _ in plain] == ["write", "close"]
    assert exchange(ONE_WRITE, fails, GET_ROOT) == plain


def test_an_interim_100_continue_is_written_alone() -> None:
    async def reads(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        message = await receive()
        body = message["body"]
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    request = (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )

    async def go(protocol_class: type) -> Events:
        protocol, transport, state = connected(protocol_class, reads)
        protocol.data_received(request)
        await asyncio.sleep(0)  # the app asks for the body: 100 Continue
        protocol.data_received(b"abc")
        await asyncio.gather(*state.tasks)
        await asyncio.sleep(0)
        if protocol.timeout_keep_alive_task is not None:
            protocol.timeout_keep_alive_task.cancel()
        return transport.events

    plain = asyncio.run(go(HttpToolsProtocol))
    assert plain[0] == ("write", b"HTTP/1.1 100 Continue\r\n\r\n")
    assert [kind for kind, _ in plain] == ["write", "write", "write"]
    assert plain[2] == ("write", b"abc")
    assert asyncio.run(go(ONE_WRITE)) == [plain[0], ("write", plain[1][1] + b"abc")]
