"""Earshot's web server: uvicorn workers behind one acceptor that balances connections.

    python -m helpdesk.web_server helpdesk.asgi:application --host 127.0.0.1 \\
        --port 8000 --workers 2 [--timeout-graceful-shutdown 10] [--no-access-log]

`uvicorn --workers N` lets its workers race to `accept()` on one shared socket. A
burst of new keep-alive connections then often lands on one worker: eight clients
connecting at once were split 8/0, 7/1, 6/2 or 5/3 in 7 tries of 12. That worker
runs at full CPU while the other idles, for as long as the connections live, so
throughput and latency depend on luck (issue 12).

Here the parent process accepts every connection and hands it over (`SCM_RIGHTS` on
a socket pair) to the ready worker holding the fewest open connections; a worker
tells the parent each time one of its connections closes. Requests never pass
through the parent: each worker is an ordinary uvicorn server (HTTP and
websockets) that gets its connections from the pair instead of a listening socket.

Signals to the parent:
- SIGTERM or SIGINT: stop accepting; each worker answers its requests in flight
  (uvicorn's graceful shutdown, `--timeout-graceful-shutdown`), then all exit;
- SIGHUP: replace the workers one at a time (a deploy), each replacement ready
  before the old worker stops receiving connections and shuts down gracefully.
A worker that dies is replaced.

On the pair, the parent sends `c` with one descriptor per connection, and `q` when
it retires the worker (nothing follows it); the worker sends `r` once it is ready
and `x` for each connection that closed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.utils import get_client_addr

logger = logging.getLogger("uvicorn.error")

CONNECTION = b"c"
RETIRE = b"q"
READY = b"r"
CLOSED = b"x"

# Connections taken from the listening socket per wake-up, before the parent
# looks at its workers' messages again.
ACCEPT_BURST = 64
# A replacement (SIGHUP) that is not ready by then is killed and the restart stops,
# keeping the old worker, as uvicorn does.
READY_TIMEOUT = 60.0
# A worker that dies this soon after starting is replaced only after this long.
RESPAWN_PAUSE = 1.0
# Workers in a row that die before they are ready, with none ever ready: the app
# cannot start (an import error, a refused setting), so the server stops.
STARTUP_FAILURES = 3


@dataclass
class Options:
    app: str
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    backlog: int = 2048
    timeout_graceful_shutdown: int | None = None
    log_level: str = "info"
    access_log: bool = True

    def worker_command(self, control_fd: int) -> list[str]:
        command = [sys.executable, "-m", "helpdesk.web_server", self.app]
        command += ["--worker-fd", str(control_fd), "--log-level", self.log_level]
        if self.timeout_graceful_shutdown is not None:
            command += [
                "--timeout-graceful-shutdown",
                str(self.timeout_graceful_shutdown),
            ]
        if not self.access_log:
            command.append("--no-access-log")
        return command

    def uvicorn_config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            lifespan="off",
            log_level=self.log_level,
            access_log=self.access_log,
            timeout_graceful_shutdown=self.timeout_graceful_shutdown,
        )


def parse(argv: Sequence[str]) -> tuple[Options, int | None]:
    parser = argparse.ArgumentParser(
        prog="python -m helpdesk.web_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("app", help="the ASGI app, as module:attribute")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "1")),
        help="worker processes (default $WEB_CONCURRENCY, else 1)",
    )
    parser.add_argument("--backlog", type=int, default=2048)
    parser.add_argument("--timeout-graceful-shutdown", type=int, default=None)
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
    )
    parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    parser.add_argument("--worker-fd", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    options = Options(
        app=args.app,
        host=args.host,
        port=args.port,
        workers=args.workers,
        backlog=args.backlog,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    return options, args.worker_fd


# -- the parent ---------------------------------------------------------------------


@dataclass(eq=False)
class Worker:
    process: subprocess.Popen[bytes]
    control: socket.socket
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    retiring: bool = False
    # Its end of the pair closed: it has exited, or is about to.
    gone: bool = False
    connections: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid


class Acceptor:
    """Accepts connections and deals them to the workers, fewest open first."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.workers: list[Worker] = []
        self.selector = selectors.DefaultSelector()
        self.listener: socket.socket | None = None
        self.listening = False
        self.stopping = False
        self.restart_requested = False
        self.to_replace: list[Worker] = []
        self.replacement: Worker | None = None
        self.respawn_at = 0.0
        self.ever_ready = False
        self.failed_starts = 0
        self.exit_code = 0

    # The loop.

    def run(self) -> int:
        listener = socket.create_server(
            (self.options.host, self.options.port), backlog=self.options.backlog
        )
        listener.setblocking(False)
        self.listener = listener
        wake_read, wake_write = socket.socketpair()
        wake_read.setblocking(False)
        wake_write.setblocking(False)
        self.selector.register(wake_read, selectors.EVENT_READ, "wake")
        previous_wakeup = signal.set_wakeup_fd(
            wake_write.fileno(), warn_on_full_buffer=False
        )
        handlers = {
            signal.SIGTERM: self._stop,
            signal.SIGINT: self._stop,
            signal.SIGHUP: self._restart,
        }
        previous = {
            sig: signal.signal(sig, handler) for sig, handler in handlers.items()
        }
        logger.info(
            "Accepting on http://%s:%d for %d worker(s) [%d]",
            self.options.host,
            self.options.port,
            self.options.workers,
            os.getpid(),
        )
        try:
            for _ in range(self.options.workers):
                self._spawn()
            while not self.stopping:
                for key, _mask in self.selector.select(timeout=0.5):
                    if key.data == "wake":
                        self._drain(wake_read)
                    elif key.data == "listen":
                        self._accept()
                    else:
                        self._hear(key.data)
                self._reap()
                if not self.stopping:
                    self._keep_workers()
                    self._advance_restart()
                self._listen(any(self._takers()))
            self._shutdown()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_wakeup)
            listener.close()
            wake_read.close()
            wake_write.close()
            self.selector.close()
        logger.info("Stopped [%d]", os.getpid())
        return self.exit_code

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _restart(self, signum: int, frame: Any) -> None:
        self.restart_requested = True

    @staticmethod
    def _drain(sock: socket.socket) -> None:
        try:
            while sock.recv(512):
                pass
        except BlockingIOError:
            pass

    def _listen(self, on: bool) -> None:
        # The listening socket is watched only while some worker can take a
        # connection; until then new ones wait in the kernel's backlog.
        if on != self.listening and self.listener is not None:
            if on:
                self.selector.register(self.listener, selectors.EVENT_READ, "listen")
            else:
                self.selector.unregister(self.listener)
            self.listening = on

    def _takers(self) -> list[Worker]:
        return [w for w in self.workers if w.ready and not (w.retiring or w.gone)]

    # Connections.

    def _accept(self) -> None:
        listener = self.listener
        if listener is None:
            return
        for _ in range(ACCEPT_BURST):
            try:
                connection, _address = listener.accept()
            except BlockingIOError:
                return
            except OSError as error:  # e.g. EMFILE: try again on the next wake-up
                logger.error("accept() failed: %s", error)
                return
            with connection:
                self._hand(connection)

    def _hand(self, connection: socket.socket) -> None:
        for worker in sorted(self._takers(), key=lambda w: w.connections):
            try:
                socket.send_fds(worker.control, [CONNECTION], [connection.fileno()])
            except OSError:  # gone, or not reading: the next one takes it
                continue
            worker.connections += 1
            return
        logger.error("No worker could take a connection; it was closed")

    def _hear(self, worker: Worker) -> None:
        try:
            data = worker.control.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the worker has exited or is exiting
            worker.gone = True
            self.selector.unregister(worker.control)
            return
        if READY in data and not worker.ready:
            worker.ready = self.ever_ready = True
            logger.info("Worker [%d] is ready", worker.pid)
        worker.connections = max(0, worker.connections - data.count(CLOSED))

    # Workers.

    def _spawn(self) -> Worker:
        ours, theirs = socket.socketpair()
        with theirs:
            process = subprocess.Popen(  # noqa: S603 - our own module, our argv
                self.options.worker_command(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
            )
        ours.setblocking(False)
        worker = Worker(process=process, control=ours)
        self.workers.append(worker)
        self.selector.register(ours, selectors.EVENT_READ, worker)
        return worker

    def _forget(self, worker: Worker) -> None:
        if worker in self.workers:
            self.workers.remove(worker)
            if not worker.gone:
                self.selector.unregister(worker.control)
            worker.control.close()

    def _retire(self, worker: Worker) -> None:
        worker.retiring = True
        try:
            worker.control.send(RETIRE)
        except OSError:
            worker.process.terminate()

    def _reap(self) -> None:
        for worker in list(self.workers):
            code = worker.process.poll()
            if code is None:
                continue
            self._forget(worker)
            if worker.retiring or self.stopping:
                continue
            logger.error("Worker [%d] exited with code %s", worker.pid, code)
            if time.monotonic() - worker.started < RESPAWN_PAUSE:
                self.respawn_at = time.monotonic() + RESPAWN_PAUSE
            if not worker.ready and not self.ever_ready:
                self.failed_starts += 1
                if self.failed_starts >= STARTUP_FAILURES:
                    logger.error(
                        "%d workers in a row died before they were ready; stopping",
                        self.failed_starts,
                    )
                    self.stopping = True
                    self.exit_code = STARTUP_FAILURE

    def _keep_workers(self) -> None:
        serving = [
            w for w in self.workers if not w.retiring and w is not self.replacement
        ]
        missing = self.options.workers - len(serving)
        if missing > 0 and time.monotonic() >= self.respawn_at:
            for _ in range(missing):
                self._spawn()
        elif missing < 0 and self.replacement is None:
            # One died while its replacement started: keep N, not N + 1.
            for worker in sorted(serving, key=lambda w: w.connections)[:-missing]:
                self._retire(worker)

    def _advance_restart(self) -> None:
        if self.restart_requested:
            self.restart_requested = False
            if not self.to_replace and self.replacement is None:
                self.to_replace = [w for w in self.workers if not w.retiring]
                logger.info(
                    "Replacing %d worker(s), one at a time", len(self.to_replace)
                )
        replacement = self.replacement
        if replacement is not None:
            if replacement not in self.workers:  # it died before it was ready
                logger.error(
                    "Replacement worker [%d] died; restart stopped", replacement.pid
                )
                self._end_restart()
            elif replacement.ready:
                old = self.to_replace.pop(0)
                if old in self.workers:
                    self._retire(old)
                self.replacement = None
            elif time.monotonic() - replacement.started > READY_TIMEOUT:
                logger.error(
                    "Replacement worker [%d] was not ready in %.0f s; restart stopped",
                    replacement.pid,
                    READY_TIMEOUT,
                )
                replacement.process.kill()
                replacement.retiring = True
                self._end_restart()
        if self.replacement is None and self.to_replace:
            self.replacement = self._spawn()

    def _end_restart(self) -> None:
        self.to_replace = []
        self.replacement = None

    def _shutdown(self) -> None:
        self._listen(False)
        for worker in self.workers:
            if not worker.retiring:
                self._retire(worker)
        grace = (self.options.timeout_graceful_shutdown or 30) + 5
        deadline = time.monotonic() + grace
        for worker in list(self.workers):
            try:
                worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error(
                    "Worker [%d] did not stop in %d s; killed", worker.pid, grace
                )
                worker.process.kill()
                worker.process.wait()
            self._forget(worker)


# -- a worker -----------------------------------------------------------------------


class HeadWithBody:
    """One response's transport, as its uvicorn (httptools) cycle sees it: a head
    that announces a body by Content-Length is held back and written with the
    body's first bytes, one write instead of two.

    uvicorn writes the status line and headers as soon as `http.response.start`
    is sent, and the body with the next message. On loopback every write is a
    send with its own wake-up of the client; a Django answer (its body in memory)
    sends both messages back to back. The bytes are the same. A held head is
    written at the latest when the event loop runs its next callbacks (a body
    that is slow to come, a streamed one), or before the transport is closed; a
    head with no body to follow (chunked, HEAD, Content-Length 0) is not held.
    Anything else is the transport's own.
    """

    __slots__ = ("_cycle", "_held", "_loop", "transport")

    def __init__(
        self, transport: Any, cycle: Any, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.transport = transport
        self._cycle: Any = cycle  # until its head is written (no reference cycle)
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self.transport.write(held + data)
            return
        cycle = self._cycle
        # The first write once the response has started is its head (an interim
        # "100 Continue" is written before).
        if cycle is not None and cycle.response_started:
            self._cycle = None
            if (
                cycle.chunked_encoding is False
                and cycle.expected_content_length > 0
                and cycle.scope["method"] != "HEAD"
            ):
                self._held = data
                self._loop.call_soon(self.flush)
                return
        self.transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self.transport.is_closing():
                self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return bool(self.transport.is_closing())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class DirectHttp(Protocol):
    """What an app's module may offer as `direct_http`: requests it answers below
    uvicorn's per-request task (social.webhook_asgi.WebhookFastPath: webhook
    deliveries). `take` sees a request whose headers are complete and returns a
    ticket for one it answers, else None (the request goes to the ASGI app as
    usual). `answer` gets the ticket and the whole body, and calls `respond` once
    with the status, the app's headers and the body (now or later, on the loop),
    or `fail` with what it raised."""

    def take(
        self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]]
    ) -> Any | None: ...

    def answer(
        self,
        taken: Any,
        body: bytes,
        respond: Callable[[int, list[tuple[bytes, bytes]], bytes], None],
        fail: Callable[[BaseException], None],
    ) -> None: ...


