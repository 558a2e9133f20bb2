"""The delivery task's two transactions take the workspace's event-counter row
with their last statement only, and send it with COMMIT (tenants.last_write).

The claim (messages marked `sending`) and the record (marked `sent`, failures
noted) each end with one statement that allocates the sequences and inserts the
Event rows; COMMIT goes in the same pipeline. Seen from a second connection
right after that statement returns, still inside the task's atomic block, the
row is free and holds the new value; the events are published only once the
block has ended, in sequence order.
"""

import uuid
from typing import Any

import pytest
from django.db import connection

from helpdesk import events, tasks
from helpdesk.models import Event, Message
from social.connectors.base import AccountRef, ConnectorError, OutboundReply
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.counter_row import counter_seen_elsewhere
from tests.helpdesk.fakes import FakeConnector
from tests.helpdesk.test_delivery_batches import due_replies, rows, run
from tests.statements import count_statements

pytestmark = pytest.mark.django_db(transaction=True)

COUNTER = "helpdesk_eventcounter"


def committed_counter(tenant_id: int) -> int:
    state, value = counter_seen_elsewhere(tenant_id)
    assert state == "free", state
    assert value is not None
    return value


def transactions(sql: list[str]) -> list[list[str]]:
    """The statements split into transactions (BEGIN .. COMMIT/ROLLBACK); one
    outside a transaction (autocommit: the task loading its tenant) is one."""
    found: list[list[str]] = []
    current: list[str] | None = None
    for statement in sql:
        if statement == "BEGIN":
            current = []
            continue
        if current is None:
            found.append([statement])
            continue
        current.append(statement)
        if statement in ("COMMIT", "ROLLBACK"):
            found.append(current)
            current = None
    assert current is None, current
    return found


class Watch:
    """What the task's Pending.emit left behind (the counter row seen from
    another connection, what was published by then) and what was published
    after, with the counter as another connection saw it at that moment."""

    def __init__(self, tenant_id: int) -> None:
        self.tenant_id = tenant_id
        self.after_emit: list[tuple[tuple[str, int | None], int, bool]] = []
        self.published: list[tuple[list[int], tuple[str, int | None]]] = []

    def clear(self) -> None:
        self.after_emit.clear()
        self.published.clear()


