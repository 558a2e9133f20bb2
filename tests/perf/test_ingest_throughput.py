"""Inbound processing throughput of one process on Postgres, as the runtime role.

2,000 items from 200 contacts over 600 threads (so most are follow-ups), each in its
own transaction the way the worker runs them, with events pushed on commit over
channels-redis pub/sub. Budget (DESIGN.md section 6): >= 1,000 events/s per worker
process.
"""

from collections.abc import Callable
from time import perf_counter

import pytest
from django.test import override_settings

from helpdesk import tasks
from helpdesk.models import Conversation, Message
from helpdesk.services.inbound import record_inbound_message
from social.connectors.base import InboundItem, item_to_dict
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Membership
from tests.factories import add_member, make_user, make_workspace
from tests.helpdesk.conftest import item, make_account
from tests.helpdesk.live import REDIS_LAYERS
from tests.perf.report import (
    Figure,
    conninfo,
    latency_figures,
    machine_facts,
    print_report,
)

pytestmark = [
    pytest.mark.bench,
    pytest.mark.sql_audit_exempt,
    pytest.mark.django_db(transaction=True),
]

ITEMS = 2000
CONTACTS = 200
THREADS = 600
AGENTS = 10
TARGET_PER_SECOND = 1000.0


def items(prefix: str) -> list[InboundItem]:
    return [
        item(
            author=f"{prefix}-cust-{n % CONTACTS}",
            handle=f"c{n % CONTACTS}",
            thread=f"{prefix}-t-{n % THREADS}",
            followers=n % 5000,
        )
        for n in range(ITEMS)
    ]


def timed(
    run: Callable[[InboundItem], object], batch: list[InboundItem]
) -> list[float]:
    seconds = []
    for each in batch:
        started = perf_counter()
        run(each)
        seconds.append(perf_counter() - started)
    return seconds


def test_record_inbound_message_throughput() -> None:
    tenant = make_workspace("Ingest Bench", owner=make_user())
    for n in range(AGENTS):
        add_member(tenant, make_user(f"agent{n}@ingest.example"), Membership.Role.AGENT)
    account = make_account(tenant)

    def service(inbound: InboundItem) -> None:
        with tenant_context(tenant):
            loaded = SocialAccount.objects.select_related("tenant", "brand").get(
                pk=account.pk
            )
            record_inbound_message(loaded, inbound)

    def task_body(inbound: InboundItem) -> None:
        tasks.record_inbound_item.run(tenant.pk, account.pk, item_to_dict(inbound))

    with override_settings(CHANNEL_LAYERS=REDIS_LAYERS):
        timed(service, items("warm")[:50])
        by_service = timed(service, items("svc"))
        by_task = timed(task_body, items("task"))

    with tenant_context(tenant):
        conversations, messages = Conversation.objects.count(), Message.objects.count()
    assert messages == 2 * ITEMS + 50
    print_report(
        "record_inbound_message throughput (in-process, Postgres, runtime role)",
        machine_facts(conninfo()),
        [
            f"{ITEMS} items per run, {CONTACTS} contacts, {THREADS} threads, "
            f"{AGENTS + 1} members, one transaction per item, events pushed on "
            "commit over channels-redis pub/sub",
            f"stored: {messages} messages in {conversations} conversations "
            "(an item is one inbound event; it pushes 2-3 websocket events)",
        ],
        [
            Figure(
                "service: items/s",
                ITEMS / sum(by_service),
                "/s",
                TARGET_PER_SECOND,
                higher_is_better=True,
            ),
            *latency_figures("service: per item", by_service),
            Figure(
                "task body (record_inbound_item.run): items/s",
                ITEMS / sum(by_task),
                "/s",
                TARGET_PER_SECOND,
                higher_is_better=True,
            ),
            *latency_figures("task body: per item", by_task),
        ],
    )
