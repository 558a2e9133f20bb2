"""CPU per delivered reply of the delivery task, in process (issue 12): the
side by side's workload (replies of one workspace through its API channel, due
at once) delivered in batches of BATCH by helpdesk.deliver_message as a slot's
task runs it (claim_batch(drain=True), the connector's send, the record).

For each batch: this process's CPU (time.process_time: the task's thread and
the send pool's) and the PostgreSQL backend's (/proc/<pid>/schedstat of
pg_backend_pid()), per reply, and the statements the task sent. Events go to
channels-redis pub/sub as in the worker. Compare two revisions by running
this file from a worktree of each, alternating (ROUNDS batches a run):

    PYTEST_XDIST_WORKER=me REDIS_URL=redis://127.0.0.1:6380/<n> \\
        .venv/bin/pytest tests/perf/test_delivery_cpu.py -m bench -s -p no:randomly
"""

import os
import statistics
import time
import uuid
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from helpdesk import tasks
from helpdesk.models import Conversation, Message
from helpdesk.services import delivery_slots
from helpdesk.services.inbound import record_inbound_message
from social.connectors.base import Author, InboundItem
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.api_clients import open_api_channel
from tests.factories import make_user, make_workspace
from tests.helpdesk.live import REDIS_LAYERS, empty_scratch_broker
from tests.perf.report import backend_ns
from tests.statements import count_statements

pytestmark = [
    pytest.mark.bench,
    pytest.mark.sql_audit_exempt,
    pytest.mark.django_db(transaction=True),
]

BATCH = 100
CONVERSATIONS = 200
ROUNDS = int(os.environ.get("DELIVERY_CPU_ROUNDS", "12"))
WARM = 2  # batches before the measured ones


def workspace() -> tuple[Tenant, SocialAccount, list[Conversation]]:
    owner = make_user("dana@delivery-cpu.example", display_name="Dana")
    tenant = make_workspace("Delivery CPU", owner=owner)
    channel = open_api_channel(tenant, owner)
    conversations = []
    with tenant_context(tenant):
        account = SocialAccount.objects.select_related("tenant", "brand").get(
            pk=channel.pk
        )
        for n in range(CONVERSATIONS):
            item = InboundItem(
                platform="api",
                external_id=f"cpu-in-{n}",
                author=Author(external_id=f"cust-{n}", handle=f"Customer {n}"),
                text=f"Order {n} has not arrived yet, can you check?",
                created_at=timezone.now(),
                visibility="private",
                kind="direct_message",
                thread_ref=f"cust-{n}",
            )
            conversations.append(
                record_inbound_message(account, item).message.conversation
            )
    return tenant, account, conversations


def queue(
    tenant: Tenant,
    account: SocialAccount,
    conversations: list[Conversation],
    start: int,
) -> list[int]:
    """BATCH scheduled replies, due a second ago (as post_reply leaves them with
    no hold), round robin over the conversations."""
    now = timezone.now()
    with tenant_context(tenant):
        rows = Message.objects.bulk_create(
            [
                Message(
                    tenant=tenant,
                    conversation=conversation,
                    account_id=account.pk,
                    platform="api",
                    direction=Message.Direction.OUT,
                    visibility=conversation.channel_state,
                    kind=Message.Kind.REPLY,
                    text=f"Sorry about that, we are on it (reply {start + n})",
                    delivery_status=Message.DeliveryStatus.SCHEDULED,
                    send_after=now - timedelta(seconds=1),
                    created_at=now,
                    client_ref=uuid.uuid4(),
                )
                for n, conversation in (
                    (n, conversations[(start + n) % len(conversations)])
                    for n in range(BATCH)
                )
            ]
        )
    return [row.pk for row in rows]


def test_delivery_cpu_per_reply() -> None:
    tenant, account, conversations = workspace()
    # A slot that is over: its task claims every due reply of the workspace.
    slot = delivery_slots.slot_of(timezone.now() - timedelta(seconds=1), 250)
    cpu: list[float] = []
    backend: list[float] = []
    statements: list[int] = []
    with (
        override_settings(
            CHANNEL_LAYERS=REDIS_LAYERS, DELIVERY_BATCH_SIZE=BATCH, DELIVERY_SLOT_MS=250
        ),
        empty_scratch_broker(),
    ):
        for round_ in range(WARM + ROUNDS):
            ids = queue(tenant, account, conversations, round_ * BATCH)
            pg = backend_ns()
            with count_statements() as seen:
                started = time.process_time()
                result = tasks.deliver_message.apply(
                    args=(tenant.pk, ids[0], slot), task_id=f"cpu-{round_}"
                ).result
                spent = time.process_time() - started
            pg = backend_ns() - pg
            assert result == "sent"
            with tenant_context(tenant):
                assert set(
                    Message.objects.filter(pk__in=ids).values_list(
                        "delivery_status", flat=True
                    )
                ) == {"sent"}
            if round_ == WARM and os.environ.get("DELIVERY_CPU_LIST"):
                print("\n" + seen.listing())  # noqa: T201
            if round_ >= WARM:
                cpu.append(spent / BATCH * 1e6)
                backend.append(pg / BATCH / 1e3)
                statements.append(len(seen))
    print(  # noqa: T201
        f"\ndelivery CPU per reply, batches of {BATCH}, {ROUNDS} batches, "
        f"load {os.getloadavg()[0]:.2f}\n"
        f"  worker: median {statistics.median(cpu):.0f} us "
        f"(min {min(cpu):.0f}, max {max(cpu):.0f})\n"
        f"  PostgreSQL backend: median {statistics.median(backend):.0f} us "
        f"(min {min(backend):.0f}, max {max(backend):.0f}; incl. the pid lookups)\n"
        f"  statements per batch: {sorted(set(statements))}"
    )