def direct_http_of(app: str) -> DirectHttp | None:
    """The `direct_http` of the module an app string ("module:attribute") names."""
    module = app.partition(":")[0]
    return getattr(importlib.import_module(module), "direct_http", None)


# uvicorn's answer when an app raises before it started its response.
SERVER_ERROR = (
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\n"
    b"connection: close\r\n\r\nInternal Server Error"
)


class DirectCycle:
    """A request answered by `DirectHttp` on the protocol's callbacks: no scope
    handed to the app, no task, no receive or send. It stands where uvicorn keeps
    its cycle (`protocol.cycle`), so a pipelined request waits behind it, a
    graceful shutdown lets it finish (`keep_alive`), and a lost connection drops
    its answer. The answer is written as uvicorn's cycle writes it: status line,
    the server's default headers (date, server), the app's, `connection: close`
    when the connection ends, then the body, in one write."""

    __slots__ = (
        "body",
        "direct",
        "disconnected",
        "keep_alive",
        "protocol",
        "response_complete",
        "taken",
    )

    def __init__(
        self, protocol: Any, direct: DirectHttp, taken: Any, keep_alive: bool
    ) -> None:
        self.protocol = protocol
        self.direct = direct
        self.taken = taken
        self.keep_alive = keep_alive
        self.body = b""
        self.disconnected = False
        self.response_complete = False

    def complete(self) -> None:
        try:
            self.direct.answer(self.taken, self.body, self.respond, self.fail)
        except Exception as error:
            self.fail(error)

    def respond(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        if self.response_complete or self.disconnected:
            return
        protocol = self.protocol
        content = [STATUS_LINE[status]]
        for name, value in protocol.server_state.default_headers:
            content += (name, b": ", value, b"\r\n")
        for name, value in headers:
            content += (name, b": ", value, b"\r\n")
        if not self.keep_alive:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", body)
        self._write(status, b"".join(content))

    def fail(self, error: BaseException) -> None:
        logger.error("Exception in ASGI application\n", exc_info=error)
        if self.response_complete or self.disconnected:
            return
        self.keep_alive = False
        content = [STATUS_LINE[500]]
        for name, value in self.protocol.server_state.default_headers:
            content += (name, b": ", value, b"\r\n")
        self._write(500, b"".join(content) + SERVER_ERROR)

    def _write(self, status: int, data: bytes) -> None:
        protocol = self.protocol
        if protocol.access_log:
            protocol.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(protocol.scope),
                "POST",
                protocol.scope.get("path", ""),
                "1.1",
                status,
            )
        self.response_complete = True
        transport = protocol.transport
        transport.write(data)
        if not self.keep_alive:
            transport.close()
        protocol.on_response_complete()


