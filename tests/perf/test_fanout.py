"""Websocket fan-out: one event to every agent of a workspace, one ASGI process
(DESIGN.md section 6: 100 agents p99 < 25 ms, 2,000 agents p99 < 300 ms).

The server is Earshot's web server (helpdesk.web_server, one uvicorn worker: the
one process measured) serving helpdesk.asgi:application on channels-redis pub/sub
(REDIS_URL). N agents, each with a real session, open the inbox stream
/ws/t/<slug>/ (InboxConsumer behind the Origin check and session auth) from a
client process of their own (tests/perf/fanout_clients.py, raw sockets over
127.0.0.1). The streams are opened with ?presence=off (the listening mode of the
same consumer): with presence on, opening 2,000 sockets would send 2,000 online
events to each of them first; an event's path to the socket is the same.

Each event is what a new message publishes: a message.created payload sent by
helpdesk.events.send_all_to_group to the workspace's group after commit (a plain
PUBLISH from the calling thread, helpdesk.publish). Events go one at a time; the
clock starts before the publish and stops when the client process has that
event's frame on every socket (time.monotonic_ns in both processes).

Baseline from the same run: a bare AsyncJsonWebsocketConsumer that joins a group
and forwards its messages (tests/perf/fanout_bare.py), same server command, same
layer, same publish, same N and events; and the same consumer without Channels'
aclose_old_connections() hop before each message (a sync_to_async call per
message per socket: most of the bare consumer's cost here). The servers are up
at once and the events take turns between them, so a shared machine's load falls
on all alike.

    EARSHOT_FANOUT_AGENTS=100,2000   agents per run (one test each)
    EARSHOT_FANOUT_EVENTS=200        events per run (default 200 up to 100
                                     agents, 50 above)
    EARSHOT_FANOUT_PROFILE=<dir>     py-spy samples of each server's worker
                                     over the measured events (collapsed
                                     stacks, <dir>/<app>-<agents>.txt)
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from django.conf import settings
from django.test import override_settings

from helpdesk import events
from tenants.models import Membership, User
from tests.factories import add_member, make_user, make_workspace
from tests.helpdesk.live import (
    BROKER_URL,
    ORIGIN,
    REDIS_LAYERS,
    ROOT,
    free_port,
    session_headers,
    web_server_command,
)
from tests.perf.fanout_bare import DIRECT_GROUP, DIRECT_PATH
from tests.perf.fanout_bare import GROUP as BARE_GROUP
from tests.perf.fanout_bare import PATH as BARE_PATH
from tests.perf.report import (
    Figure,
    conninfo,
    latency_figures,
    machine_facts,
    print_report,
)
from tests.perf.server import START_TIMEOUT

pytestmark = [
    pytest.mark.bench,
    pytest.mark.sql_audit_exempt,
    pytest.mark.django_db(transaction=True),
]

AGENTS = [
    int(n) for n in os.environ.get("EARSHOT_FANOUT_AGENTS", "100,2000").split(",")
]
WARMUP = 10
EVENT_TIMEOUT = 10.0  # seconds an event may take to reach every agent
CONNECT_TIMEOUT = 30.0  # seconds for one socket's handshake
GAP = 0.01  # seconds between one event's last arrival and the next publish
BUDGET_MS = {100: 25.0, 2000: 300.0}  # p99 of the last agent, DESIGN.md section 6
CLIENTS = Path(__file__).with_name("fanout_clients.py")
PY_SPY = Path(sys.executable).with_name("py-spy")


def event_count(agents: int) -> int:
    given = os.environ.get("EARSHOT_FANOUT_EVENTS")
    if given:
        return int(given)
    return 200 if agents <= 100 else 50


def budget(agents: int) -> float | None:
    """The p99 budget for `agents` (the nearest of DESIGN's two sizes at or above)."""
    for size in sorted(BUDGET_MS):
        if agents <= size:
            return BUDGET_MS[size]
    return None


def cpu_ms(pid: int) -> float:
    """User + system CPU time of process `pid` so far (/proc/<pid>/stat), in ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def worker_pid(parent: int) -> int:
    """The one uvicorn worker of helpdesk.web_server's acceptor `parent`."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


@contextmanager
def profiled(pid: int, output: Path | None) -> Iterator[None]:
    """py-spy samples of process `pid` for the block, written to `output` as
    collapsed stacks (nothing when `output` is None)."""
    if output is None:
        yield
        return
    command = [str(PY_SPY), "record", "--pid", str(pid), "--format", "raw"]
    command += ["--rate", "250", "--nonblocking", "--output", str(output)]
    spy = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)  # py-spy attaches
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(timeout=10)


