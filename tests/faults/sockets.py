"""Agent websockets on the stack, played the way the inbox page plays them: stay
connected, and after a close reconnect with `?after=<seq>`, the last sequence up to
which nothing is missing, so the server sends what was missed (`caught_up`).

Each socket keeps the durable sequences it received; `missing(final)` is what it
has not seen of the tenant's events after its start.
"""

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from helpdesk.models import Event
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.conftest import login

# events_after() sends at most this many per catch-up; a full page means ask again.
CATCH_UP_PAGE = 500


def last_seq(tenant: Tenant) -> int:
    with tenant_context(tenant):
        event = Event.objects.order_by("-seq").only("seq").first()
    return event.seq if event is not None else 0


@dataclass
class AgentSocket:
    name: str
    url: str
    headers: dict[str, str]
    start: int
    seen: set[int] = field(default_factory=set)
    connects: int = 0
    closes: int = 0
    refused: list[str] = field(default_factory=list)

    @property
    def watermark(self) -> int:
        """The highest sequence up to which every event after `start` was seen."""
        mark = self.start
        while mark + 1 in self.seen:
            mark += 1
        return mark

    def missing(self, final: int) -> list[int]:
        return [seq for seq in range(self.start + 1, final + 1) if seq not in self.seen]

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._session(stop)
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                if isinstance(exc, InvalidStatus):
                    self.refused.append(str(exc.response.status_code))
                # The consumer refuses after accepting, with a 44xx close code.
                if (
                    isinstance(exc, ConnectionClosed)
                    and exc.rcvd
                    and exc.rcvd.code >= 4000
                ):
                    self.refused.append(f"close {exc.rcvd.code}")
                self.closes += 1
            await asyncio.sleep(0.3)

    async def _session(self, stop: asyncio.Event) -> None:
        async with connect(
            f"{self.url}?after={self.watermark}",
            additional_headers=self.headers,
            open_timeout=5,
        ) as socket:
            self.connects += 1
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(socket.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                message = json.loads(raw)
                if isinstance(message.get("seq"), int):
                    self.seen.add(message["seq"])
                full = message.get("count") == CATCH_UP_PAGE
                if message.get("type") == "caught_up" and full:
                    return  # reconnect at once for the next page


class AgentSockets:
    """`count` sockets of `user` on the stack at `base_url`, in one thread."""

    def __init__(self, base_url: str, tenant: Tenant, user: User, count: int) -> None:
        name = settings.SESSION_COOKIE_NAME
        session = login(user).cookies[name].value
        headers = {"Origin": base_url, "Cookie": f"{name}={session}"}
        url = base_url.replace("http://", "ws://") + f"/ws/t/{tenant.slug}/"
        start = last_seq(tenant)
        self.tenant = tenant
        self.sockets = [
            AgentSocket(f"agent-{i}", url, headers, start) for i in range(count)
        ]
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="agents", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            await asyncio.gather(*(s.run(self._stop) for s in self.sockets))

        self._loop.run_until_complete(main())

    def start(self, timeout: float = 20) -> "AgentSockets":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not all(s.connects for s in self.sockets):
            if time.monotonic() > deadline or any(s.refused for s in self.sockets):
                refused = [s.refused for s in self.sockets]
                raise RuntimeError(f"agent sockets did not connect: {refused}")
            time.sleep(0.1)
        return self

    def await_caught_up(self, timeout: float) -> int:
        """Wait (bounded) until every socket has seen every event; the final seq."""
        deadline = time.monotonic() + timeout
        while True:
            final = last_seq(self.tenant)
            done = all(s.watermark >= final for s in self.sockets)
            if done or time.monotonic() > deadline:
                return final
            time.sleep(0.5)

    def stop(self) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=10)

    def lines(self, final: int) -> list[str]:
        """One note line per socket: connects, events expected, seen and missing."""
        lines = []
        for s in self.sockets:
            missing = s.missing(final)
            lines.append(
                f"- {s.name}: {s.connects} connects, {final - s.start} events, "
                f"{len(s.seen & set(range(s.start + 1, final + 1)))} seen, "
                f"missing {missing[:10]}"
            )
        return lines

    def problems(self, final: int) -> list[str]:
        return [
            f"{s.name} missed {len(s.missing(final))}, e.g. {s.missing(final)[:5]}"
            for s in self.sockets
            if s.missing(final)
        ]