def _counted(
    base: type[asyncio.Protocol],
    closed: Callable[[], None],
    direct: DirectHttp | None = None,
) -> type[Any]:
    """`base` that calls `closed()` once its connection is lost, and (httptools)
    writes each response's head with its body (`HeadWithBody`) and lets `direct`
    answer the requests it takes (`DirectCycle`).

    A connection upgraded to a websocket is lost by the websocket protocol, which
    has replaced the HTTP one on the transport, so each connection counts once."""

    class Counted(base):  # type: ignore[valid-type, misc]
        def connection_lost(self, exc: Exception | None) -> None:
            try:
                super().connection_lost(exc)
            finally:
                closed()

    protocol: type[Any] = Counted
    if issubclass(base, HttpToolsProtocol):

        class CountedHttpTools(Counted):
            cycle: Any  # uvicorn's RequestResponseCycle, or a DirectCycle

            def on_headers_complete(self) -> None:
                if direct is not None and self._answers_directly(direct):
                    return
                super().on_headers_complete()
                # A new cycle has the connection's transport (an upgrade to a
                # websocket makes none; a pipelined one is queued as it is).
                cycle = self.cycle
                if cycle is not None and cycle.transport is self.transport:
                    cycle.transport = HeadWithBody(self.transport, cycle, self.loop)

            def _answers_directly(self, direct: DirectHttp) -> bool:
                """Whether `direct` takes this request (a DirectCycle then stands
                for it). Only a plain HTTP/1.1 request that nothing is ahead of,
                under a configuration whose other paths it would skip (a
                concurrency limit's 503, a root path, 100-continue), and while
                the client reads its answers: past the transport's high-water
                mark uvicorn's cycle waits to write (and so stops reading)."""
                parser = self.parser
                cycle = self.cycle
                if (
                    (cycle is not None and not cycle.response_complete)
                    or self.flow.write_paused
                    or self.expect_100_continue
                    or self.limit_concurrency is not None
                    or self.root_path
                    or parser.get_http_version() != "1.1"
                    or parser.should_upgrade()
                ):
                    return False
                taken = direct.take(parser.get_method(), self.url, self.headers)
                if taken is None:
                    return False
                # For the access log's line, as uvicorn's scope has them.
                self.scope["method"] = "POST"
                self.scope["path"] = self.url.decode("ascii")
                keep_alive = parser.should_keep_alive()
                self.cycle = DirectCycle(self, direct, taken, keep_alive)
                return True

            def on_body(self, body: bytes) -> None:
                cycle = self.cycle
                if type(cycle) is DirectCycle:
                    cycle.body += body
                else:
                    super().on_body(body)

            def on_message_complete(self) -> None:
                cycle = self.cycle
                if type(cycle) is DirectCycle:
                    cycle.complete()
                else:
                    super().on_message_complete()

            def connection_lost(self, exc: Exception | None) -> None:
                cycle = self.cycle
                if type(cycle) is DirectCycle:
                    # Its answer, if it comes, has nowhere to go.
                    cycle.disconnected = True
                    self.cycle = None
                super().connection_lost(exc)

        protocol = CountedHttpTools
    protocol.__name__ = protocol.__qualname__ = f"Counted{base.__name__}"
    return protocol


