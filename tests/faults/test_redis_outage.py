"""Fault 3: the stack's Redis (cache, presence and channel layer; the broker is
RabbitMQ) stopped for 30 s during webhooks, API pushes and live Sandbox traffic;
the platforms retry what was refused.

Refused requests must be 503 with Retry-After in the API's shape (invariant 7),
nothing accepted may be lost, and every process must carry on by itself once Redis
is back.
"""

import time

import pytest

from tests.faults.conftest import StartStack
from tests.faults.scenario import conclude, mixed_traffic
from tests.faults.traffic import webhook_threads

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

OUTAGE = 30.0


def test_redis_stopped_during_traffic(start_stack: StartStack) -> None:
    stack, workspace = start_stack("rabbitmq")
    run = "redis-outage"
    plan = webhook_threads(workspace.identity, run, threads=300, follow_ups=100)
    traffic = mixed_traffic(
        stack,
        workspace,
        run,
        webhooks=plan,
        pushes=400,
        rate=10,
        sandbox_rate=2,
        sandbox_limit=90,
        duration=42,
    ).start()

    time.sleep(5)
    stack.redis.stop()
    time.sleep(OUTAGE)
    stack.redis.start()
    fault_end = time.monotonic()
    traffic.join()

    conclude(
        workspace,
        traffic,
        stack,
        title="Fault 3: Redis stopped during traffic",
        fault="3 Redis stopped",
        broker="rabbitmq",
        done=f"Redis down {OUTAGE:.0f} s",
        fault_end=fault_end,
    )
    # Only Redis was away: the cache, rate limits, presence and live pushes; nothing
    # that accepts a write needs it, so no webhook or API push was refused.
    assert set(traffic.webhooks.codes) == {"200"}
    assert set(traffic.pushes.codes) == {"201"}
