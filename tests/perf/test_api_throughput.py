"""REST API throughput and latency under 8 concurrent clients (loopback only).

A real uvicorn process; 8 concurrent keep-alive clients with a workspace API token:
- writes: pushing customer messages through the API channel (each one opens or
  extends a conversation: the closest thing to the peer's "create a ticket");
- reads: the inbox list, 25 rows, in queue order.
Budget (DESIGN.md section 6): at least 10x django-helpdesk's API on the same
machine; the peer measured ~110 creates/s here, so the target is 1,100 creates/s.
The list endpoint's p95 budget is 40 ms (the at-scale figure comes from
test_inbox_at_scale; this one runs on a small inbox).
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from social.api_channel import create_api_channel
from tenants.api_tokens import create_api_token
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.factories import membership_of
from tests.helpdesk.live import BROKER_URL
from tests.perf.report import (
    Figure,
    conninfo,
    latency_figures,
    machine_facts,
    print_report,
)
from tests.perf.server import uvicorn_server

pytestmark = [
    pytest.mark.bench,
    pytest.mark.sql_audit_exempt,
    pytest.mark.django_db(transaction=True),
]

CLIENTS = 8
WRITES = 1600
READS = 1600
PEER_CREATES_PER_SECOND = 110.0


async def _run(
    requests: Sequence[tuple[str, str, dict[str, Any] | None]], token: str
) -> tuple[list[float], int, float]:
    timings: list[float] = []
    failures = 0
    queue: asyncio.Queue[tuple[str, str, dict[str, Any] | None]] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(limits=limits, timeout=30.0, headers=headers) as http:

        async def client() -> None:
            nonlocal failures
            while not queue.empty():
                method, url, body = queue.get_nowait()
                started = time.perf_counter()
                response = await http.request(method, url, json=body)
                timings.append(time.perf_counter() - started)
                failures += response.status_code >= 300

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - started
    return timings, failures, elapsed


def test_api_throughput_under_8_clients(
    tenant: Tenant, owner: User, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="httpx")
    with tenant_context(tenant):
        membership = membership_of(tenant, owner)
        channel = create_api_channel(
            membership, brand=Brand.objects.get(), name="Bench chat"
        )
        _, token = create_api_token(membership, name="bench", scope="admin")
    redis.Redis.from_url(BROKER_URL).flushdb()
    # The per-token rate limit would answer 429 long before the server is busy.
    with uvicorn_server(tmp_path, env={"API_RATE_LIMIT": "1000000/min"}) as base:
        api = f"{base}/api/v1/t/{tenant.slug}"
        push = f"{api}/channels/{channel.pk}/messages/"

        def writes(start: int, count: int) -> list[tuple[str, str, dict[str, Any]]]:
            return [
                (
                    "POST",
                    push,
                    {
                        "external_id": f"m-{n}",
                        "text": f"Order {n} has not arrived yet, can you check?",
                        "author": {"id": f"cust-{n % 400}", "name": f"C{n % 400}"},
                    },
                )
                for n in range(start, start + count)
            ]

        asyncio.run(_run(writes(0, 80), token))  # warm-up: connections, imports
        write_times, write_failures, write_elapsed = asyncio.run(
            _run(writes(1000, WRITES), token)
        )
        reads = [("GET", f"{api}/conversations/?page_size=25", None)] * READS
        asyncio.run(_run(reads[:80], token))
        read_times, read_failures, read_elapsed = asyncio.run(_run(reads, token))
    redis.Redis.from_url(BROKER_URL).flushdb()

    creates_per_second = WRITES / write_elapsed
    reads_per_second = READS / read_elapsed
    print_report(
        "REST API, 8 concurrent clients (uvicorn, one process, loopback)",
        machine_facts(conninfo()),
        [
            f"{WRITES} API-channel pushes (each records a message and opens or "
            f"extends one of 400 conversations), then {READS} inbox list reads "
            "(25 rows); admin-scope token; Celery publishes to Redis, no worker",
            f"non-2xx answers: writes {write_failures}, reads {read_failures}",
            "peer (django-helpdesk API on this machine): "
            f"~{PEER_CREATES_PER_SECOND:.0f} creates/s",
        ],
        [
            Figure(
                "creates/s",
                creates_per_second,
                "/s",
                10 * PEER_CREATES_PER_SECOND,
                higher_is_better=True,
            ),
            Figure(
                "creates vs peer",
                creates_per_second / PEER_CREATES_PER_SECOND,
                "x",
                10.0,
                higher_is_better=True,
            ),
            *latency_figures("create", write_times),
            Figure("list reads/s", reads_per_second, "/s"),
            *latency_figures("list (25 rows)", read_times, {95: 40.0}),
        ],
    )
    assert write_failures == 0
    assert read_failures == 0
