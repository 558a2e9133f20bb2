"""The agents of the fan-out benchmark (tests/perf/test_fanout.py): N raw websocket
clients over 127.0.0.1 in one process of their own, so the server's one process is
what the benchmark measures.

    python tests/perf/fanout_clients.py < plan.json

The plan (one JSON object on stdin's first line): `port`, `origin`, `paths` and
`cookies` (one per agent), `events`, `timeout` (seconds an event may take to reach
every agent). Once every socket is open it prints `ready <n>` and waits for a
second line (any) on stdin; then, for each
event the benchmark publishes (one at a time, frames carrying "seq": 0, 1, ...),
one JSON line: the seq, each agent's arrival time (time.monotonic_ns, the clock
the publisher reads too), how many agents it missed and this process's CPU time
for it. It exits after the last event, or at the first missed one.

Cheap on purpose: an asyncio Protocol per socket, the handshake written by hand
and server frames (unmasked) parsed from the buffer; only the frame's "seq" is
decoded. Pings are answered (uvicorn sends one every 20 s), nothing else is sent.
No Django, no `websockets` per-frame machinery: at 2,000 agents the client's own
cost per frame is part of "the last agent has it", so it is kept small.
"""

import asyncio
import base64
import contextlib
import json
import os
import re
import sys
import time
from typing import Any

CONNECTS_AT_ONCE = 50
SEQ = re.compile(rb'"seq":\s*(\d+)')


class Round:
    """One event's arrivals: an agent's time the first time its frame comes."""

    def __init__(self, agents: int) -> None:
        self.seq = 0
        self.arrivals = [0] * agents
        self.count = 0
        self.done = asyncio.get_running_loop().create_future()
        self.unexpected = 0

    def arrived(self, index: int, seq: int, at: int) -> None:
        if seq != self.seq or self.arrivals[index]:
            self.unexpected += 1
            return
        self.arrivals[index] = at
        self.count += 1
        if self.count == len(self.arrivals) and not self.done.done():
            self.done.set_result(None)

    def next(self) -> None:
        self.seq += 1
        self.arrivals = [0] * len(self.arrivals)
        self.count = 0
        self.done = asyncio.get_running_loop().create_future()


class Agent(asyncio.Protocol):
    def __init__(self, index: int, request: bytes, round_: Round) -> None:
        self.index = index
        self.request = request
        self.round = round_
        self.buffer = bytearray()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: Any = None
        self.upgraded = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        at = time.monotonic_ns()
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(RuntimeError(head.decode("latin-1")))
                return
            self.upgraded = True
            self.opened.set_result(None)
        self._frames(at)

    def _frames(self, at: int) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            opcode = buffer[0] & 0x0F
            length = buffer[1] & 0x7F
            start = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length = int.from_bytes(buffer[2:4])
                start = 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length = int.from_bytes(buffer[2:10])
                start = 10
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start : start + length])
            del buffer[: start + length]
            if opcode == 0x1:
                found = SEQ.search(payload)
                seq = int(found.group(1)) if found else -1
                self.round.arrived(self.index, seq, at)
            elif opcode == 0x9:
                self.transport.write(frame(0xA, payload))
            elif opcode == 0x8:
                self.round.unexpected += 1
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed"))


def frame(opcode: int, payload: bytes) -> bytes:
    """A client frame (masked, as clients must send; a zero mask keeps it plain)."""
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def handshake(port: int, path: str, origin: str, cookie: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: {origin}",
    ]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def main() -> int:
    plan = json.loads(sys.stdin.readline())
    port = int(plan["port"])
    agents = len(plan["paths"])
    round_ = Round(agents)
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)

    async def open_one(index: int) -> Agent:
        request = handshake(
            port, plan["paths"][index], plan["origin"], plan["cookies"][index]
        )
        async with gate:
            _, agent = await loop.create_connection(
                lambda: Agent(index, request, round_), "127.0.0.1", port
            )
            await asyncio.wait_for(agent.opened, plan["timeout"])
        return agent

    sockets = await asyncio.gather(*(open_one(n) for n in range(agents)))
    print(f"ready {len(sockets)}", flush=True)  # noqa: T201 - the protocol
    # The events start when the benchmark says so (its other servers may still
    # be opening their sockets): each event's timeout counts from then on.
    await loop.run_in_executor(None, sys.stdin.readline)
    for _ in range(int(plan["events"])):
        cpu = time.process_time_ns()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(round_.done), plan["timeout"])
        line = {
            "seq": round_.seq,
            "arrivals": round_.arrivals,
            "missed": agents - round_.count,
            "unexpected": round_.unexpected,
            "cpu_ns": time.process_time_ns() - cpu,
        }
        print(json.dumps(line), flush=True)  # noqa: T201 - the protocol
        if round_.count < agents:
            break
        round_.next()
    for agent in sockets:
        agent.transport.write(frame(0x8, (1000).to_bytes(2)))
        agent.transport.close()
    await asyncio.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
