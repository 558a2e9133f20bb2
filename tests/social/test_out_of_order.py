"""Invariant 2: events arrive in any order and the result equals in-order delivery.

An untagged follow-up processed before the post that opens its thread waits
(social/waiting.py) instead of being dropped; it is recorded when the thread is,
or decided on its own merits when its wait is over.
"""

import logging
import random
import threading
from collections.abc import Iterable
from datetime import timedelta
from queue import Empty, SimpleQueue

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from helpdesk.models import Conversation, Message
from social import waiting
from social.connectors.base import InboundItem
from social.ingest import decide_waiting_item, record_for_account
from social.models import ListeningRule, SocialAccount, WaitingItem
from social.tasks import decide_waiting_items
from tenants.context import tenant_context
from tenants.models import Brand, Tenant
from tests.helpdesk.conftest import item, make_account


def record(account: SocialAccount, inbound: InboundItem) -> bool:
    with tenant_context(account.tenant_id):
        loaded = SocialAccount.objects.select_related("tenant", "brand").get(
            pk=account.pk
        )
        return record_for_account(loaded, inbound)


def recorded(tenant: Tenant) -> list[str]:
    with tenant_context(tenant):
        ids = Message.objects.filter(direction="in").values_list(
            "external_id", flat=True
        )
        return sorted(str(external_id) for external_id in ids)


def threads_of(tenant: Tenant) -> set[frozenset[str]]:
    """Which recorded messages share a conversation."""
    with tenant_context(tenant):
        grouped: dict[int, set[str]] = {}
        for conversation_id, external_id in Message.objects.values_list(
            "conversation_id", "external_id"
        ):
            grouped.setdefault(conversation_id, set()).add(str(external_id))
    return {frozenset(ids) for ids in grouped.values()}


def waiting_ids(tenant: Tenant) -> list[str]:
    with tenant_context(tenant):
        return sorted(WaitingItem.objects.values_list("external_id", flat=True))


@pytest.mark.django_db
def test_a_follow_up_before_its_thread_waits_and_joins_it(tenant: Tenant) -> None:
    account = make_account(tenant)
    root = item(external_id="root-1", text="@acmeair my bag is lost")
    follow_up = item(
        external_id="reply-1", thread="root-1", mentions=False, text="Hello??"
    )

    assert record(account, follow_up) is False
    assert recorded(tenant) == []
    assert waiting_ids(tenant) == ["reply-1"]

    assert record(account, root) is True
    assert recorded(tenant) == ["reply-1", "root-1"]
    assert threads_of(tenant) == {frozenset({"root-1", "reply-1"})}
    assert waiting_ids(tenant) == []
    with tenant_context(tenant):
        conversation = Conversation.objects.get()
    assert (conversation.customer_message_count, conversation.origin) == (2, "mention")


@pytest.mark.django_db
def test_a_replayed_waiting_item_waits_once(tenant: Tenant) -> None:
    account = make_account(tenant)
    follow_up = item(external_id="reply-1", thread="root-1", mentions=False)

    assert record(account, follow_up) is False
    assert record(account, follow_up) is False

    assert waiting_ids(tenant) == ["reply-1"]
    assert recorded(tenant) == []


@pytest.mark.django_db
def test_a_root_post_or_a_thread_already_followed_never_waits(tenant: Tenant) -> None:
    account = make_account(tenant)
    untagged_root = item(external_id="root-9", mentions=False, text="nice weather")
    assert record(account, untagged_root) is False
    assert waiting_ids(tenant) == []

    record(account, item(external_id="root-1"))
    assert record(account, item(external_id="r-2", thread="root-1", mentions=False))
    assert waiting_ids(tenant) == []
    assert recorded(tenant) == ["r-2", "root-1"]


@pytest.mark.django_db
def test_a_matching_listening_rule_records_at_once_instead_of_waiting(
    tenant: Tenant,
) -> None:
    account = make_account(tenant)
    with tenant_context(tenant):
        ListeningRule.objects.create(
            brand=Brand.objects.get(), name="refunds", query="refund"
        )
    follow_up = item(
        external_id="reply-1", thread="root-1", mentions=False, text="refund please"
    )

    assert record(account, follow_up) is True

    assert waiting_ids(tenant) == []
    with tenant_context(tenant):
        assert Conversation.objects.get().origin == "listening"


