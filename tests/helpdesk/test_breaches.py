"""SLA clocks running out: the state the inbox shows, and the 30-second sweep that
records breaches, announces due-soon clocks and queues conversation.sla_breached."""

import threading
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection

from helpdesk import tasks
from helpdesk.models import CareFact, Conversation, Event, WebhookDelivery
from helpdesk.services.breaches import sla_state, sweep_sla_clocks
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.sla_support import HOUR, T0, fresh, make_clocked, restart_clock
from tests.helpdesk.webhook_support import (  # noqa: F401 - fixtures
    FakeDns,
    WebhookQueue,
    add_endpoint,
    fake_dns_fixture,
    webhook_queue_fixture,
)

pytestmark = pytest.mark.django_db

URL = "https://hooks.example.com/earshot"
DUE = T0 + timedelta(hours=1)
SOON = T0 + timedelta(minutes=48)


@pytest.fixture(autouse=True)
def _fixtures(fake_dns: FakeDns, webhook_queue: WebhookQueue) -> None:
    """No real DNS, and webhook deliveries are captured rather than sent."""


def sweep(tenant: Tenant, at: Any) -> tuple[list[int], list[int]]:
    with tenant_context(tenant):
        result = sweep_sla_clocks(tenant, now=at)
    return result.breached, result.due_soon


def sla_events(tenant: Tenant) -> list[tuple[int, dict[str, Any]]]:
    with tenant_context(tenant):
        rows = Event.objects.filter(type="conversation.updated").order_by("seq")
        return [
            (row.payload["conversation_id"], row.payload["changed"])
            for row in rows
            if "sla_state" in row.payload["changed"]
        ]


def breach_facts(tenant: Tenant) -> list[tuple[int, Any, int | None, int | None]]:
    with tenant_context(tenant):
        return [
            (fact.conversation_id, fact.at, fact.raw_seconds, fact.target_seconds)
            for fact in CareFact.objects.filter(kind=CareFact.Kind.BREACH)
        ]


def webhook_rows(tenant: Tenant) -> list[tuple[str, dict[str, Any]]]:
    with tenant_context(tenant):
        return [
            (row.event_type, row.payload)
            for row in WebhookDelivery.objects.order_by("id")
        ]


# --- sla_state --------------------------------------------------------------------


def test_state_follows_the_clock_to_the_second(tenant: Tenant) -> None:
    conversation = make_clocked(tenant)
    second = timedelta(seconds=1)
    assert sla_state(conversation, T0) == "on_track"
    assert sla_state(conversation, SOON - second) == "on_track"
    assert sla_state(conversation, SOON) == "due_soon"
    assert sla_state(conversation, DUE - second) == "due_soon"
    assert sla_state(conversation, DUE) == "breached"


def test_a_clock_marked_breached_stays_breached(tenant: Tenant) -> None:
    conversation = make_clocked(tenant, sla_breached_at=DUE)
    assert sla_state(conversation, T0) == "breached"


def test_paused_resolved_and_clockless_states(tenant: Tenant) -> None:
    paused = make_clocked(
        tenant, status="pending", sla_run_started_at=None, sla_due_at=None
    )
    resolved = make_clocked(tenant, status="resolved")
    clockless = make_clocked(tenant, started=None)
    assert sla_state(paused, DUE) == "paused"
    assert sla_state(resolved, DUE) == "none"
    assert sla_state(clockless, DUE) == "none"


def test_without_a_response_clock_the_resolution_target_counts(tenant: Tenant) -> None:
    conversation = make_clocked(tenant, started=None, resolution_due_at=DUE)
    assert sla_state(conversation, DUE - timedelta(seconds=1)) == "on_track"
    assert sla_state(conversation, DUE) == "breached"


# --- the sweep: breaches ------------------------------------------------------------


def test_a_due_clock_is_breached_once_with_one_event_and_one_webhook(
    tenant: Tenant, owner: User
) -> None:
    add_endpoint(tenant, owner, URL)
    conversation = make_clocked(tenant, lane="urgent")
    assert sweep(tenant, DUE + timedelta(seconds=20)) == ([conversation.pk], [])
    assert sweep(tenant, DUE + timedelta(seconds=50)) == ([], [])
    assert fresh(conversation).sla_breached_at == DUE
    assert breach_facts(tenant) == [(conversation.pk, DUE, HOUR, HOUR)]
    assert sla_events(tenant) == [
        (
            conversation.pk,
            {"sla_state": "breached", "sla_breached_at": "2026-12-07T10:00:00+00:00"},
        )
    ]
    breached = [
        row for row in webhook_rows(tenant) if row[0] == "conversation.sla_breached"
    ]
    assert len(breached) == 1
    payload = breached[0][1]
    assert {k: v for k, v in payload.items() if k != "conversation"} == {
        "conversation_id": conversation.pk,
        "brand_id": conversation.brand_id,
        "kind": "first",
        "lane": "urgent",
        "due_at": "2026-12-07T10:00:00+00:00",
        "breached_at": "2026-12-07T10:00:00+00:00",
    }
    assert payload["conversation"]["id"] == conversation.pk
    assert payload["conversation"]["status"] == "open"


