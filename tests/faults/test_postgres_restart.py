"""Fault 4: the machine's PostgreSQL restarted during webhooks, API pushes and live
Sandbox traffic (the Sandbox, a platform of its own, pauses its posting while the
database it shares with Earshot here is down; its webhook sender keeps retrying).

Every refused request must be a 503 with Retry-After in the API's shape, never a
500 (invariant 7); nothing accepted may be lost; every process recovers without a
restart.
"""

import time

import pytest
from django.db import connections

from tests.faults.conftest import StartStack
from tests.faults.scenario import conclude, mixed_traffic
from tests.faults.stack import restart_postgres
from tests.faults.traffic import webhook_threads

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def test_postgres_restarted_during_traffic(start_stack: StartStack) -> None:
    stack, workspace = start_stack("redis")
    run = "pg-restart"
    plan = webhook_threads(workspace.identity, run, threads=220, follow_ups=80)
    traffic = mixed_traffic(
        stack,
        workspace,
        run,
        webhooks=plan,
        pushes=300,
        rate=12,
        sandbox_rate=2,
        sandbox_limit=60,
        duration=25,
    ).start()

    time.sleep(8)
    traffic.poster.paused.set()
    began = time.monotonic()
    fault_end = restart_postgres()
    connections.close_all()
    traffic.poster.paused.clear()
    traffic.join()

    conclude(
        workspace,
        traffic,
        stack,
        title="Fault 4: PostgreSQL restarted during traffic",
        fault="4 PostgreSQL restart",
        broker="redis",
        done=f"restart, down {fault_end - began:.1f} s",
        fault_end=fault_end,
    )
