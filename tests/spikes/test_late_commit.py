"""Spike counts are exact when a message commits late: an id taken by a
transaction that commits after a later id was seen is neither skipped by the
counting cursor nor counted twice (spikes/rollup.py, the settled mark)."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.utils import timezone

from helpdesk.models import Message
from spikes import rollup
from spikes.models import SpikeCount, SpikeCursor
from spikes.services import read_brand
from tenants.context import tenant_context
from tenants.models import Brand, Tenant
from tests.helpdesk.conftest import item, make_account, receive

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 10.0  # seconds a step of the other thread must happen within


@contextmanager
def open_writer(template: Message, external_id: str) -> Iterator[threading.Event]:
    """Another session inserts an inbound message (a copy of `template` in its
    conversation) and keeps its transaction open until the yielded event is set,
    then commits: its id is taken now, its row appears later. (Any writer that
    inserts messages in a longer transaction does this: a batch, an import.)"""
    inserted, release, failures = threading.Event(), threading.Event(), []

    def write() -> None:
        try:
            with tenant_context(template.tenant_id):
                row = Message.objects.get(pk=template.pk)
                row.pk = None
                row.external_id = external_id
                row.created_at = timezone.now()
                row.save(force_insert=True)
                inserted.set()
                assert release.wait(WAIT)
        except BaseException as error:  # reported by the test's thread
            failures.append(error)
            inserted.set()
        finally:
            connection.close()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        assert inserted.wait(WAIT)
        assert failures == []
        yield release
    finally:
        release.set()
        thread.join(WAIT)
    assert not thread.is_alive()
    assert failures == []


def counted(tenant: Tenant, brand: Brand) -> int:
    with tenant_context(tenant):
        return sum(
            SpikeCount.objects.filter(brand=brand).values_list("count", flat=True)
        )


def live_count(brand: Brand) -> int:
    """The five minutes in progress and the five before (the test may cross a
    bucket's end), as the detector reads them."""
    with tenant_context(brand.tenant_id):
        reading = read_brand(brand, now=timezone.now())
    return reading.live.count + reading.complete.count


def messages_in(tenant: Tenant) -> list[int]:
    with tenant_context(tenant):
        return sorted(
            Message.objects.filter(direction="in").values_list("pk", flat=True)
        )


def test_a_message_that_commits_after_a_later_id_is_counted_once(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rollup, "SETTLE_WAIT", 0.3)
    account = make_account(tenant)
    first = receive(account, item(text="Where is my bag?")).message
    with tenant_context(tenant):
        brand = Brand.objects.get(pk=account.brand_id)
        assert rollup.count_inbound(tenant, now=timezone.now()) == 1
    with open_writer(first, "late-1") as release:
        later = receive(
            account, item(text="Second, committed first", author="cust-2")
        ).message
        with tenant_context(tenant):
            # The writer of the earlier id is still open: the mark stays put.
            assert rollup.count_inbound(tenant, now=timezone.now()) == 0
            assert SpikeCursor.objects.get().last_message_id == first.pk
        # What is visible is counted: the settled one and, live, the later one.
        assert live_count(brand) == 2
        release.set()
    ids = messages_in(tenant)
    assert len(ids) == 3
    assert ids[2] == later.pk  # the late one has the lower id
    with tenant_context(tenant):
        assert rollup.count_inbound(tenant, now=timezone.now()) == 2
        assert rollup.count_inbound(tenant, now=timezone.now()) == 0
        assert SpikeCursor.objects.get().last_message_id == later.pk
    assert counted(tenant, brand) == 3
    assert live_count(brand) == 3


def test_a_run_waits_for_a_writer_in_flight_and_counts_its_message(
    tenant: Tenant,
) -> None:
    account = make_account(tenant)
    first = receive(account, item(text="Where is my bag?")).message
    with tenant_context(tenant):
        brand = Brand.objects.get(pk=account.brand_id)
        assert rollup.count_inbound(tenant, now=timezone.now()) == 1
    with open_writer(first, "late-1") as release:
        receive(account, item(text="Committed first", author="cust-2"))
        # The writer commits a moment after the run has started waiting for it.
        timer = threading.Timer(0.3, release.set)
        timer.start()
        with tenant_context(tenant):
            assert rollup.count_inbound(tenant, now=timezone.now()) == 2
        timer.join()
    assert counted(tenant, brand) == 3
    assert live_count(brand) == 3
