"""Fault 1: `kill -9` of a Celery worker (pool children included) five times while
1,000 webhooks, 1,000 API pushes and live Sandbox traffic with threads arrive, on
the Redis broker and on RabbitMQ. A supervisor starts a replacement each time.

Nothing may be lost or recorded twice: a stored delivery whose task died with the
worker is processed later (redelivery or the sweeper), and follow-ups whose parent
was delayed wait for it (invariant 2).
"""

import time

import pytest

from tests.faults.conftest import StartStack
from tests.faults.scenario import conclude, mixed_traffic
from tests.faults.traffic import webhook_threads

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

KILLS = 5
KILL_EVERY = 7.0  # seconds: the kills fall inside the ~40 s of traffic


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_worker_killed_during_traffic(start_stack: StartStack, broker: str) -> None:
    stack, workspace = start_stack(broker)
    run = f"kill-{broker}"
    plan = webhook_threads(workspace.identity, run, threads=700, follow_ups=300)
    traffic = mixed_traffic(
        stack,
        workspace,
        run,
        webhooks=plan,
        pushes=1000,
        rate=25,
        sandbox_rate=4,
        sandbox_limit=160,
        duration=40,
    ).start()

    fault_end = time.monotonic()
    for kill in range(KILLS):
        time.sleep(KILL_EVERY)
        fault_end = stack.kill_worker(kill % len(stack.workers), why=f"#{kill + 1}")
    traffic.join()

    conclude(
        workspace,
        traffic,
        stack,
        title=f"Fault 1: worker killed during traffic ({broker})",
        fault="1 worker kill -9",
        broker=broker,
        done=f"{KILLS}x kill -9 of a worker",
        fault_end=fault_end,
    )
