"""One `social.process_webhook_event` task for a group of stored deliveries (the
web process publishes one per group commit): every event of the group is
processed, in order, and one that fails goes to a task of its own."""

from typing import Any

import pytest

from helpdesk.models import Message
from social import ingest, tasks
from social.models import SocialAccount, WebhookEvent
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.social.test_webhooks import deliver, post_event
from tests.social.test_webhooks import routed as routed

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stored(routed: SocialAccount, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Four stored deliveries (two for the other tenant) whose tasks did not run."""
    monkeypatch.setattr(tasks.process_webhook_event, "delay", lambda event_id: None)
    for n in range(4):
        account = "100" if n % 2 == 0 else "900"
        deliver(post_event(account, text=f"@acmeair number {n}", author=str(n)))
    return list(WebhookEvent.objects.order_by("pk").values_list("pk", flat=True))


def texts(tenant: Tenant) -> list[str]:
    with tenant_context(tenant):
        return list(Message.objects.order_by("pk").values_list("text", flat=True))


def test_a_group_task_processes_every_event_of_its_group_in_order(
    stored: list[int], tenant: Tenant, other_tenant: Tenant
) -> None:
    result = tasks.process_webhook_event.apply(args=tuple(stored)).get()

    assert result == "processed"
    statuses = WebhookEvent.objects.order_by("pk").values_list("status", "attempts")
    assert list(statuses) == [("processed", 0)] * 4
    assert texts(tenant) == ["@acmeair number 0", "@acmeair number 2"]
    assert texts(other_tenant) == ["@acmeair number 1", "@acmeair number 3"]


def test_an_event_that_fails_in_its_group_is_queued_alone_and_the_rest_recorded(
    stored: list[int],
    tenant: Tenant,
    other_tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    process = ingest.process_webhook_event
    queued: list[int] = []

    def fail_second(event_id: int, **options: Any) -> str:
        if event_id == stored[1]:
            raise RuntimeError("the routing table is busy")
        return process(event_id, batch_size=1)

    monkeypatch.setattr(ingest, "process_webhook_event", fail_second)
    monkeypatch.setattr(tasks.process_webhook_event, "delay", queued.append)

    result = tasks.process_webhook_event.apply(args=tuple(stored)).get()

    assert result == "1 failed"
    assert queued == [stored[1]]
    statuses = WebhookEvent.objects.order_by("pk").values_list("status", flat=True)
    assert list(statuses) == ["processed", "received", "processed", "processed"]
    assert texts(tenant) == ["@acmeair number 0", "@acmeair number 2"]
    assert texts(other_tenant) == ["@acmeair number 3"]


def test_events_processed_already_are_skipped(
    stored: list[int], tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = ingest.process_webhook_event
    assert process(stored[0], batch_size=1) == "processed"
    called: list[int] = []

    def recorded(event_id: int, **options: Any) -> str:
        called.append(event_id)
        return process(event_id, **options)

    monkeypatch.setattr(ingest, "process_webhook_event", recorded)

    assert tasks.process_webhook_event.apply(args=tuple(stored)).get() == "processed"
    # The second event's batch claimed the two after it.
    assert called == [stored[1]]
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
