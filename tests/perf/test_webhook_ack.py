"""Webhook acknowledgements beside the framework's limit (loopback only).

Two servers started by the same command (helpdesk.web_server: an acceptor and 2
uvicorn workers; tests.settings, Postgres as the runtime role, Celery publishing to
Redis db 14 without a worker):
Earshot's `helpdesk.asgi:application`, and a bare ASGI app that reads the request
and answers 200 without doing anything (tests/perf/bare_asgi.py). The same signed
Sandbox deliveries, prepared before the clock starts, are sent to both by the lean
load generator (tests/perf/loadgen.py):

- burst: closed loop from 200 keep-alive connections: acknowledgements per second,
  Earshot's as a share of the bare app's (issue 12 item 6: >= 50%);
- paced: open loop at 1,000 deliveries/s for a bounded 8 s, latency from each
  request's scheduled time: DESIGN.md section 6 budgets p99 < 20 ms.

Every delivery Earshot answered 200 must be a stored WebhookEvent, and every one
must reach the broker in a `social.process_webhook_event` task (one message per
group of up to 128 events); the report says how long after the last acknowledgement
the last task was published.
"""

import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
import redis
from django.conf import settings
from django.utils import timezone

from social.connectors.base import TokenSet
from social.models import WebhookEvent
from social.sandbox.network import sign
from social.services import connect_account
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.factories import membership_of
from tests.helpdesk.live import BROKER_URL, ROOT, free_port, web_server_command
from tests.perf.loadgen import Outcome, closed_loop, open_loop, post_request
from tests.perf.report import (
    Figure,
    conninfo,
    latency_figures,
    machine_facts,
    print_report,
)

pytestmark = [
    pytest.mark.bench,
    pytest.mark.sql_audit_exempt,
    pytest.mark.django_db(transaction=True),
]

CONNECTIONS = 200
WARM_UP = 2000
BURST = 10_000
PACED_RATE = 1000.0
PACED_SECONDS = 8
WORKERS = 2  # one uvicorn process per core, as production runs it
SECRET = "earshot-test-hook"
EARSHOT_APP = "helpdesk.asgi:application"
BARE_APP = "tests.perf.bare_asgi:application"
PUBLISH_WAIT = 60.0


def _delivery(n: int) -> bytes:
    post_id = str(10_000 + n)
    payload = {
        "event_id": str(uuid.uuid4()),
        "type": "post.created",
        "for_account": {
            "id": "100",
            "handle": "acmeair",
            "name": "Acme",
            "followers": 1,
        },
        "mentions_account": True,
        "post": {
            "id": post_id,
            "text": f"@acmeair delivery {n}",
            "author": {
                "id": str(n % 50),
                "handle": f"c{n % 50}",
                "name": "C",
                "followers": 3,
            },
            "in_reply_to": None,
            "root": post_id,
            "mentions": ["acmeair"],
            "language": "en",
            "created_at": timezone.now().isoformat(),
            "url": "",
        },
    }
    return json.dumps(payload).encode()


def _requests(port: int, first: int, count: int) -> list[bytes]:
    """`count` signed deliveries as bytes on the wire, numbered from `first`."""
    prepared = []
    for n in range(first, first + count):
        body = _delivery(n)
        headers = {
            "Content-Type": "application/json",
            "X-Sandbox-Signature": sign(body, SECRET),
        }
        prepared.append(post_request(port, "/hooks/sandbox/", body, headers))
    return prepared


