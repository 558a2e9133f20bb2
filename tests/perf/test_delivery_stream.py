"""Worker CPU per reply for replies committed one at a time (issue 12; the
side-by-side's reply phase: 8 clients, about 150 replies a second, hold 0).

Each reply is created and committed on its own, and its delivery is scheduled as
post_reply schedules it (helpdesk.services.replies.schedule_delivery, after the
commit): with delivery slots (helpdesk.services.delivery_slots, one task per
tenant and DELIVERY_SLOT_MS of due time) and without them (DELIVERY_SLOT_MS=0:
one task per reply, the path before), alternating in one run against the same
worker, with a hold of 0 and of HOLD seconds.

The stack, all on 127.0.0.1: the Sandbox in uvicorn (SANDBOX_WORKERS processes), a
private redis-server as the broker, one real `celery worker` (prefork, one child,
as scripts/peer_side_by_side.sh runs it). Worker CPU is the main process's and its
child's, from the first reply of a round until the queue is empty and the worker
holds no message. Lag is sent_at - created_at, less the hold.
"""

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from helpdesk.models import Conversation, Message
from helpdesk.services.replies import schedule_delivery
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.faults.stack import PrivateRedis
from tests.helpdesk.live import (
    ROOT,
    free_port,
    real_broker,
    web_server_command,
    worker_subprocess,
)
from tests.perf.report import Figure, conninfo, machine_facts, percentile, print_report
from tests.perf.test_delivery_throughput import _wait_all_sent, _workspace

pytestmark = [
    pytest.mark.bench,
    pytest.mark.sql_audit_exempt,
    pytest.mark.django_db(transaction=True),
]

RATE = float(os.environ.get("EARSHOT_STREAM_RATE", "150"))  # replies a second
REPLIES = int(os.environ.get("EARSHOT_STREAM_REPLIES", "600"))  # per round
HOLD = 2.0  # seconds, the held rounds
ROUNDS = int(os.environ.get("EARSHOT_STREAM_ROUNDS", "2"))  # each way, per hold
SANDBOX_WORKERS = 2
CLIENTS = 4  # threads posting replies


