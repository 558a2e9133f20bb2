"""Stored means processed (invariant 2): a delivery acknowledged while the broker is
down, a replay of an unprocessed delivery, the sweep of stale `received` events,
and a delivery that could not be stored (503 with Retry-After, nothing kept)."""

from datetime import timedelta
from typing import Any

import pytest
from celery.exceptions import Retry
from django.db import OperationalError
from django.db.backends.utils import CursorWrapper
from django.db.models import QuerySet
from django.test import override_settings
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from social import ingest, tasks
from social.models import SocialAccount, WebhookEvent
from tenants.models import Tenant
from tests.social.test_webhook_asgi import call, signed
from tests.social.test_webhooks import conversations, deliver, post_event
from tests.social.test_webhooks import routed as routed

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker_down(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """process_webhook_event.delay refuses like kombu does with no broker."""
    refused: list[int] = []

    def refuse(event_id: int) -> None:
        refused.append(event_id)
        raise BrokerError("[Errno 111] Connection refused")

    monkeypatch.setattr(tasks.process_webhook_event, "delay", refuse)
    return refused


@pytest.fixture
def database_refuses_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every INSERT of a webhook event fails as with the database down."""
    execute = CursorWrapper.execute

    def refuse(self: CursorWrapper, sql: str, params: Any = None) -> Any:
        if sql.startswith('INSERT INTO "social_webhookevent"'):
            raise OperationalError("connection to server at 127.0.0.1 failed")
        return execute(self, sql, params)

    monkeypatch.setattr(CursorWrapper, "execute", refuse)


@pytest.fixture
def stored(
    routed: SocialAccount, monkeypatch: pytest.MonkeyPatch
) -> tuple[WebhookEvent, list[int]]:
    """One stored delivery whose task was not run; the ids queued since."""
    queued: list[int] = []
    monkeypatch.setattr(tasks.process_webhook_event, "delay", queued.append)
    deliver(post_event("100"))
    return WebhookEvent.objects.get(), queued


def age(seconds: float, **filters: Any) -> None:
    WebhookEvent.objects.filter(**filters).update(
        received_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_a_delivery_stored_while_the_broker_is_down_is_acknowledged(
    routed: SocialAccount, tenant: Tenant, broker_down: list[int]
) -> None:
    response = deliver(post_event("100", text="@acmeair lost my bag"))

    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    event = WebhookEvent.objects.get()
    assert broker_down == [event.pk]
    assert (event.status, event.touched_at) == ("received", None)
    assert conversations(tenant) == []


def test_the_sweep_queues_what_was_stored_but_not_queued(
    routed: SocialAccount, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(event_id: int) -> None:
        raise BrokerError("down")

    with monkeypatch.context() as patch:
        patch.setattr(tasks.process_webhook_event, "delay", refuse)
        deliver(post_event("100", text="@acmeair lost my bag"))
    assert tasks.sweep_webhook_events.delay().get() == 0  # not stale yet
    age(61)

    assert tasks.sweep_webhook_events.delay().get() == 1

    event = WebhookEvent.objects.get()
    assert event.status == "processed"
    assert conversations(tenant) == [("mention", "@acmeair lost my bag")]


def test_a_replay_of_an_unprocessed_delivery_processes_it(
    routed: SocialAccount, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = post_event("100", text="@acmeair still no refund")
    with monkeypatch.context() as patch:
        patch.setattr(
            tasks.process_webhook_event,
            "delay",
            lambda event_id: (_ for _ in ()).throw(BrokerError("down")),
        )
        first = deliver(payload)
    assert first.status_code == 200
    assert WebhookEvent.objects.get().status == "received"

    retry = deliver(payload)

    assert (retry.status_code, retry.json()) == (200, {"status": "accepted"})
    assert WebhookEvent.objects.count() == 1
    assert WebhookEvent.objects.get().status == "processed"
    assert conversations(tenant) == [("mention", "@acmeair still no refund")]


def test_a_replay_of_a_processed_delivery_queues_nothing(
    routed: SocialAccount, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = post_event("100")
    deliver(payload)
    queued: list[int] = []
    monkeypatch.setattr(tasks.process_webhook_event, "delay", queued.append)

    again = deliver(payload)

    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert queued == []
    assert len(conversations(tenant)) == 1


def test_a_replay_of_a_failed_delivery_tries_it_again(
    routed: SocialAccount, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = post_event("100", text="@acmeair hello")
    with monkeypatch.context() as patch:
        patch.setattr(tasks.process_webhook_event, "delay", lambda event_id: None)
        deliver(payload)
    WebhookEvent.objects.update(status="failed", error="gave up")

    again = deliver(payload)

    assert (again.status_code, again.json()) == (200, {"status": "accepted"})
    assert WebhookEvent.objects.get().status == "processed"
    assert conversations(tenant) == [("mention", "@acmeair hello")]


@override_settings(WEBHOOK_SWEEP_BATCH=2, WEBHOOK_SWEEP_AFTER_SECONDS=60)
def test_the_sweep_takes_the_oldest_stale_events_up_to_its_cap(
    routed: SocialAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[int] = []
    monkeypatch.setattr(tasks.process_webhook_event, "delay", queued.append)
    for n in range(4):
        deliver(post_event("100", text=f"@acmeair {n}"))
    ids = list(WebhookEvent.objects.order_by("pk").values_list("pk", flat=True))
    queued.clear()
    for n, event_id in enumerate(ids):
        age(200 - n * 40, pk=event_id)  # 200, 160, 120, 80 s old
    WebhookEvent.objects.filter(pk=ids[3]).update(touched_at=timezone.now())

    assert tasks.sweep_webhook_events.delay().get() == 2
    assert queued == ids[:2]
    # Just queued: the next run leaves those two alone and takes the third.
    assert tasks.sweep_webhook_events.delay().get() == 1
    assert queued == ids[:3]


def test_the_sweep_stops_while_the_broker_refuses(
    routed: SocialAccount, monkeypatch: pytest.MonkeyPatch, broker_down: list[int]
) -> None:
    deliver(post_event("100"))
    deliver(post_event("100"))
    age(120)
    broker_down.clear()

    assert tasks.sweep_webhook_events.delay().get() == 0

    assert len(broker_down) == 1
    assert list(WebhookEvent.objects.values_list("status", "touched_at")) == [
        ("received", None),
        ("received", None),
    ]


def test_a_retrying_event_is_left_alone_until_its_retry_is_due(
    stored: tuple[WebhookEvent, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    event, queued = stored

    def fail(event_id: int) -> str:
        raise RuntimeError("routing table busy")

    monkeypatch.setattr(ingest, "process_webhook_event", fail)
    # Celery's eager mode would run every retry at once: record the one asked for.
    monkeypatch.setattr(tasks.process_webhook_event, "retry", lambda **options: Retry())
    tasks.process_webhook_event.apply(args=(event.pk,), throw=False)

    event.refresh_from_db()
    assert (event.status, event.attempts) == ("received", 1)
    assert event.touched_at is not None
    wait = (event.touched_at - timezone.now()).total_seconds()
    assert 0 < wait <= 2
    age(3600)
    assert tasks.sweep_webhook_events.delay().get() == 0
    assert queued == [event.pk]


def test_a_delivery_that_cannot_be_stored_gets_503_and_nothing_is_kept(
    routed: SocialAccount, database_refuses_writes: None
) -> None:
    response = deliver(post_event("100"))

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response.json() == {
        "error": "the delivery could not be stored right now; retry later"
    }
    assert WebhookEvent.objects.count() == 0


def test_the_fast_path_answers_503_when_it_cannot_store(
    routed: SocialAccount, database_refuses_writes: None
) -> None:
    body, headers = signed(post_event("100"))

    response = call("POST", "/hooks/sandbox/", body, headers)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    assert response.json()["error"].startswith("the delivery could not be stored")
    assert WebhookEvent.objects.count() == 0


def test_the_fast_path_acknowledges_with_the_broker_down(
    routed: SocialAccount, broker_down: list[int]
) -> None:
    body, headers = signed(post_event("100"))

    response = call("POST", "/hooks/sandbox/", body, headers)

    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    assert WebhookEvent.objects.get().status == "received"


def test_a_database_error_as_the_task_starts_is_retried(
    stored: tuple[WebhookEvent, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    event, _queued = stored
    update = QuerySet.update
    calls: list[dict[str, Any]] = []

    def database_restarting(self: QuerySet[Any], **fields: Any) -> int:
        calls.append(fields)
        if len(calls) <= 2:  # the start and the retry's mark both hit the restart
            raise OperationalError("terminating connection due to administrator")
        return update(self, **fields)

    monkeypatch.setattr(QuerySet, "update", database_restarting)
    monkeypatch.setattr(tasks.process_webhook_event, "retry", lambda **options: Retry())

    result = tasks.process_webhook_event.apply(args=(event.pk,), throw=False)

    assert result.state == "RETRY"
    assert [sorted(fields) for fields in calls] == [
        ["attempts", "touched_at"],
        ["touched_at"],
    ]
    monkeypatch.undo()
    assert WebhookEvent.objects.get().status == "received"