@pytest.fixture
def watch(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> Watch:
    watched = Watch(tenant.pk)
    emit = events.Pending.emit

    def emitting(self: events.Pending, *, last: bool = False) -> list[int]:
        seqs = emit(self, last=last)
        if seqs:
            watched.after_emit.append(
                (
                    counter_seen_elsewhere(watched.tenant_id),
                    len(watched.published),
                    connection.in_atomic_block,
                )
            )
        return seqs

    def publish(group: str, payloads: list[dict[str, Any]]) -> None:
        watched.published.append(
            ([p["seq"] for p in payloads], counter_seen_elsewhere(watched.tenant_id))
        )

    monkeypatch.setattr(events.Pending, "emit", emitting)
    monkeypatch.setattr(events, "send_all_to_group", publish)
    return watched


@pytest.fixture(autouse=True)
def _fresh_account_id(account: SocialAccount) -> None:
    """Rate-limit windows are counted in the shared cache by the account's
    platform id: a new one per test."""
    with tenant_context(account.tenant_id):
        SocialAccount.objects.filter(pk=account.pk).update(
            external_id=f"last-write-{uuid.uuid4().hex}"
        )


def updates_after(tenant_id: int, base: int) -> list[tuple[int, int, str]]:
    """(seq, message id, delivery status) of the events after `base`, by seq;
    their row ids follow the same order."""
    with tenant_context(tenant_id):
        found = list(
            Event.objects.filter(seq__gt=base)
            .order_by("seq")
            .values_list("id", "seq", "type", "payload")
        )
    assert [row[0] for row in found] == sorted(row[0] for row in found)
    assert {row[2] for row in found} <= {"message.updated"}
    return [
        (seq, payload["message_id"], payload["changed"]["delivery_status"])
        for _id, seq, _type, payload in found
    ]


def test_claim_and_record_each_take_the_counter_with_their_last_statement(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    fake_platforms: type[FakeConnector],
    watch: Watch,
) -> None:
    messages = due_replies(tenant, agent, [account], 3)
    base = committed_counter(tenant.pk)
    ids = [m.pk for m in messages]
    watch.clear()  # what making the replies published

    with count_statements() as seen:
        assert run(messages[0]) == "sent"

    taking = [t for t in transactions(seen.sql) if any(COUNTER in s for s in t)]
    assert len(taking) == 2, seen.listing()  # the claim, then the record
    for statements in taking:
        # One statement takes the counter, allocating and inserting the
        # events; COMMIT follows it and nothing else.
        assert [COUNTER in s for s in statements].count(True) == 1, seen.listing()
        assert statements[-2].startswith(f"WITH s AS (INSERT INTO {COUNTER}")
        assert 'INSERT INTO "helpdesk_event"' in statements[-2]
        assert statements[-1] == "COMMIT", seen.listing()
    # The messages' own writes come first (the claim's, the outcome's).
    for statements in taking:
        assert any('UPDATE "helpdesk_message"' in s for s in statements[:-2]), (
            seen.listing()
        )
    # Committed with the statement: another connection saw the row free and the
    # new value while the task was still inside its atomic block, before the
    # events were published.
    assert watch.after_emit == [
        (("free", base + 3), 0, True),
        (("free", base + 6), 1, True),
    ]
    # Published after each commit, in sequence order.
    assert watch.published == [
        ([base + 1, base + 2, base + 3], ("free", base + 3)),
        ([base + 4, base + 5, base + 6], ("free", base + 6)),
    ]
    assert updates_after(tenant.pk, base) == [
        (base + 1, ids[0], "sending"),
        (base + 2, ids[1], "sending"),
        (base + 3, ids[2], "sending"),
        (base + 4, ids[0], "sent"),
        (base + 5, ids[1], "sent"),
        (base + 6, ids[2], "sent"),
    ]
    assert [row[0] for row in rows(messages)] == ["sent"] * 3
    assert committed_counter(tenant.pk) == base + 6


def test_a_failure_recorded_with_the_batch_joins_its_last_statement(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    fake_platforms: type[FakeConnector],
    watch: Watch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A transient failure of another reply of the batch: its event follows
    the batch's sent events in the same statement; the reply keeps `sending`
    for its retry."""
    messages = due_replies(tenant, agent, [account], 3)
    base = committed_counter(tenant.pk)
    ids = [m.pk for m in messages]
    watch.clear()  # what making the replies published
    send = FakeConnector.send

    def failing(self: FakeConnector, ref: AccountRef, reply: OutboundReply) -> Any:
        if reply.text == "reply 1":
            raise ConnectorError("The connection was reset.")
        return send(self, ref, reply)

    monkeypatch.setattr(FakeConnector, "send", failing)
    handed: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        tasks.deliver_message,
        "apply_async",
        lambda args, **options: handed.append(tuple(args)),
    )

    with count_statements() as seen:
        assert run(messages[0]) == "sent"

    taking = [t for t in transactions(seen.sql) if any(COUNTER in s for s in t)]
    assert len(taking) == 2, seen.listing()
    for statements in taking:
        assert [COUNTER in s for s in statements].count(True) == 1, seen.listing()
        assert statements[-1] == "COMMIT", seen.listing()
        assert statements[-2].startswith(f"WITH s AS (INSERT INTO {COUNTER}")
    assert updates_after(tenant.pk, base) == [
        (base + 1, ids[0], "sending"),
        (base + 2, ids[1], "sending"),
        (base + 3, ids[2], "sending"),
        (base + 4, ids[0], "sent"),
        (base + 5, ids[2], "sent"),
        (base + 6, ids[1], "sending"),  # the failure, kept for its retry
    ]
    assert watch.published == [
        ([base + 1, base + 2, base + 3], ("free", base + 3)),
        ([base + 4, base + 5, base + 6], ("free", base + 6)),
    ]
    recorded = rows(messages)
    assert [row[0] for row in recorded] == ["sent", "sending", "sent"]
    assert recorded[1][3] == "The connection was reset."
    assert handed == [(tenant.pk, ids[1])]


def test_a_task_that_claims_nothing_takes_no_counter(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    fake_platforms: type[FakeConnector],
    watch: Watch,
) -> None:
    (message,) = due_replies(tenant, agent, [account], 1)
    assert run(message) == "sent"
    base = committed_counter(tenant.pk)

    with count_statements() as seen:
        assert run(message, task_id="again") == "skipped"

    assert not any(COUNTER in s for s in seen.sql), seen.listing()
    assert seen.sql[-1] == "COMMIT", seen.listing()
    assert committed_counter(tenant.pk) == base
    with tenant_context(tenant):
        assert Message.objects.get(pk=message.pk).delivery_status == "sent"
        assert Event.objects.filter(seq__gt=base).count() == 0
