"""In-process time of the write paths: an API-channel push (create) and a reply.

One request at a time through Django's test client (the project's middleware,
authentication and view; no server), after a warm-up; the median and p95 of
wall time and the mean CPU time (`time.process_time()`, this process only: not
PostgreSQL's work) per request, with and without an outbound webhook endpoint
(deliveries are captured, not sent), and the statements of one request. Every
create has a new author (a new contact, identity and conversation); every reply
answers one of those conversations.

    EARSHOT_BENCH_WRITES=200 pytest tests/perf/test_write_path.py -m bench -s
"""

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from helpdesk import tasks
from helpdesk.services.webhooks import create_webhook_endpoint
from helpdesk.webhooks import ssrf
from social.api_channel import create_api_channel
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.api_clients import base, token_client
from tests.factories import membership_of
from tests.perf.report import Figure, conninfo, machine_facts, print_report
from tests.statements import count_statements

pytestmark = [
    pytest.mark.bench,
    pytest.mark.sql_audit_exempt,
    pytest.mark.django_db(transaction=True),
]

WRITES = int(os.environ.get("EARSHOT_BENCH_WRITES", "200"))
WARMUP = 20
ALL_WEEK = {
    day: [["00:00", "24:00"]]
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}


def timed(call: Callable[[int], Any], count: int) -> tuple[list[float], float]:
    walls: list[float] = []
    cpu_start = time.process_time()
    for n in range(count):
        start = time.perf_counter()
        response = call(n)
        walls.append(time.perf_counter() - start)
        assert response.status_code == 201, response.content
    return walls, (time.process_time() - cpu_start) / count


@pytest.mark.parametrize("endpoint", [False, True], ids=["no-endpoint", "endpoint"])
def test_write_path(
    tenant: Tenant, owner: User, endpoint: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ssrf, "resolve_host", lambda host, port: ["93.184.216.34"])
    monkeypatch.setattr(tasks.deliver_webhook, "apply_async", lambda *a, **k: None)
    monkeypatch.setattr(tasks.deliver_message, "apply_async", lambda *a, **k: None)
    with tenant_context(tenant):
        Brand.objects.update(business_hours=ALL_WEEK, send_hold_seconds=0)
        channel: SocialAccount = create_api_channel(
            membership_of(tenant, owner), brand=Brand.objects.get(), name="Bench"
        )
        if endpoint:
            create_webhook_endpoint(
                membership_of(tenant, owner),
                url="https://hooks.example.com/earshot",
                description="bench",
            )
    client: APIClient = token_client(tenant, owner, "admin")
    root = base(tenant)
    conversations: list[int] = []

    def create(n: int) -> Any:
        response = client.post(
            f"{root}/channels/{channel.pk}/messages/",
            {
                "external_id": f"bench-{n}",
                "text": f"Order {n} has not arrived yet, can you check?",
                "author": {"id": f"bench-cust-{n}", "name": f"Customer {n}"},
            },
            format="json",
        )
        conversations.append(response.json()["conversation_id"])
        return response

    def reply(n: int) -> Any:
        return client.post(
            f"{root}/conversations/{conversations[n]}/messages/",
            {"text": f"Sorry about order {n}, checking now."},
            format="json",
        )

    total = WARMUP + WRITES
    timed(create, WARMUP)
    create_wall, create_cpu = timed(lambda n: create(WARMUP + n), WRITES - 1)
    with count_statements() as create_sql:
        create(total - 1)
    timed(reply, WARMUP)
    reply_wall, reply_cpu = timed(lambda n: reply(WARMUP + n), WRITES - 1)
    with count_statements() as reply_sql:
        reply(total - 1)

    figures = []
    for label, wall, cpu, seen in (
        ("create", create_wall, create_cpu, create_sql),
        ("reply", reply_wall, reply_cpu, reply_sql),
    ):
        ms = sorted(s * 1000 for s in wall)
        figures += [
            Figure(f"{label} wall median", statistics.median(ms), "ms"),
            Figure(f"{label} wall p95", ms[int(len(ms) * 0.95) - 1], "ms"),
            Figure(f"{label} CPU mean (this process)", cpu * 1000, "ms"),
            Figure(f"{label} statements (BEGIN/COMMIT included)", len(seen), ""),
        ]
    print_report(
        f"write path in process ({'with' if endpoint else 'without'} an endpoint)",
        machine_facts(conninfo()),
        [
            f"{WRITES} creates then {WRITES} replies, one at a time, after "
            f"{WARMUP} of each; load average {os.getloadavg()}",
            "create statements:\n" + create_sql.listing(),
            "reply statements:\n" + reply_sql.listing(),
        ],
        figures,
    )
