"""One delivery task per tenant and due slot (helpdesk.services.delivery_slots):
the web queues a slot's task only when it sets the slot's marker; the task clears
the marker before it claims, then sends every due reply of the tenant, own or
not, never one before it is due nor one undone during its hold, and comes back
for what it could not claim."""

import base64
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from helpdesk import publish, tasks
from helpdesk.models import Message
from helpdesk.services import delivery, delivery_slots
from helpdesk.services.replies import cancel_scheduled_reply
from social.models import SocialAccount
from tenants import taskwire
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.conftest import member
from tests.helpdesk.fakes import FakeConnector
from tests.helpdesk.live import empty_scratch_broker
from tests.helpdesk.test_delivery_batches import due_replies, statuses

pytestmark = pytest.mark.django_db

SWEEP = "helpdesk.sweep_outbox"
# Slot ends, 250 ms apart, in milliseconds since the epoch (2030-01-02 03:04:05).
BASE = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
BASE_MS = int(BASE.timestamp()) * 1000


@pytest.fixture(autouse=True)
def delivery_queue() -> None:
    """The real apply_async here (the package's autouse fixture captures it)."""


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """A real Redis broker (this process's scratch database), empty, whose pool
    the task wire has learned."""
    with empty_scratch_broker() as client:
        assert publish.enqueue_task("helpdesk.deliver_message", 7, 0, swept_by=SWEEP)
        client.delete("delivery")
        yield client


def queued(client: redis.Redis) -> list[tuple[list[int], str | None]]:
    """The delivery queue's task messages, oldest first: (args, eta)."""
    found = []
    for raw in reversed(client.lrange("delivery", 0, -1)):
        envelope = json.loads(raw)
        args = json.loads(base64.b64decode(envelope["body"]))[0]
        found.append((args, envelope["headers"]["eta"]))
    return found


def at(milliseconds: int) -> datetime:
    return BASE + timedelta(milliseconds=milliseconds)


def test_a_due_time_belongs_to_the_slot_that_ends_at_or_after_it() -> None:
    assert delivery_slots.slot_of(at(0), 250) == BASE_MS
    assert delivery_slots.slot_of(at(0) + timedelta(microseconds=1), 250) == (
        BASE_MS + 250
    )
    assert delivery_slots.slot_of(at(249), 250) == BASE_MS + 250
    assert delivery_slots.slot_of(at(250), 250) == BASE_MS + 250
    assert delivery_slots.slot_of(at(251), 250) == BASE_MS + 500
    assert delivery_slots.slot_of(at(999), 1000) == BASE_MS + 1000
    assert delivery_slots.slot_of(at(-1), 250) == BASE_MS
    assert delivery_slots.slot_time(BASE_MS + 250) == at(250)


def test_replies_of_one_slot_queue_one_task_due_at_the_slot_s_end(
    broker: redis.Redis,
) -> None:
    before = timezone.now()
    sent = [
        delivery_slots._schedule(7, message_id, at(milliseconds))
        for message_id, milliseconds in ((1, 10), (2, 200), (3, 250), (4, 251))
    ]

    assert sent == [True] * 4
    first, second = BASE_MS + 250, BASE_MS + 500
    assert queued(broker) == [
        ([7, 1, first], at(250).isoformat()),
        ([7, 4, second], at(500).isoformat()),
    ]
    marker = delivery_slots.marker(7, first)
    assert broker.get(marker) == b"1"
    # Until a while after the slot's end: the task clears it before then. The
    # time to the slot's end is counted from the whole millisecond the schedule
    # ran in, as delivery_slots counts it.
    before_ms = (before - at(0)) // timedelta(milliseconds=1) + BASE_MS
    longest = first - before_ms + delivery_slots.MARKER_MARGIN_MS
    assert longest - 10_000 < broker.pttl(marker) <= longest