def _seconds(stat: Path) -> float:
    """User + system CPU seconds from a /proc stat file."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Cpu:
    """CPU seconds of uvicorn's processes, thread by thread: the main threads (each
    worker's event loop: HTTP, verification, answers) and the other threads
    (Earshot's group committer and publisher)."""

    loops: float = 0.0
    threads: float = 0.0

    @property
    def total(self) -> float:
        return self.loops + self.threads

    def __sub__(self, before: "_Cpu") -> "_Cpu":
        return _Cpu(self.loops - before.loops, self.threads - before.threads)


def _cpu(pid: int) -> _Cpu:
    """The CPU of a process and its children (uvicorn's workers), by thread."""
    loops = threads = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                spent = _seconds(task / "stat")
            except OSError:  # the thread has just ended
                continue
            if task.name == str(current):
                loops += spent
            else:
                threads += spent
        pending += [int(child) for child in children.split()]
    return _Cpu(loops, threads)


def _postgres_cpu() -> float:
    """CPU seconds of the PostgreSQL backends of the test database, found on this
    machine by their process titles ("postgres: ... <user> <database> ...")."""
    title = f" {settings.DATABASES['default']['NAME']} ".encode()
    total = 0.0
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            if title in (process / "cmdline").read_bytes():
                total += _seconds(process / "stat")
        except OSError:  # a backend that has just ended
            continue
    return total


def _load_generator_cpu() -> float:
    """This process's CPU: the load generator, the only work it does meanwhile."""
    spent = os.times()
    return spent.user + spent.system


@dataclass
class _Server:
    port: int
    pid: int

    def cpu(self) -> _Cpu:
        return _cpu(self.pid)


@dataclass(frozen=True)
class _Mark:
    """CPU seconds so far: the server's, PostgreSQL's and the load generator's."""

    server: _Cpu
    postgres: float
    load_generator: float

    @classmethod
    def now(cls, server: _Server) -> "_Mark":
        return cls(server.cpu(), _postgres_cpu(), _load_generator_cpu())

    def __sub__(self, before: "_Mark") -> "_Mark":
        return _Mark(
            self.server - before.server,
            self.postgres - before.postgres,
            self.load_generator - before.load_generator,
        )


@contextmanager
def _served(app: str, log_dir: Path) -> Iterator[_Server]:
    """`app` under the benchmark's uvicorn command on a free port."""
    port = free_port()
    command = [
        app if part == EARSHOT_APP else part
        for part in web_server_command(port, workers=WORKERS)
    ]
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "EARSHOT_TEST_EAGER": "0",
        "CELERY_BROKER_URL": BROKER_URL,
        "PYTHONPATH": str(ROOT),
    }
    log = (log_dir / f"{app.split(':')[0]}.log").open("w")
    server = subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"{app} did not start; see {log.name}")
        yield _Server(port, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


def _queued(broker: redis.Redis) -> tuple[int, int]:
    """(events, task messages) in the inbound queue: the web process publishes one
    `social.process_webhook_event` message per group, its args the group's ids."""
    messages = broker.lrange("inbound", 0, -1)
    events = 0
    for raw in messages:
        envelope = json.loads(raw)
        body = base64.b64decode(envelope["body"])
        events += len(json.loads(body)[0])
    return events, len(messages)


def _published(broker: redis.Redis, expected: int, acked_at: float) -> float:
    """Wait until tasks for `expected` events are in the broker; seconds after
    `acked_at`."""
    deadline = time.monotonic() + PUBLISH_WAIT
    while _queued(broker)[0] < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return max(0.0, time.perf_counter() - acked_at)


def _load() -> str:
    return f"load average {os.getloadavg()[0]:.2f}"


def _connect_sandbox_account(tenant: Tenant, owner: User) -> None:
    with tenant_context(tenant):
        connect_account(
            membership_of(tenant, owner),
            brand=Brand.objects.get(),
            platform="sandbox",
            tokens=TokenSet(
                access_token="t", account_external_id="100", handle="acmeair"
            ),
        )


def _figures(label: str, outcome: Outcome, p99_ms: float | None) -> list[Figure]:
    targets = {99: p99_ms} if p99_ms is not None else None
    return latency_figures(label, outcome.latencies, targets)


def _cpu_figures(phase: str, spent: _Mark, count: int) -> list[Figure]:
    """CPU per request of one phase: the server's (and its split), PostgreSQL's
    and the load generator's."""
    per_request = {
        "server CPU per request": spent.server.total,
        "event loops' CPU per request": spent.server.loops,
        "other threads' CPU per request": spent.server.threads,
        "PostgreSQL CPU per request": spent.postgres,
        "load generator CPU per request": spent.load_generator,
    }
    return [
        Figure(f"{phase}: {label}", seconds / count * 1e6, "us")
        for label, seconds in per_request.items()
    ]


def test_webhook_acknowledgement_beside_a_bare_app(
    tenant: Tenant, owner: User, tmp_path: Path
) -> None:
    _connect_sandbox_account(tenant, owner)
    broker = redis.Redis.from_url(BROKER_URL)
    broker.flushdb()
    paced_count = int(PACED_RATE * PACED_SECONDS)
    notes: list[str] = []
    cpu: dict[str, _Mark] = {}
    with _served(BARE_APP, tmp_path) as bare:
        port = bare.port
        warm = _requests(port, 0, WARM_UP)
        burst = _requests(port, WARM_UP, BURST)
        paced = _requests(port, WARM_UP + BURST, paced_count)
        closed_loop(port, warm, CONNECTIONS)
        before = _Mark.now(bare)
        bare_burst = closed_loop(port, burst, CONNECTIONS)
        cpu["bare burst"] = _Mark.now(bare) - before
        notes.append(f"bare burst done ({_load()})")
        before = _Mark.now(bare)
        bare_paced = open_loop(port, paced, PACED_RATE)
        cpu["bare paced"] = _Mark.now(bare) - before
        notes.append(f"bare paced done ({_load()})")

    with _served(EARSHOT_APP, tmp_path) as server:
        earshot = server.port

        # Same bodies and signatures; only the Host line names the other port.
        def moved(requests: list[bytes]) -> list[bytes]:
            old, new = f":{port}\r\n".encode(), f":{earshot}\r\n".encode()
            return [raw.replace(old, new, 1) for raw in requests]

        closed_loop(earshot, moved(warm), CONNECTIONS)
        _published(broker, WARM_UP, time.perf_counter())
        WebhookEvent.objects.all().delete()
        broker.flushdb()
        before = _Mark.now(server)
        earshot_burst = closed_loop(earshot, moved(burst), CONNECTIONS)
        acked_at = time.perf_counter()
        generated = _load_generator_cpu() - before.load_generator
        stored = WebhookEvent.objects.count()
        burst_publish_lag = _published(broker, stored, acked_at)
        cpu["Earshot burst"] = replace(
            _Mark.now(server) - before, load_generator=generated
        )
        queued, burst_messages = _queued(broker)
        notes.append(f"Earshot burst done ({_load()})")
        WebhookEvent.objects.all().delete()
        broker.flushdb()
        before = _Mark.now(server)
        earshot_paced = open_loop(earshot, moved(paced), PACED_RATE)
        acked_at = time.perf_counter()
        generated = _load_generator_cpu() - before.load_generator
        paced_stored = WebhookEvent.objects.count()
        paced_publish_lag = _published(broker, paced_stored, acked_at)
        cpu["Earshot paced"] = replace(
            _Mark.now(server) - before, load_generator=generated
        )
        paced_queued, paced_messages = _queued(broker)
        notes.append(f"Earshot paced done ({_load()})")
    WebhookEvent.objects.all().delete()
    broker.flushdb()

    share = earshot_burst.rate / bare_burst.rate
    print_report(
        "webhook acknowledgement beside a bare ASGI app (web server, loopback)",
        machine_facts(conninfo()),
        [
            f"both apps: helpdesk.web_server --workers {WORKERS} (uvicorn workers), "
            "the same prepared signed "
            "Sandbox deliveries, the lean load generator (tests/perf/loadgen.py)",
            "Earshot: POST /hooks/<platform>/ answered by the ASGI fast path "
            "(social/webhook_asgi.py): verify on the event loop, group commit, "
            "publish after the answer; server CPU: uvicorn's processes (not "
            "PostgreSQL, Redis or the load generator), publishing included; "
            "event loops: the workers' main threads; other threads: the "
            "committer and publisher; PostgreSQL: the test database's backends "
            "over the phase; load generator: this process during the sending",
            f"burst: {BURST} deliveries from {CONNECTIONS} connections (closed "
            f"loop); bare {bare_burst.statuses}, Earshot {earshot_burst.statuses}; "
            f"stored {stored}, {queued} events in {burst_messages} task messages "
            f"in the broker {burst_publish_lag:.2f} s after the last answer",
            f"paced: {paced_count} deliveries at {PACED_RATE:.0f}/s (open loop, "
            f"latency from the scheduled time); bare {bare_paced.statuses} over "
            f"{bare_paced.connections} connections, Earshot "
            f"{earshot_paced.statuses} over {earshot_paced.connections}; stored "
            f"{paced_stored}, {paced_queued} events in {paced_messages} task "
            f"messages in the broker {paced_publish_lag:.2f} s after the last answer",
            *notes,
        ],
        [
            Figure("bare app burst throughput", bare_burst.rate, "req/s"),
            Figure("Earshot burst throughput", earshot_burst.rate, "acks/s"),
            Figure("Earshot share of the bare app", share * 100, "%", 50, True),
            *(
                figure
                for phase, count in (
                    ("bare burst", BURST),
                    ("Earshot burst", BURST),
                    ("bare paced", paced_count),
                    ("Earshot paced", paced_count),
                )
                for figure in _cpu_figures(phase, cpu[phase], count)
            ),
            *_figures("bare burst", bare_burst, None),
            *_figures("Earshot burst: request to 200", earshot_burst, None),
            *_figures(f"bare paced {PACED_RATE:.0f}/s", bare_paced, None),
            *_figures(f"Earshot paced {PACED_RATE:.0f}/s", earshot_paced, 20.0),
        ],
    )
    assert bare_burst.non_200 == bare_paced.non_200 == 0
    assert earshot_burst.non_200 == earshot_paced.non_200 == 0
    assert stored == queued == BURST
    assert paced_stored == paced_queued == paced_count