@contextmanager
def _sandbox(log_dir: Path, broker_url: str) -> Iterator[str]:
    """The app in uvicorn (the Sandbox's API), as tests.perf.server serves it,
    waiting up to two minutes for it to answer (a loaded machine's start)."""
    port = free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "EARSHOT_TEST_EAGER": "0",
        "CELERY_BROKER_URL": broker_url,
        "PYTHONPATH": str(ROOT),
    }
    with (log_dir / "stream-sandbox.log").open("w") as log:
        server = subprocess.Popen(
            web_server_command(port, workers=SANDBOX_WORKERS),
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=5.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def _tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its children (the pool's)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        pending += [int(child) for child in children.split()]
    return total


def _split_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of the worker's main process (the broker's consumer, the
    event loop, the ETA timers) and of its pool children (the tasks)."""
    parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(parent[11]) + int(parent[12])) / os.sysconf("SC_CLK_TCK")
    return own, _tree_cpu(pid) - own


def _post(tenant: Tenant, conversation: Conversation, *, hold: float, n: int) -> int:
    """One reply, created and committed on its own; its delivery scheduled as
    post_reply schedules it (after the commit)."""
    now = timezone.now()
    with tenant_context(tenant):
        message = Message.objects.create(
            tenant=tenant,
            conversation=conversation,
            account_id=conversation.social_account_id,
            platform="sandbox",
            direction=Message.Direction.OUT,
            visibility=Message.Visibility.PUBLIC,
            kind=Message.Kind.REPLY,
            text=f"On it (stream {n})",
            delivery_status=Message.DeliveryStatus.SCHEDULED,
            send_after=now + timedelta(seconds=hold),
            created_at=now,
            client_ref=uuid.uuid4(),
        )
        schedule_delivery(message)
    return message.pk


def _stream(
    tenant: Tenant,
    conversations: list[Conversation],
    *,
    hold: float,
    start: int,
    count: int = REPLIES,
) -> tuple[list[int], float]:
    """`count` replies at RATE a second from CLIENTS threads (one reply at a time
    each, as the API's clients post them); their ids and the rate reached."""
    ids: list[int] = []
    began = time.monotonic()

    def client(first: int) -> None:
        try:
            for n in range(first, count, CLIENTS):
                conversation = conversations[(start + n) % len(conversations)]
                ids.append(_post(tenant, conversation, hold=hold, n=start + n))
                time.sleep(max(0.0, began + (n + 1) / RATE - time.monotonic()))
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == count
    return ids, count / (time.monotonic() - began)


def _received(logs: Path) -> int:
    """Task messages the worker has received so far (its log's lines)."""
    return (logs / "stream-worker.log").read_bytes().count(b"] received")


def _quiet(broker: redis.Redis) -> None:
    """Until the queue is empty and the worker holds no message (ETA ones too)."""
    deadline = time.monotonic() + 60
    while broker.llen("delivery") or broker.hlen("unacked"):
        assert time.monotonic() < deadline, "the worker did not finish"
        time.sleep(0.05)
    time.sleep(0.3)


def test_worker_cpu_per_reply_for_a_one_by_one_stream(tmp_path: Path) -> None:
    logs = Path(os.environ.get("EARSHOT_BENCH_LOGS", str(tmp_path)))
    logs.mkdir(parents=True, exist_ok=True)
    redis_server = PrivateRedis(logs)
    redis_server.start()
    broker_url = redis_server.url(0)
    broker = redis.Redis.from_url(broker_url)
    notes = [
        f"{REPLIES} replies a round at {RATE:.0f}/s, each committed on its own; one "
        "`celery worker` (prefork, 1 child); the Sandbox in uvicorn "
        f"--workers {SANDBOX_WORKERS}; a private redis-server as the broker",
    ]
    results: dict[tuple[str, float], list[tuple[float, float, float]]] = {}
    figures: list[Figure] = []
    try:
        with (
            _sandbox(logs, broker_url) as base,
            real_broker(broker_url),
        ):
            tenant, conversations = _workspace(base)
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.perf.delivery_settings",
                "CELERY_BROKER_URL": broker_url,
                "EARSHOT_TEST_EAGER": "0",
                "PYTHONPATH": str(ROOT),
            }
            with worker_subprocess(
                env,
                logs / "stream-worker.log",
                name="stream",
                pool="prefork",
                ready_timeout=120,
            ) as worker:
                start = 0
                # Warm both paths (imports, connections, the wire's learning),
                # spread over every account (each has the Sandbox's limit).
                for width in (0, 250):
                    with override_settings(DELIVERY_SLOT_MS=width):
                        ids, _rate = _stream(
                            tenant, conversations, hold=0, start=start, count=100
                        )
                    start += 100
                    _wait_all_sent(tenant, ids)
                    _quiet(broker)
                for hold in (0.0, HOLD):
                    order = ["per reply", "slots", "slots", "per reply"] * ROUNDS
                    for way in order[: 2 * ROUNDS]:
                        width = 0 if way == "per reply" else 250
                        cpu = _tree_cpu(worker.pid)
                        split = _split_cpu(worker.pid)
                        received = _received(logs)
                        with override_settings(DELIVERY_SLOT_MS=width):
                            ids, rate = _stream(
                                tenant, conversations, hold=hold, start=start
                            )
                        start += REPLIES
                        _wait_all_sent(tenant, ids)
                        _quiet(broker)
                        cpu = _tree_cpu(worker.pid) - cpu
                        parent, child = (
                            after - before
                            for after, before in zip(
                                _split_cpu(worker.pid), split, strict=True
                            )
                        )
                        received = _received(logs) - received
                        with tenant_context(tenant):
                            lags = [
                                (sent - created).total_seconds() - hold
                                for created, sent in Message.objects.filter(
                                    pk__in=ids
                                ).values_list("created_at", "sent_at")
                                if sent is not None
                            ]
                        one = (
                            cpu / REPLIES * 1000,
                            percentile(lags, 50) * 1000,
                            percentile(lags, 99) * 1000,
                        )
                        results.setdefault((way, hold), []).append(one)
                        load = os.getloadavg()[0]
                        notes.append(
                            f"hold {hold:.0f} s, {way}, {rate:.0f} replies/s: "
                            f"worker CPU {one[0]:.2f} ms "
                            f"per reply (main process {parent / REPLIES * 1000:.2f},"
                            f" pool child {child / REPLIES * 1000:.2f}); "
                            f"lag beyond the hold p50 {one[1]:.0f} ms, "
                            f"p99 {one[2]:.0f} ms; {received} task messages; "
                            f"load {load:.2f}"
                        )
    finally:
        redis_server.stop()
    for (way, hold), rounds in results.items():
        cpus = sorted(one[0] for one in rounds)
        figures.append(
            Figure(
                f"worker CPU per reply, hold {hold:.0f} s, {way} (min)", cpus[0], "ms"
            )
        )
        figures.append(
            Figure(
                f"lag p99 beyond the hold, hold {hold:.0f} s, {way} (max)",
                max(one[2] for one in rounds),
                "ms",
            )
        )
    print_report(
        "worker CPU per reply, replies committed one at a time",
        machine_facts(conninfo()),
        notes,
        figures,
    )