@pytest.mark.django_db
def test_when_the_wait_is_over_it_is_decided_on_its_own_merits(
    tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    account = make_account(tenant)
    record(account, item(external_id="reply-1", thread="gone", mentions=False))
    with tenant_context(tenant):
        WaitingItem.objects.update(decide_after=timezone.now() - timedelta(seconds=1))

    with caplog.at_level(logging.INFO, logger="social.ingest"):
        assert decide_waiting_items.delay(tenant.pk).get() == 0

    assert waiting_ids(tenant) == []
    assert recorded(tenant) == []
    assert "sandbox item reply-1 waited" in caplog.text
    assert "not recorded (no inbox rule matches it)" in caplog.text


@pytest.mark.django_db
def test_items_still_within_their_wait_are_left_alone(tenant: Tenant) -> None:
    account = make_account(tenant)
    record(account, item(external_id="reply-1", thread="root-1", mentions=False))

    assert decide_waiting_items.delay(tenant.pk).get() == 0

    assert waiting_ids(tenant) == ["reply-1"]


@pytest.mark.django_db
def test_the_sweep_records_an_item_whose_thread_was_recorded_meanwhile(
    tenant: Tenant,
) -> None:
    # The lock makes this impossible through ingest; the sweep is the safety net
    # for a thread recorded some other way (a conversation opened by the API).
    account = make_account(tenant)
    record(account, item(external_id="reply-1", thread="root-1", mentions=False))
    with tenant_context(tenant):
        loaded = SocialAccount.objects.select_related("tenant", "brand").get(
            pk=account.pk
        )
        from helpdesk.services.inbound import record_inbound_message

        record_inbound_message(loaded, item(external_id="root-1"))

    assert decide_waiting_items.delay(tenant.pk).get() == 1

    assert recorded(tenant) == ["reply-1", "root-1"]
    assert waiting_ids(tenant) == []


@pytest.mark.django_db
def test_a_waiting_item_is_decided_once(tenant: Tenant) -> None:
    account = make_account(tenant)
    record(account, item(external_id="reply-1", thread="root-1", mentions=False))
    with tenant_context(tenant):
        item_id = WaitingItem.objects.get().pk

    assert decide_waiting_item(tenant, item_id) is False
    assert decide_waiting_item(tenant, item_id) is None


@pytest.mark.django_db
def test_an_outsiders_waiting_items_are_invisible(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    account = make_account(tenant)
    record(account, item(external_id="reply-1", thread="root-1", mentions=False))

    with tenant_context(other_tenant):
        assert list(WaitingItem.objects.all()) == []
        assert waiting.due_waiting(now=timezone.now() + timedelta(days=1)) == []
    assert waiting_ids(tenant) == ["reply-1"]


def conversation_threads(count: int) -> list[list[InboundItem]]:
    """Threads as platforms deliver them: a mention opens each; follow-ups by the
    same customer and by a bystander carry no mention. One more thread is never
    about the brand: its untagged root and reply must never be recorded."""
    threads = []
    for n in range(count):
        root = f"t{n}-root"
        threads.append(
            [
                item(external_id=root, author=f"c{n}", handle=f"cust{n}"),
                item(
                    external_id=f"t{n}-a",
                    author=f"c{n}",
                    handle=f"cust{n}",
                    thread=root,
                    mentions=False,
                    text="Hello?? Anyone there?",
                ),
                item(
                    external_id=f"t{n}-b",
                    author=f"by{n}",
                    handle=f"bystander{n}",
                    thread=root,
                    mentions=False,
                    text="same happened to me",
                ),
                item(
                    external_id=f"t{n}-c",
                    author=f"c{n}",
                    handle=f"cust{n}",
                    thread=root,
                    mentions=False,
                    text="Still waiting for an answer.",
                ),
            ]
        )
    threads.append(
        [
            item(external_id="noise-root", mentions=False, text="lovely day"),
            item(
                external_id="noise-reply",
                thread="noise-root",
                mentions=False,
                text="indeed",
            ),
        ]
    )
    return threads


def deliver_concurrently(
    account: SocialAccount, items: Iterable[InboundItem], workers: int = 2
) -> None:
    queue: SimpleQueue[InboundItem] = SimpleQueue()
    for inbound in items:
        queue.put(inbound)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            while True:
                try:
                    inbound = queue.get_nowait()
                except Empty:
                    return
                record(account, inbound)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
        finally:
            connection.close()

    pool = [threading.Thread(target=work) for _ in range(workers)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=120)
    assert errors == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("seed", [1, 2, 3])
@override_settings(INBOUND_WAIT_FOR_THREAD_SECONDS=600)
def test_any_order_with_duplicates_across_two_workers_equals_in_order(
    tenant: Tenant, other_tenant: Tenant, seed: int
) -> None:
    threads = conversation_threads(8)
    in_order = make_account(tenant)
    for thread in threads:
        for inbound in thread:
            record(in_order, inbound)

    shuffled = [inbound for thread in threads for inbound in thread] * 2
    random.Random(seed).shuffle(shuffled)
    any_order = make_account(other_tenant)
    deliver_concurrently(any_order, shuffled)
    # The noise reply waits for a thread that never comes; once its wait is over
    # it is decided like the in-order run decided it.
    with tenant_context(other_tenant):
        assert list(WaitingItem.objects.values_list("external_id", flat=True)) == [
            "noise-reply"
        ]
        due = waiting.due_waiting(now=timezone.now() + timedelta(hours=1))
    for item_id in due:
        decide_waiting_item(other_tenant, item_id)

    expected = sorted(
        inbound.external_id for thread in threads[:-1] for inbound in thread
    )
    assert recorded(tenant) == expected
    assert recorded(other_tenant) == expected
    assert threads_of(other_tenant) == threads_of(tenant)
    assert waiting_ids(other_tenant) == []