def test_an_endpoint_can_subscribe_to_breaches_only(
    tenant: Tenant, owner: User
) -> None:
    add_endpoint(tenant, owner, URL, events=("conversation.sla_breached",))
    conversation = make_clocked(tenant)
    sweep(tenant, SOON)
    sweep(tenant, DUE)
    assert [(kind, data["conversation_id"]) for kind, data in webhook_rows(tenant)] == [
        ("conversation.sla_breached", conversation.pk)
    ]


def test_clocks_not_due_paused_or_resolved_are_not_breached(tenant: Tenant) -> None:
    not_due = make_clocked(tenant, started=T0 + timedelta(minutes=1))
    make_clocked(tenant, status="pending", sla_run_started_at=None, sla_due_at=None)
    make_clocked(tenant, status="resolved")
    make_clocked(tenant, started=None, resolution_due_at=T0)
    assert sweep(tenant, DUE) == ([], [not_due.pk])
    assert breach_facts(tenant) == []
    assert sla_events(tenant) == [(not_due.pk, {"sla_state": "due_soon"})]


def test_a_sweep_takes_a_bounded_batch_oldest_due_first(tenant: Tenant) -> None:
    later = make_clocked(tenant, started=T0 + timedelta(minutes=2))
    first = make_clocked(tenant, started=T0)
    second = make_clocked(tenant, started=T0 + timedelta(minutes=1))
    at = DUE + timedelta(minutes=5)
    with tenant_context(tenant):
        assert sweep_sla_clocks(tenant, now=at, limit=2).breached == [
            first.pk,
            second.pk,
        ]
    assert sweep(tenant, at) == ([later.pk], [])


def test_the_sweep_sees_only_its_tenant(tenant: Tenant, other_tenant: Tenant) -> None:
    ours = make_clocked(tenant)
    theirs = make_clocked(other_tenant)
    assert sweep(tenant, DUE) == ([ours.pk], [])
    assert fresh(theirs).sla_breached_at is None
    assert breach_facts(other_tenant) == []


def test_the_beat_task_sweeps_every_active_tenant(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    ours = make_clocked(tenant)
    theirs = make_clocked(other_tenant)
    with time_machine.travel(DUE + timedelta(seconds=5), tick=False):
        assert tasks.sweep_all_sla_clocks.delay().get() == 2
    assert fresh(ours).sla_breached_at == DUE
    assert fresh(theirs).sla_breached_at == DUE


# --- the sweep: due soon ------------------------------------------------------------


def test_due_soon_is_announced_once_per_clock(tenant: Tenant) -> None:
    conversation = make_clocked(tenant)
    assert sweep(tenant, SOON - timedelta(seconds=1)) == ([], [])
    assert sweep(tenant, SOON) == ([], [conversation.pk])
    assert sweep(tenant, SOON + timedelta(seconds=30)) == ([], [])
    assert fresh(conversation).sla_due_soon_announced_at == SOON
    assert sla_events(tenant) == [(conversation.pk, {"sla_state": "due_soon"})]
    # Answered, then the customer wrote again: the next clock is announced too.
    restart = T0 + timedelta(hours=2)
    restart_clock(conversation, started=restart)
    assert sweep(tenant, restart + timedelta(minutes=48)) == ([], [conversation.pk])
    assert len(sla_events(tenant)) == 2


def test_a_clock_that_ran_out_between_sweeps_is_breached_not_announced(
    tenant: Tenant,
) -> None:
    conversation = make_clocked(tenant)
    assert sweep(tenant, DUE) == ([conversation.pk], [])
    assert [changed["sla_state"] for _, changed in sla_events(tenant)] == ["breached"]


# --- overlapping sweeps (real row locks, two connections) ---------------------------


@pytest.mark.django_db(transaction=True)
def test_a_sweep_skips_the_rows_another_sweep_holds(tenant: Tenant) -> None:
    conversation = make_clocked(tenant)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with tenant_context(tenant):
                Conversation.objects.select_for_update().get(pk=conversation.pk)
                locked.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(timeout=10)
    try:
        assert sweep(tenant, DUE) == ([], [])
    finally:
        release.set()
        holder.join(timeout=10)
    assert sweep(tenant, DUE) == ([conversation.pk], [])
    assert sweep(tenant, DUE) == ([], [])
    assert len(breach_facts(tenant)) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_sweeps_record_each_breach_once(tenant: Tenant, owner: User) -> None:
    add_endpoint(tenant, owner, URL, events=("conversation.sla_breached",))
    conversations = [make_clocked(tenant, name=f"Customer {i}") for i in range(6)]
    barrier = threading.Barrier(3)
    results: list[list[int]] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(sweep(tenant, DUE)[0])
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    swept = sorted(pk for result in results for pk in result)
    assert swept == sorted(c.pk for c in conversations)
    assert sorted(pk for pk, *_ in breach_facts(tenant)) == swept
    assert sorted(pk for pk, _ in sla_events(tenant)) == swept
    assert sorted(data["conversation_id"] for _, data in webhook_rows(tenant)) == swept
