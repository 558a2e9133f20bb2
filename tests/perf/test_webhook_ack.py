"""Webhook acknowledgement latency under 200 concurrent senders (loopback only).

A real uvicorn process serves `helpdesk.asgi.application` (tests.settings, Postgres as
the runtime role, Celery publishing to Redis db 14 without a worker). A bounded load
generator sends signed Sandbox deliveries from 200 concurrent connections and times
each request from send to the 200. Budget (DESIGN.md section 6): p99 < 20 ms for
store + enqueue.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis
from django.utils import timezone

from social.connectors.base import TokenSet
from social.models import WebhookEvent
from social.sandbox.network import sign
from social.services import connect_account
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.factories import membership_of
from tests.helpdesk.live import BROKER_URL, ROOT
from tests.perf.report import conninfo, latency_figures, machine_facts, print_report

pytestmark = [
    pytest.mark.bench,
    pytest.mark.sql_audit_exempt,
    pytest.mark.django_db(transaction=True),
]

CONCURRENCY = 200
PER_SENDER = 10
SECRET = "earshot-test-hook"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


async def _load(url: str) -> tuple[list[float], int]:
    timings: list[float] = []
    failures = 0
    limits = httpx.Limits(
        max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY
    )
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def sender(index: int) -> None:
            nonlocal failures
            for k in range(PER_SENDER):
                body = _delivery(index * PER_SENDER + k)
                headers = {
                    "Content-Type": "application/json",
                    "X-Sandbox-Signature": sign(body, SECRET),
                }
                started = time.perf_counter()
                response = await client.post(url, content=body, headers=headers)
                timings.append(time.perf_counter() - started)
                failures += response.status_code != 200

        await asyncio.gather(*(sender(i) for i in range(CONCURRENCY)))
    return timings, failures


def test_webhook_acknowledgement_under_concurrency(
    tenant: Tenant, owner: User, tmp_path: Path
) -> None:
    with tenant_context(tenant):
        connect_account(
            membership_of(tenant, owner),
            brand=Brand.objects.get(),
            platform="sandbox",
            tokens=TokenSet(
                access_token="t", account_external_id="100", handle="acmeair"
            ),
        )
    redis.Redis.from_url(BROKER_URL).flushdb()
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "EARSHOT_TEST_EAGER": "0",
        "CELERY_BROKER_URL": BROKER_URL,
        "PYTHONPATH": str(ROOT),
    }
    log = (tmp_path / "uvicorn.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "helpdesk.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}/hooks/sandbox/"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        asyncio.run(_load(url))  # warm-up round: connections, pool, imports
        WebhookEvent.objects.all().delete()
        started = time.perf_counter()
        timings, failures = asyncio.run(_load(url))
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
    stored = WebhookEvent.objects.count()
    queued = redis.Redis.from_url(BROKER_URL).llen("celery")
    redis.Redis.from_url(BROKER_URL).flushdb()
    print_report(
        "webhook acknowledgement (uvicorn, 200 concurrent senders, loopback)",
        machine_facts(conninfo()),
        [
            f"{len(timings)} signed Sandbox deliveries, {CONCURRENCY} concurrent "
            f"connections, one uvicorn process; {failures} non-200 answers",
            f"stored {stored} WebhookEvents; {queued} tasks on the Redis broker",
            f"throughput {len(timings) / elapsed:.0f} acknowledgements/s",
        ],
        latency_figures("request to 200", timings, {99: 20.0}),
    )
    assert failures == 0
    assert stored == CONCURRENCY * PER_SENDER
