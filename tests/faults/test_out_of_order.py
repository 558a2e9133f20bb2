"""Fault 5: threads delivered newest first, with nothing else wrong.

Each thread is a tagged root and two follow-ups without a tag; the platform
delivers the last follow-up first and the root last, each only after the previous
one was accepted and had time to be processed. The result must equal in-order
delivery (invariant 2): every item recorded, one conversation per thread.
"""

import time

import pytest

from tests.faults.conftest import StartStack
from tests.faults.outcome import Expectation, publish, webhook_diagnosis
from tests.faults.scenario import failures, notes_for, settle
from tests.faults.traffic import Sender, webhook_threads

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

THREADS = 40


def test_threads_delivered_in_reverse_order(start_stack: StartStack) -> None:
    stack, workspace = start_stack("redis")
    plan = webhook_threads(
        workspace.identity, "ooo", threads=THREADS, follow_ups=2 * THREADS, reverse=True
    )
    sender = Sender("webhooks", stack.url, plan.requests, rate=10, accept={200})
    sender.start().join()
    sent_all = time.monotonic()

    def expectations() -> list[Expectation]:
        return [expectation]

    expectation = Expectation(
        source="webhooks, newest first",
        account=workspace.account,
        ids=plan.expected,
        threads=plan.threads,
        sent=len(plan.requests),
        accepted=sender.accepted,
        codes=sender.codes,
    )
    rows = settle(
        workspace,
        expectations,
        fault="5 out of order",
        broker="redis",
        done=f"{THREADS} threads x 3 items, reversed",
        fault_end=sent_all,
    )
    notes = notes_for(rows, None, stack)
    if rows[0].lost:
        notes.append(webhook_diagnosis(plan.event_ids[k] for k in rows[0].lost_ids))
    publish("Fault 5: out-of-order threads", rows, notes)
    problems = failures(rows, [sender], stack)
    assert not problems, "\n".join(problems)
