"""Finding 4: workers survive broker outages. The stack's Redis, here the Celery
broker as well as the cache and channel layer, is stopped three times under
webhook and API traffic.

Webhooks are stored and acknowledged while the broker is away (their tasks are
queued by the sweep afterwards), API pushes are recorded in their own request, and
every worker and beat must reconnect by itself: none may exit, and nothing is
restarted. The Sandbox's own posts are left out: its webhook sender needs the same
broker, and a platform that cannot send is not Earshot's loss.
"""

import time

import pytest

from tests.faults.conftest import StartStack
from tests.faults.scenario import conclude, mixed_traffic
from tests.faults.traffic import webhook_threads

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

OUTAGES = 3
DOWN = 15.0
UP = 6.0


def test_the_redis_broker_stopped_three_times_under_traffic(
    start_stack: StartStack,
) -> None:
    stack, workspace = start_stack("redis")
    run = "broker-outage"
    plan = webhook_threads(workspace.identity, run, threads=200, follow_ups=80)
    traffic = mixed_traffic(
        stack,
        workspace,
        run,
        webhooks=plan,
        pushes=300,
        rate=8,
        sandbox_rate=1,
        sandbox_limit=0,
        duration=5,
    ).start()

    time.sleep(4)
    for _ in range(OUTAGES):
        stack.redis.stop()
        time.sleep(DOWN)
        stack.redis.start()
        time.sleep(UP)
    fault_end = time.monotonic()
    traffic.join()

    conclude(
        workspace,
        traffic,
        stack,
        title="Finding 4: the Redis broker stopped three times under traffic",
        fault="4b Redis broker stopped x3",
        broker="redis",
        done=f"{OUTAGES} outages of {DOWN:.0f} s",
        fault_end=fault_end,
    )
    assert stack.worker_starts == [1] * len(stack.workers)  # none restarted
