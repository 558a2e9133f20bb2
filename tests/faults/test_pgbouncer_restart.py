"""Edge fault 3 (issue 13): pgbouncer restarted under load, in `make serve`'s
topology (the runtime role through pgbouncer in transaction mode, one worker per
queue).

pgbouncer is stopped at once (its clients' connections drop, transactions in
flight roll back), stays down a few seconds, and starts again on the same port.
While it is down every refused request must be a clean 503 with Retry-After in the
API's shape: never a 500, and never a hang (a request the client gave up on after
15 s shows as `conn:ReadTimeout`). Afterwards the app recovers by itself: no
process is restarted, and nothing accepted is lost.

Outages longer than psycopg's pool timeout need DATABASE_POOL_TIMEOUT below the
client's 15 s: with psycopg's default (30 s) and FAULTS_PGBOUNCER_DOWN=25, requests
waited for a pooled connection past the client's timeout.
"""

import os
import time

import pytest

from tests.faults.conftest import StartStack
from tests.faults.outcome import publish
from tests.faults.scenario import failures, mixed_traffic, notes_for, settle
from tests.faults.traffic import webhook_threads

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

# How long pgbouncer stays down (FAULTS_PGBOUNCER_DOWN to try longer outages).
DOWN_SECONDS = float(os.environ.get("FAULTS_PGBOUNCER_DOWN", "4"))


def test_pgbouncer_restarted_during_traffic(start_stack: StartStack) -> None:
    stack, workspace = start_stack("redis", procfile=True)
    assert stack.bouncer is not None
    run = "pgbouncer-restart"
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
    server_pid = stack.server.process.pid if stack.server.process else None
    began = time.monotonic()
    fault_end = stack.bouncer.restart(DOWN_SECONDS)
    traffic.join()

    rows = settle(
        workspace,
        lambda: traffic.expectations(workspace, stack),
        fault="E3 pgbouncer restart",
        broker="redis",
        done=f"restart, down {fault_end - began:.1f} s",
        fault_end=fault_end,
    )
    hangs = {
        sender.name: sender.codes[code]
        for sender in traffic.senders
        for code in sender.codes
        if code == "conn:ReadTimeout"
    }
    codes = {sender.name: dict(sender.codes) for sender in traffic.senders}
    notes = [*notes_for(rows, traffic, stack), f"- answers: {codes}"]
    publish("Edge fault 3: pgbouncer restarted during traffic", rows, notes)
    problems = failures(rows, traffic.senders, stack)
    if hangs:
        problems.append(f"requests that hung past the client's 15 s: {hangs}")
    if stack.server.process is None or stack.server.process.pid != server_pid:
        problems.append("the server was restarted")
    assert not problems, "\n".join(problems)
