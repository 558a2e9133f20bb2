"""Inbound item → agent websocket, through a real Celery worker process on Redis and
channels-redis pub/sub, with 100 agents connected to one ASGI application.

The clock starts before `record_inbound_item.delay(...)` (the webhook's enqueue) and
stops when a client has message.created for that item. Items are sent one at a time.
Budget (DESIGN.md section 6): p50 < 30 ms, p99 < 150 ms.
"""

import asyncio
import os
import re
from pathlib import Path
from time import perf_counter
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from helpdesk import tasks
from social.connectors.base import item_to_dict
from tenants.models import Membership
from tests.factories import add_member, make_user, make_workspace
from tests.helpdesk.conftest import item, make_account
from tests.helpdesk.live import (
    WAIT,
    inbox_socket,
    live_stack_with_worker,
    session_headers,
)
from tests.perf.report import conninfo, latency_figures, machine_facts, print_report

pytestmark = [
    pytest.mark.bench,
    pytest.mark.sql_audit_exempt,
    pytest.mark.django_db(transaction=True),
]

AGENTS = int(os.environ.get("EARSHOT_BENCH_AGENTS", "100"))
EVENTS = int(os.environ.get("EARSHOT_BENCH_EVENTS", "1000"))
WARMUP = 20
CONTACTS = 200
DEADLINE = 30.0
TASK_RUNTIME = re.compile(r"record_inbound_item\[[\w-]+\] succeeded in ([\d.]+)s")


async def drain(socket: Any) -> None:
    """Read whatever the socket has until it stays quiet for 100 ms."""
    while not await socket.receive_nothing(timeout=0.1, interval=0.005):
        await socket.receive_output()


async def arrival(socket: Any) -> float:
    """When message.created arrived; returns after the conversation event behind it."""
    arrived: float | None = None
    while True:
        frame = await socket.receive_json_from(timeout=DEADLINE)
        if frame["type"] == "message.created":
            arrived = perf_counter()
        elif arrived is not None and frame["type"].startswith("conversation."):
            return arrived


def test_inbound_item_to_agent_websocket(tmp_path: Path) -> None:
    tenant = make_workspace("Push Bench", owner=make_user())
    account = make_account(tenant)
    agents = [make_user(f"agent{n}@push.example") for n in range(AGENTS)]
    for agent in agents:
        add_member(tenant, agent, Membership.Role.AGENT)
    headers = [session_headers(agent) for agent in agents]
    items = [
        item_to_dict(
            item(author=f"cust-{n % CONTACTS}", handle=f"c{n}", thread=f"t-{n % 400}")
        )
        for n in range(WARMUP + EVENTS)
    ]

    async def scenario() -> tuple[list[float], list[float], list[float]]:
        sockets = [inbox_socket(tenant.slug, each) for each in headers]
        for socket in sockets:
            assert await socket.connect(timeout=WAIT) == (True, None)
        await asyncio.gather(*(drain(socket) for socket in sockets))
        first: list[float] = []
        every: list[float] = []
        last: list[float] = []
        for n, payload in enumerate(items):
            started = perf_counter()
            tasks.record_inbound_item.delay(tenant.pk, account.pk, payload)
            arrivals = await asyncio.gather(*(arrival(socket) for socket in sockets))
            if n >= WARMUP:
                first.append(arrivals[0] - started)
                every.extend(at - started for at in arrivals)
                last.append(max(arrivals) - started)
        for socket in sockets:
            await socket.disconnect()
        return first, every, last

    log = tmp_path / "worker.log"
    with live_stack_with_worker(log):
        first, every, last = async_to_sync(scenario)()
    runtimes = [float(s) for s in TASK_RUNTIME.findall(log.read_text())][WARMUP:]

    targets = {50: 30.0, 99: 150.0}
    print_report(
        "inbound item -> websocket (real Celery worker, channels-redis pub/sub)",
        machine_facts(conninfo()),
        [
            f"{EVENTS} items one at a time after {WARMUP} warm-up, {AGENTS} agents "
            f"connected to one in-process ASGI app, {CONTACTS} contacts, 400 threads",
            "clock: before .delay() until the client has message.created; clients "
            "are channels' WebsocketCommunicator (no network framing)",
        ],
        [
            *latency_figures("one agent's socket", first, targets),
            *latency_figures("any agent (all socket x item pairs)", every, targets),
            *latency_figures(f"last of {AGENTS} agents", last),
            *latency_figures("worker: task runtime (its own log)", runtimes),
        ],
    )
    assert len(first) == len(runtimes) == EVENTS