class HandedServer(uvicorn.Server):
    """A uvicorn server whose connections come from the acceptor, not a socket."""

    def __init__(self, config: uvicorn.Config, control: socket.socket) -> None:
        super().__init__(config)
        self.control = control
        self.taking = False
        self.handed: set[asyncio.Task[Any]] = set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        config = self.config
        direct = direct_http_of(config.app) if isinstance(config.app, str) else None
        http_protocol = _counted(config.http_protocol_class, self._closed, direct)
        if config.ws_protocol_class is not None:
            # Read by the HTTP protocol when a request upgrades.
            config.ws_protocol_class = _counted(config.ws_protocol_class, self._closed)

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> Any:
            return http_protocol(
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
            )

        self.create_protocol = create_protocol
        self.servers = []
        self.loop = asyncio.get_running_loop()
        self.control.setblocking(False)
        self.loop.add_reader(self.control.fileno(), self._take)
        self.taking = True
        self.control.send(READY)
        self.started = True
        logger.info("Worker [%d] takes connections from the acceptor", os.getpid())

    def _take(self) -> None:
        while True:
            try:
                data, fds, _flags, _address = socket.recv_fds(self.control, 1024, 16)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            for fd in fds:
                task = self.loop.create_task(self._serve_one(socket.socket(fileno=fd)))
                self.handed.add(task)
                task.add_done_callback(self.handed.discard)
            if not data or RETIRE in data:  # retired, or the acceptor is gone
                self._stop_taking()
                self.should_exit = True
                return

    async def _serve_one(self, connection: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(
                self.create_protocol, sock=connection
            )
        except OSError:
            connection.close()
            self._closed()

    def _closed(self) -> None:
        # OSError: the acceptor is gone, and this worker is stopping anyway.
        with contextlib.suppress(OSError):
            self.control.send(CLOSED)

    def _stop_taking(self) -> None:
        if self.taking:
            self.taking = False
            self.loop.remove_reader(self.control.fileno())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._stop_taking()
        if self.handed:
            await asyncio.wait(self.handed, timeout=5)
        await super().shutdown(sockets=sockets)


def run_worker(options: Options, control_fd: int) -> int:
    control = socket.socket(fileno=control_fd)
    server = HandedServer(options.uvicorn_config(), control)
    server.run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    options, control_fd = parse(sys.argv[1:] if argv is None else argv)
    if control_fd is not None:
        return run_worker(options, control_fd)
    options.uvicorn_config()  # uvicorn's logging configuration, for the parent too
    return Acceptor(options).run()


if __name__ == "__main__":
    sys.exit(main())
