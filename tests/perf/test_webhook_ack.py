"""Webhook acknowledgement latency under 200 concurrent senders (loopback only).

A real uvicorn process serves `helpdesk.asgi.application` (tests.settings, Postgres as
the runtime role, Celery publishing to Redis db 14 without a worker). A bounded load
generator sends signed Sandbox deliveries from 200 concurrent connections and times
each request from send to the 200. Budget (DESIGN.md section 6): p99 < 20 ms for
store + enqueue.
"""

import asyncio
import json
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
from tests.helpdesk.live import BROKER_URL
from tests.perf.report import conninfo, latency_figures, machine_facts, print_report
from tests.perf.server import uvicorn_server

pytestmark = [
    pytest.mark.bench,
    pytest.mark.sql_audit_exempt,
    pytest.mark.django_db(transaction=True),
]

CONCURRENCY = 200
PER_SENDER = 10
PACED_RATE = 200.0
WORKERS = 2  # one uvicorn process per core, as production runs it
PACED_COUNT = 1000
SECRET = "earshot-test-hook"


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


async def _paced(
    url: str, rate: float = PACED_RATE, count: int = PACED_COUNT
) -> tuple[list[float], int, float]:
    """Deliveries arriving at a steady `rate` (open loop), as platforms send them."""
    timings: list[float] = []
    failures = 0
    limits = httpx.Limits(
        max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY
    )
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def one(n: int) -> None:
            nonlocal failures
            body = _delivery(50_000 + n)
            headers = {
                "Content-Type": "application/json",
                "X-Sandbox-Signature": sign(body, SECRET),
            }
            started = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            timings.append(time.perf_counter() - started)
            failures += response.status_code != 200

        tasks = []
        start = time.perf_counter()
        for n in range(count):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return timings, failures, rate


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
    broker = redis.Redis.from_url(BROKER_URL)
    broker.flushdb()
    with uvicorn_server(tmp_path, workers=WORKERS) as base:
        url = f"{base}/hooks/sandbox/"
        asyncio.run(_load(url))  # warm-up round: connections, pool, imports
        WebhookEvent.objects.all().delete()
        broker.flushdb()
        started = time.perf_counter()
        timings, failures = asyncio.run(_load(url))
        elapsed = time.perf_counter() - started
        stored, queued = WebhookEvent.objects.count(), broker.llen("celery")
        WebhookEvent.objects.all().delete()
        paced, paced_failures, rate = asyncio.run(_paced(url))
        paced_stored = WebhookEvent.objects.count()
    broker.flushdb()
    print_report(
        "webhook acknowledgement (uvicorn, loopback)",
        machine_facts(conninfo()),
        [
            "POST /hooks/<platform>/ is answered by the ASGI fast path "
            "(social/webhook_asgi.py): verify, store, enqueue on a worker thread",
            f"burst: {len(timings)} signed Sandbox deliveries from {CONCURRENCY} "
            f"concurrent connections (closed loop), {WORKERS} uvicorn processes; "
            f"{failures} non-200 answers; stored {stored} WebhookEvents, {queued} "
            "tasks reached the Redis broker",
            f"burst throughput {len(timings) / elapsed:.0f} acknowledgements/s",
            f"paced: {len(paced)} deliveries at {rate:.0f}/s (open loop, up to "
            f"{CONCURRENCY} in flight); {paced_failures} non-200 answers",
        ],
        [
            *latency_figures("burst: request to 200", timings, {99: 20.0}),
            *latency_figures(f"paced {rate:.0f}/s: request to 200", paced, {99: 20.0}),
        ],
    )
    assert failures == 0
    assert paced_failures == 0
    assert stored == queued == CONCURRENCY * PER_SENDER
    assert paced_stored == PACED_COUNT
