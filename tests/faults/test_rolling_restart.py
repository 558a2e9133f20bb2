"""Edge fault 2 (issue 13): a rolling restart of every process in `make serve`'s
topology while webhooks, API pushes and live Sandbox traffic arrive and agents
watch the inbox over websockets.

The deploy goes as an operator's would: uvicorn replaces its ASGI workers one at
a time on SIGHUP (each replacement ready before the old one stops); each Celery
worker (inbound, delivery, default) gets its replacement first, then a warm
shutdown; beat is stopped and started. Nothing may be lost or recorded twice,
refusals may only be 503s with Retry-After, and every agent socket that was
closed reconnects with `?after=` and catches up: in the end each has seen every
event of the workspace since it connected.
"""

import time

import pytest

from tests.faults.conftest import StartStack
from tests.faults.outcome import publish
from tests.faults.scenario import failures, mixed_traffic, notes_for, settle
from tests.faults.sockets import AgentSockets
from tests.faults.traffic import webhook_threads

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

AGENT_SOCKETS = 6
PAUSE = 4.0  # seconds between two restarts


def test_rolling_restart_during_traffic(start_stack: StartStack) -> None:
    stack, workspace = start_stack("redis", procfile=True)
    agents = AgentSockets(
        stack.url, workspace.tenant, workspace.membership.user, AGENT_SOCKETS
    ).start()
    run = "rolling"
    plan = webhook_threads(workspace.identity, run, threads=300, follow_ups=100)
    traffic = mixed_traffic(
        stack,
        workspace,
        run,
        webhooks=plan,
        pushes=400,
        rate=12,
        sandbox_rate=2,
        sandbox_limit=70,
        duration=35,
    ).start()

    began = time.monotonic()
    try:
        time.sleep(PAUSE)
        fault_end = stack.rolling_restart_server()
        for index in range(len(stack.workers)):
            time.sleep(PAUSE)
            fault_end = stack.rolling_restart_worker(index)
        time.sleep(PAUSE)
        fault_end = stack.restart_beat()
        traffic.join()

        rows = settle(
            workspace,
            lambda: traffic.expectations(workspace, stack),
            fault="E2 rolling restart",
            broker="redis",
            done=f"2 ASGI, 3 workers, beat in {fault_end - began:.0f} s",
            fault_end=fault_end,
        )
        final = agents.await_caught_up(timeout=60)
    finally:
        agents.stop()
    notes = [*notes_for(rows, traffic, stack), *agents.lines(final)]
    publish("Edge fault 2: rolling restart during traffic", rows, notes)
    problems = failures(rows, traffic.senders, stack) + agents.problems(final)
    reconnected = [s.name for s in agents.sockets if s.connects > 1]
    if not reconnected:
        problems.append("no agent socket was closed by the restart: nothing tested")
    assert not problems, "\n".join(problems)
