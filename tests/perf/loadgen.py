"""A lean HTTP/1.1 load generator for 127.0.0.1 benchmarks (raw asyncio streams).

httpx costs a few hundred microseconds of the client's CPU per request, which on a
2-core machine shared with the server measures the client as much as the server.
Here every request is prepared bytes (signed before the clock starts), written to
a keep-alive connection, and the answer is read by its Content-Length: a few tens
of microseconds per request, the same for every app measured.

`closed_loop` keeps `connections` senders busy (throughput). `open_loop` sends at
a fixed rate whatever the answers (latency at a given load): each latency runs from
the request's scheduled time, so a stalled server is charged for the requests it
made wait (no coordinated omission); when every connection is busy a new one is
opened, as a platform's sender would.
"""

import asyncio
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import uvloop

HOST = "127.0.0.1"


def post_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One POST as the bytes on the wire."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Outcome:
    """Latencies in seconds and the status codes seen, of one run."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0
    connections: int = 0

    @property
    def non_200(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def record(self, status: int, latency: float) -> None:
        self.latencies.append(latency)
        self.statuses[status] = self.statuses.get(status, 0) + 1


class _Connection:
    def __init__(
        self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.port = port
        self.reader = reader
        self.writer = writer
        self.reopened = 0

    @classmethod
    async def open(cls, port: int) -> "_Connection":
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(port, reader, writer)

    async def send(self, raw: bytes) -> int:
        """Write one request and read its whole answer; its status code. A
        keep-alive connection the server closed while idle (uvicorn does after 5 s)
        is opened again and the request sent again, as HTTP clients do."""
        try:
            return await self._exchange(raw)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise
        self.writer.close()
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        self.reopened += 1
        return await self._exchange(raw)

    async def _exchange(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lowered = head.lower()
        at = lowered.find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError(f"answer without Content-Length: {head[:200]!r}")
        end = lowered.index(b"\r\n", at + 2)
        length = int(lowered[at + 17 : end])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def _run[T](coroutine: "asyncio.Future[T] | asyncio.Task[T] | object") -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)  # type: ignore[arg-type]


def closed_loop(port: int, requests: Sequence[bytes], connections: int) -> Outcome:
    """Send every request from `connections` keep-alive senders, each waiting for
    its answer before the next; the rate is requests over the run's wall time."""

    async def main() -> Outcome:
        outcome = Outcome(connections=connections)
        pending: Iterator[bytes] = iter(requests)
        opened = [await _Connection.open(port) for _ in range(connections)]

        async def sender(connection: _Connection) -> None:
            for raw in pending:
                started = time.perf_counter()
                status = await connection.send(raw)
                outcome.record(status, time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(sender(connection) for connection in opened))
        outcome.elapsed = time.perf_counter() - started
        for connection in opened:
            connection.close()
        return outcome

    return _run(main())


def open_loop(
    port: int, requests: Sequence[bytes], rate: float, *, warm: int = 64
) -> Outcome:
    """Send request n at start + n / rate whatever the answers (`warm` connections
    opened beforehand, more when all are busy); latency from the scheduled time."""

    async def main() -> Outcome:
        outcome = Outcome()
        idle = [await _Connection.open(port) for _ in range(warm)]
        outcome.connections = len(idle)

        async def one(raw: bytes, scheduled: float) -> None:
            if idle:
                connection = idle.pop()
            else:
                connection = await _Connection.open(port)
                outcome.connections += 1
            status = await connection.send(raw)
            outcome.record(status, time.perf_counter() - scheduled)
            idle.append(connection)

        tasks = []
        start = time.perf_counter()
        for n, raw in enumerate(requests):
            scheduled = start + n / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(raw, scheduled)))
        await asyncio.gather(*tasks)
        outcome.elapsed = time.perf_counter() - start
        for connection in idle:
            connection.close()
        return outcome

    return _run(main())