@contextmanager
def web_server(app: str, log: Path) -> Iterator[tuple[int, int]]:
    """helpdesk.web_server with one worker serving `app` on a free loopback port,
    on the channels-redis layer (tests.settings, EARSHOT_TEST_EAGER=0); yields the
    port and the worker's pid. Terminated (killed after 20 s) when the block ends."""
    port = free_port()
    command = [
        app if part == "helpdesk.asgi:application" else part
        for part in web_server_command(port, workers=1)
    ]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "EARSHOT_TEST_EAGER": "0",
        "CELERY_BROKER_URL": BROKER_URL,
        "PYTHONPATH": str(ROOT),
    }
    with log.open("w") as out:
        server = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"{app} exited; see {log}:\n{log.read_text()}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{app} did not start; see {log}") from None
                time.sleep(0.2)
        yield port, worker_pid(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def payload(seq: int, tenant_id: int) -> dict[str, Any]:
    """A new inbound message's event, as helpdesk.services.inbound emits it."""
    return {
        "type": "message.created",
        "seq": seq,
        "conversation_id": 1000 + seq,
        "brand_id": tenant_id,
        "message_id": 5000 + seq,
        "changed": {"direction": "in", "visibility": "public"},
    }


class Side:
    """One server (Earshot's or the bare one) with its agents connected: publishes
    an event to its group and keeps its figures: per measured event, when the
    first and the last agent had it and every agent's latency (seconds), the
    client process's CPU, and the server worker's CPU over the measured events."""

    def __init__(
        self,
        group: str,
        pid: int,
        orders: IO[str],
        answers: IO[str],
        log: Path,
        tenant_id: int,
    ) -> None:
        self.group = group
        self.orders = orders
        self.pid = pid
        self.answers = answers
        self.log = log
        self.tenant_id = tenant_id
        self.last: list[float] = []
        self.first: list[float] = []
        self.every: list[float] = []
        self.client_cpu_ms: list[float] = []
        self.server_cpu_ms = 0.0

    def start(self) -> None:
        """Tell the client process the events begin (its timeouts run from now)."""
        self.orders.write("go\n")
        self.orders.flush()

    def one(self, seq: int) -> None:
        started = time.monotonic_ns()
        events.send_all_to_group(self.group, [payload(seq, self.tenant_id)])
        line = json.loads(self.answers.readline())
        assert line["seq"] == seq, line
        assert line["missed"] == 0, (seq, line["missed"], self.log.read_text())
        assert line["unexpected"] == 0, line["unexpected"]
        if seq >= WARMUP:
            latencies = [(at - started) / 1e9 for at in line["arrivals"]]
            self.last.append(max(latencies))
            self.first.append(min(latencies))
            self.every.extend(latencies)
            self.client_cpu_ms.append(line["cpu_ns"] / 1e6)
        time.sleep(GAP)


@contextmanager
def side(
    app: str,
    group: str,
    paths: list[str],
    cookies: list[str],
    total: int,
    tenant_id: int,
    log: Path,
) -> Iterator[Side]:
    """Serve `app` and open the agents' sockets from a client process of their
    own (which expects `total` events, then closes them)."""
    plan = {
        "origin": ORIGIN.decode(),
        "paths": paths,
        "cookies": cookies,
        "events": total,
        "timeout": EVENT_TIMEOUT,
    }
    with web_server(app, log) as (port, pid):
        clients = subprocess.Popen(
            [sys.executable, str(CLIENTS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert clients.stdin is not None
            assert clients.stdout is not None
            clients.stdin.write(json.dumps({**plan, "port": port}) + "\n")
            clients.stdin.flush()
            ready = clients.stdout.readline()
            assert ready == f"ready {len(paths)}\n", (ready, log.read_text())
            yield Side(group, pid, clients.stdin, clients.stdout, log, tenant_id)
            clients.wait(timeout=30)
        finally:
            if clients.poll() is None:
                clients.kill()
                clients.wait(timeout=10)


def alternate(sides: list[Side], measured: int, profiles: list[Path | None]) -> None:
    """WARMUP events to each side, then `measured` each, taking turns (which goes
    first rotates too), so all see the same minutes of a shared machine."""
    time.sleep(0.5)  # the last sockets' joins settle
    for server in sides:
        server.start()
    for seq in range(WARMUP):
        for server in sides:
            server.one(seq)
    with ExitStack() as stack:
        for server, output in zip(sides, profiles, strict=True):
            stack.enter_context(profiled(server.pid, output))
        before = [cpu_ms(server.pid) for server in sides]
        for seq in range(WARMUP, WARMUP + measured):
            turn = seq % len(sides)
            for server in sides[turn:] + sides[:turn]:
                server.one(seq)
        for server, cpu in zip(sides, before, strict=True):
            server.server_cpu_ms = (cpu_ms(server.pid) - cpu) / measured


def figures(label: str, run: Side, target: float | None) -> list[Figure]:
    targets = {99: target} if target is not None else None
    ms = run.client_cpu_ms
    return [
        *latency_figures(f"{label}: last agent", run.last, targets),
        *latency_figures(f"{label}: first agent", run.first)[:3],
        *latency_figures(f"{label}: any agent (agent x event)", run.every)[:3],
        Figure(f"{label}: server worker CPU per event", run.server_cpu_ms, "ms"),
        Figure(f"{label}: client CPU per event (mean)", sum(ms) / len(ms), "ms"),
    ]


def profile_path(app: str, agents: int) -> Path | None:
    folder = os.environ.get("EARSHOT_FANOUT_PROFILE")
    return Path(folder) / f"{app}-{agents}.txt" if folder else None


def agent_sessions(tenant_slug: str, agents: list[User]) -> list[str]:
    name = settings.SESSION_COOKIE_NAME
    cookies = []
    for agent in agents:
        headers = dict(session_headers(agent))
        cookies.append(headers[b"cookie"].decode())
        assert cookies[-1].startswith(f"{name}=")
    return cookies


@pytest.mark.parametrize("agents", AGENTS)
def test_websocket_fan_out(agents: int, tmp_path: Path) -> None:
    tenant = make_workspace("Fan-out Bench", owner=make_user())
    users = [make_user(f"agent{n}@fanout.example") for n in range(agents)]
    for user in users:
        add_member(tenant, user, Membership.Role.AGENT)
    cookies = agent_sessions(tenant.slug, users)
    count = event_count(agents)
    target = budget(agents)

    total = WARMUP + count
    with (
        override_settings(CHANNEL_LAYERS=REDIS_LAYERS),
        side(
            "helpdesk.asgi:application",
            events.inbox_group(tenant.pk),
            [f"/ws/t/{tenant.slug}/?presence=off"] * agents,
            cookies,
            total,
            tenant.pk,
            tmp_path / "earshot.log",
        ) as earshot,
        side(
            "tests.perf.fanout_bare:application",
            BARE_GROUP,
            [BARE_PATH] * agents,
            [""] * agents,
            total,
            tenant.pk,
            tmp_path / "bare.log",
        ) as bare,
        side(
            "tests.perf.fanout_bare:application",
            DIRECT_GROUP,
            [DIRECT_PATH] * agents,
            [""] * agents,
            total,
            tenant.pk,
            tmp_path / "direct.log",
        ) as direct,
    ):
        alternate(
            [earshot, bare, direct],
            count,
            [profile_path(name, agents) for name in ("earshot", "bare", "direct")],
        )

    print_report(
        f"websocket fan-out, one event to {agents} agents, one ASGI process",
        machine_facts(conninfo()),
        [
            f"{agents} agents, {count} events one at a time after {WARMUP} warm-up "
            f"({GAP * 1000:g} ms between), one uvicorn worker (helpdesk.web_server), "
            "channels-redis pub/sub on REDIS_URL",
            "the three servers up at once, the events taking turns between them "
            "(each server's own group and client process)",
            "event: message.created via helpdesk.events.send_all_to_group (PUBLISH); "
            "clock: before the publish until the client process has the frame "
            "(raw sockets on 127.0.0.1, tests/perf/fanout_clients.py)",
            "Earshot: InboxConsumer at /ws/t/<slug>/?presence=off, real sessions, "
            "Origin check; bare: AsyncJsonWebsocketConsumer joining one group "
            "(tests/perf/fanout_bare.py); bare, no check: the same without "
            "Channels' aclose_old_connections() hop before each message",
            f"budget (DESIGN.md section 6): last agent p99 < {target:g} ms"
            if target is not None
            else "budget: none for this many agents",
        ],
        [
            *figures("Earshot", earshot, target),
            *figures("bare", bare, None),
            *figures("bare, no check", direct, None),
        ],
    )
    for server in (earshot, bare, direct):
        assert len(server.last) == count
        assert len(server.every) == count * agents