def test_a_reply_after_the_task_cleared_its_marker_queues_the_task_again(
    broker: redis.Redis,
) -> None:
    assert delivery_slots._schedule(7, 1, at(100))
    assert delivery_slots.clear_marker(7, BASE_MS + 250) is True
    assert broker.exists(delivery_slots.marker(7, BASE_MS + 250)) == 0
    assert delivery_slots._schedule(7, 2, at(200))
    assert delivery_slots._schedule(7, 3, at(210))

    slot = BASE_MS + 250
    assert [args for args, _eta in queued(broker)] == [[7, 1, slot], [7, 2, slot]]


def counted_sets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys of the SETs the task wire sends from now on."""
    target = taskwire._targets[
        (id(tasks.deliver_message.app.amqp.producer_pool), os.getpid())
    ]
    assert target.wire is not None
    real, keys = target.wire.execute, []

    def counting(*args: Any) -> Any:
        if args[0] == "SET":
            keys.append(args[1])
        return real(*args)

    monkeypatch.setattr(target.wire, "execute", counting)
    return keys


def test_a_later_reply_of_a_slot_seen_marked_sends_no_set(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    sets = counted_sets(monkeypatch)
    assert delivery_slots._schedule(7, 1, at(10))
    assert delivery_slots._schedule(7, 2, at(200))
    assert delivery_slots._schedule(7, 3, at(251))

    slot = BASE_MS + 250
    assert sets == [
        delivery_slots.marker(7, slot),
        delivery_slots.marker(7, slot + 250),
    ]
    assert [args for args, _eta in queued(broker)] == [[7, 1, slot], [7, 3, slot + 250]]


def test_near_its_slot_s_end_a_reply_sets_the_marker_again(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert delivery_slots._schedule(7, 1, at(10))
    broker.delete(delivery_slots.marker(7, BASE_MS + 250))  # gone, not cleared here
    sets = counted_sets(monkeypatch)
    monkeypatch.setattr(
        timezone,
        "now",
        lambda: at(250) - timedelta(milliseconds=delivery_slots.MARKER_SKEW_MS),
    )

    assert delivery_slots._schedule(7, 2, at(240))

    slot = BASE_MS + 250
    assert sets == [delivery_slots.marker(7, slot)]
    assert [args for args, _eta in queued(broker)] == [[7, 1, slot], [7, 2, slot]]


def test_slots_that_are_over_are_forgotten(broker: redis.Redis) -> None:
    now_ms = BASE_MS + 10_000
    for tenant_id in range(300):
        delivery_slots._remember(delivery_slots.marker(tenant_id, BASE_MS), BASE_MS, 0)
    live = delivery_slots.marker(1, now_ms + 250)
    delivery_slots._remember(live, now_ms + 250, now_ms)
    delivery_slots._forget_at = 0

    delivery_slots._remember(
        delivery_slots.marker(2, now_ms + 250), now_ms + 250, now_ms
    )

    assert delivery_slots.marker(0, BASE_MS) not in delivery_slots._marked
    assert live in delivery_slots._marked
    assert len(delivery_slots._ends) == 2
    assert delivery_slots._forget_at == 256


def test_each_tenant_has_its_own_slot_tasks(broker: redis.Redis) -> None:
    assert delivery_slots._schedule(7, 1, at(100))
    assert delivery_slots._schedule(8, 2, at(100))
    assert delivery_slots._schedule(8, 3, at(100))

    slot = BASE_MS + 250
    assert [args for args, _eta in queued(broker)] == [[7, 1, slot], [8, 2, slot]]


def test_with_slots_off_each_reply_queues_its_own_task(broker: redis.Redis) -> None:
    with override_settings(DELIVERY_SLOT_MS=0):
        assert delivery_slots._schedule(7, 1, at(100))
        assert delivery_slots._schedule(7, 2, at(110))

    assert queued(broker) == [
        ([7, 1], at(100).isoformat()),
        ([7, 2], at(110).isoformat()),
    ]
    assert broker.keys("earshot:delivery-slot:*") == []


def test_without_a_marker_each_reply_queues_its_own_task_as_before(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = taskwire._targets[
        (id(tasks.deliver_message.app.amqp.producer_pool), os.getpid())
    ]
    assert target.wire is not None
    real = target.wire.execute

    def refuse_set(*args: Any) -> Any:
        if args[0] == "SET":
            raise redis.exceptions.ConnectionError("refused")
        return real(*args)

    monkeypatch.setattr(target.wire, "execute", refuse_set)
    assert delivery_slots._schedule(7, 1, at(100))
    assert delivery_slots._schedule(7, 2, at(110))

    assert queued(broker) == [
        ([7, 1], at(100).isoformat()),
        ([7, 2], at(110).isoformat()),
    ]


def test_a_slot_task_the_broker_refused_leaves_no_marker(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish, "enqueue_task", lambda *args, **options: False)

    assert delivery_slots._schedule(7, 1, at(100)) is False
    assert broker.keys("earshot:delivery-slot:*") == []
    assert queued(broker) == []


def test_eager_mode_queues_the_reply_s_own_task(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    captured: list[tuple[tuple[int, ...], Any]] = []
    monkeypatch.setattr(
        tasks.deliver_message,
        "apply_async",
        lambda args, **options: captured.append((tuple(args), options)),
    )
    with django_capture_on_commit_callbacks(execute=True):
        message = due_replies(tenant, agent, [account], 1)[0]
    assert [args for args, _options in captured] == [(tenant.pk, message.pk)]


# The worker's side: the task of a slot that ended a moment ago.


def past_slot() -> int:
    return delivery_slots.slot_of(timezone.now(), 250) - 250


def run(message: Message, slot: int, *, task_id: str = "slot-task") -> Any:
    return tasks.deliver_message.apply(
        args=(message.tenant_id, message.pk, slot), task_id=task_id, throw=False
    ).result


def test_a_slot_task_clears_its_marker_then_sends_the_tenant_s_due_replies(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    fake_platforms: type[FakeConnector],
    broker: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    messages = due_replies(tenant, agent, [account], 3)
    slot = past_slot()
    marker = delivery_slots.marker(tenant.pk, slot)
    broker.set(marker, b"1")
    marker_at_claim: list[int] = []
    claim = delivery.claim_batch

    def spy(*args: Any, **kwargs: Any) -> Any:
        marker_at_claim.append(broker.exists(marker))
        return claim(*args, **kwargs)

    monkeypatch.setattr(delivery, "claim_batch", spy)

    assert run(messages[0], slot) == "sent"

    assert marker_at_claim == [0]
    assert statuses(messages) == ["sent"] * 3
    assert sorted(reply.text for reply in FakeConnector.sent) == [
        "reply 0",
        "reply 1",
        "reply 2",
    ]
    assert queued(broker) == []  # nothing of the slot left: no second pass


def test_a_slot_task_whose_reply_went_with_another_batch_sends_the_others(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    fake_platforms: type[FakeConnector],
    broker: redis.Redis,
) -> None:
    messages = due_replies(tenant, agent, [account], 3)
    with tenant_context(tenant):
        assert delivery.claim_for_delivery(messages[0].pk, token="other") is not None

    assert run(messages[0], past_slot()) == "skipped"

    assert statuses(messages) == ["sending", "sent", "sent"]
    assert sorted(reply.text for reply in FakeConnector.sent) == ["reply 1", "reply 2"]
    # The same message without a slot claims nothing else, as before.
    more = due_replies(tenant, agent, [account], 2, text="more")
    with tenant_context(tenant):
        assert delivery.claim_for_delivery(more[0].pk, token="other") is not None
    assert run(more[0], 0, task_id="own") == "skipped"
    assert statuses(more) == ["sending", "scheduled"]


def test_a_slot_task_that_comes_early_sends_nothing_and_comes_back_at_its_end(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    fake_platforms: type[FakeConnector],
    broker: redis.Redis,
) -> None:
    messages = due_replies(tenant, agent, [account], 2)
    slot = delivery_slots.slot_of(timezone.now() + timedelta(seconds=30), 250)
    marker = delivery_slots.marker(tenant.pk, slot)
    broker.set(marker, b"1")

    assert run(messages[0], slot) == "early"

    assert statuses(messages) == ["scheduled", "scheduled"]
    assert FakeConnector.sent == []
    assert broker.get(marker) == b"1"  # the task still stands for the slot
    assert queued(broker) == [
        ([tenant.pk, messages[0].pk, slot], delivery_slots.slot_time(slot).isoformat())
    ]


def test_more_due_replies_than_a_batch_bring_the_slot_task_back_at_once(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    fake_platforms: type[FakeConnector],
    broker: redis.Redis,
) -> None:
    messages = due_replies(tenant, agent, [account], 3)
    slot = past_slot()
    with override_settings(DELIVERY_BATCH_SIZE=2):
        assert run(messages[2], slot) == "sent"
        assert statuses(messages) == ["sent", "scheduled", "sent"]
        assert queued(broker) == [([tenant.pk, messages[2].pk, slot], None)]
        broker.delete("delivery")

        assert run(messages[2], slot, task_id="again") == "skipped"
    assert statuses(messages) == ["sent"] * 3
    assert len(FakeConnector.sent) == 3
    assert queued(broker) == []


@pytest.mark.django_db(transaction=True)
def test_a_reply_another_transaction_holds_brings_the_slot_task_back_shortly(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    fake_platforms: type[FakeConnector],
    broker: redis.Redis,
) -> None:
    messages = due_replies(tenant, agent, [account], 2)
    # Committed here: post_reply queued a task for them; not this test's.
    broker.delete("delivery", *broker.keys("earshot:delivery-slot:*"))
    slot = past_slot()
    held, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:  # an edit of the reply in its last moment, say
        try:
            with tenant_context(tenant):
                Message.objects.select_for_update().get(pk=messages[1].pk)
                held.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=hold_the_row)
    thread.start()
    assert held.wait(10)
    try:
        before = timezone.now()
        assert run(messages[0], slot) == "sent"
    finally:
        release.set()
        thread.join()

    assert statuses(messages) == ["sent", "scheduled"]
    [(args, eta)] = queued(broker)
    assert args == [tenant.pk, messages[0].pk, slot]
    assert eta is not None
    again = datetime.fromisoformat(eta) - before
    assert timedelta(seconds=tasks.SLOT_AGAIN) <= again < timedelta(seconds=5)

    broker.delete("delivery")
    assert run(messages[0], slot, task_id="again") == "skipped"
    assert statuses(messages) == ["sent", "sent"]
    assert sorted(reply.text for reply in FakeConnector.sent) == ["reply 0", "reply 1"]
    assert queued(broker) == []


def test_a_reply_undone_during_its_hold_is_not_sent_by_its_slot_task(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    fake_platforms: type[FakeConnector],
    broker: redis.Redis,
) -> None:
    messages = due_replies(tenant, agent, [account], 2)
    with tenant_context(tenant):
        cancel_scheduled_reply(messages[1], membership=member(tenant, agent))

    assert run(messages[0], past_slot()) == "sent"

    assert statuses(messages) == ["sent", "cancelled"]
    assert [reply.text for reply in FakeConnector.sent] == ["reply 0"]


def test_a_reply_not_yet_due_waits_for_its_own_slot(
    tenant: Tenant,
    agent: User,
    account: SocialAccount,
    fake_platforms: type[FakeConnector],
    broker: redis.Redis,
) -> None:
    messages = due_replies(tenant, agent, [account], 2)
    with tenant_context(tenant):
        Message.objects.filter(pk=messages[1].pk).update(
            send_after=timezone.now() + timedelta(seconds=20)
        )

    assert run(messages[0], past_slot()) == "sent"

    assert statuses(messages) == ["sent", "scheduled"]
    assert queued(broker) == []


def test_only_a_reply_s_own_task_is_skipped_as_already_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tasks, "_sent_here", {(7, 11): None})

    def message(*args: int) -> SimpleNamespace:
        return SimpleNamespace(decode=lambda: (list(args), {}, {}))

    assert tasks._already_sent(message(7, 11)) is True
    assert tasks._already_sent(message(7, 11, BASE_MS)) is False
    assert tasks._already_sent(message(7, 12)) is False
