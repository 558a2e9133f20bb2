"""Delivery to real receivers on 127.0.0.1: headers, body, retries, auto-disable."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from helpdesk import tasks
from helpdesk.models import WebhookDelivery, WebhookEndpoint
from helpdesk.services import webhook_delivery
from helpdesk.services.webhook_delivery import MAX_ATTEMPTS
from helpdesk.services.webhook_outbox import queue_webhook_deliveries
from helpdesk.services.webhooks import rotate_webhook_secret, send_test_ping
from helpdesk.webhooks import transport
from helpdesk.webhooks.signing import verify_signature
from tenants.context import tenant_context
from tenants.models import AuditEvent, Tenant, User
from tests.factories import membership_of
from tests.helpdesk.webhook_support import (  # noqa: F401 - fixtures
    Receiver,
    WebhookQueue,
    add_endpoint,
    loopback_hooks_fixture,
    run_delivery,
    webhook_queue_fixture,
)
from tests.social.fakeserver import FakeRequest, FakeServer

pytestmark = pytest.mark.django_db

Status = WebhookDelivery.Status


def queue(tenant: Tenant, type: str = "message.created", **data: Any) -> int:
    with tenant_context(tenant):
        (delivery_id,) = queue_webhook_deliveries(tenant.pk, type, data)
    return delivery_id


def load(tenant: Tenant, delivery_id: int) -> WebhookDelivery:
    with tenant_context(tenant):
        return WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)


def make_due(tenant: Tenant, delivery_id: int) -> None:
    with tenant_context(tenant):
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            next_attempt_at=timezone.now() - timedelta(seconds=1)
        )


def failing(status: int = 500) -> tuple[int, dict[str, str], Any]:
    return (status, {}, {"error": "boom"})


def test_delivery_sends_the_signed_envelope(
    tenant: Tenant, owner: User, loopback_hooks: Receiver
) -> None:
    receiver = loopback_hooks()
    new = add_endpoint(tenant, owner, receiver.base_url + "/hooks")
    delivery_id = queue(tenant, message_id=7, changed={"text": True})
    assert run_delivery(tenant, delivery_id) == "succeeded"
    delivery = load(tenant, delivery_id)
    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hooks"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "Earshot-Webhooks/1.0"
    assert request.headers["earshot-event"] == "message.created"
    assert request.headers["earshot-delivery"] == str(delivery.uuid)
    assert verify_signature(
        new.secret, request.headers["earshot-signature"], request.body
    )
    assert json.loads(request.body) == {
        "id": str(delivery.event_id),
        "type": "message.created",
        "created_at": delivery.created_at.isoformat().replace("+00:00", "Z"),
        "tenant": "acme-air",
        "data": {"message_id": 7, "changed": {"text": True}},
    }
    assert delivery.status == Status.SUCCEEDED
    assert (delivery.attempts, delivery.last_status_code) == (1, 200)
    assert delivery.delivered_at is not None
    assert delivery.next_attempt_at is None
    assert delivery.response_excerpt == '{"ok": true}'


def test_a_success_resets_the_failure_count(
    tenant: Tenant, owner: User, loopback_hooks: Receiver
) -> None:
    receiver = loopback_hooks()
    endpoint = add_endpoint(tenant, owner, receiver.base_url + "/hooks").endpoint
    with tenant_context(tenant):
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=4)
    run_delivery(tenant, queue(tenant))
    with tenant_context(tenant):
        endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0
    assert endpoint.last_success_at is not None


def test_a_500_schedules_a_retry_with_backoff(
    tenant: Tenant,
    owner: User,
    loopback_hooks: Receiver,
    webhook_queue: WebhookQueue,
) -> None:
    receiver = loopback_hooks(failing(500))
    endpoint = add_endpoint(tenant, owner, receiver.base_url + "/hooks").endpoint
    delivery_id = queue(tenant)
    before = timezone.now()
    assert run_delivery(tenant, delivery_id) == "retry"
    delivery = load(tenant, delivery_id)
    assert delivery.status == Status.FAILED
    assert (delivery.attempts, delivery.last_status_code) == (1, 500)
    assert delivery.last_error == "HTTP 500."
    assert delivery.response_excerpt == '{"error": "boom"}'
    assert delivery.next_attempt_at is not None
    wait = (delivery.next_attempt_at - before).total_seconds()
    assert 24 <= wait <= 37  # 30 s ± 20 % jitter
    ((args, countdown),) = webhook_queue.calls
    assert args == (tenant.pk, delivery_id)
    assert countdown is not None
    assert 23 <= countdown <= 36
    assert delivery.endpoint.consecutive_failures == 1
    assert endpoint.pk == delivery.endpoint_id


def test_backoff_grows_and_long_waits_are_left_to_the_sweep(
    tenant: Tenant,
    owner: User,
    loopback_hooks: Receiver,
    webhook_queue: WebhookQueue,
) -> None:
    receiver = loopback_hooks(failing(503))
    add_endpoint(tenant, owner, receiver.base_url + "/hooks")
    delivery_id = queue(tenant)
    waits = []
    for _ in range(5):
        make_due(tenant, delivery_id)
        before = timezone.now()
        assert run_delivery(tenant, delivery_id) == "retry"
        next_at = load(tenant, delivery_id).next_attempt_at
        assert next_at is not None
        waits.append((next_at - before).total_seconds())
    for wait, base in zip(waits, (30, 120, 600, 3600, 21600), strict=True):
        assert base * 0.8 - 1 <= wait <= base * 1.2 + 1
    # 30 s, 2 min and 10 min go to the broker with a countdown; 1 h and 6 h do not.
    assert len(webhook_queue.calls) == 3


def test_retries_resend_the_same_delivery_id_and_body(
    tenant: Tenant, owner: User, loopback_hooks: Receiver, webhook_queue: WebhookQueue
) -> None:
    answers = iter([failing(500), (204, {}, b"")])
    receiver = loopback_hooks()
    receiver.route("POST", "/hooks", lambda request: next(answers))
    add_endpoint(tenant, owner, receiver.base_url + "/hooks")
    delivery_id = queue(tenant)
    assert run_delivery(tenant, delivery_id) == "retry"
    assert run_delivery(tenant, delivery_id) == "skipped"  # not due yet
    make_due(tenant, delivery_id)
    assert run_delivery(tenant, delivery_id) == "succeeded"
    first, second = receiver.requests
    assert first.headers["earshot-delivery"] == second.headers["earshot-delivery"]
    assert first.body == second.body
    delivery = load(tenant, delivery_id)
    assert (delivery.status, delivery.attempts) == (Status.SUCCEEDED, 2)


def test_a_succeeded_delivery_is_never_sent_again(
    tenant: Tenant, owner: User, loopback_hooks: Receiver
) -> None:
    receiver = loopback_hooks()
    add_endpoint(tenant, owner, receiver.base_url + "/hooks")
    delivery_id = queue(tenant)
    assert run_delivery(tenant, delivery_id) == "succeeded"
    make_due(tenant, delivery_id)
    assert run_delivery(tenant, delivery_id) == "skipped"
    assert len(receiver.requests) == 1
    assert load(tenant, delivery_id).attempts == 1


def test_a_claimed_delivery_is_not_sent_twice(
    tenant: Tenant, owner: User, loopback_hooks: Receiver
) -> None:
    receiver = loopback_hooks()
    add_endpoint(tenant, owner, receiver.base_url + "/hooks")
    delivery_id = queue(tenant)
    with tenant_context(tenant):
        assert webhook_delivery.claim_webhook_delivery(tenant, delivery_id)
    # A second message for the same delivery (the sweep, a redelivery) waits for
    # the claim's lease to end.
    assert run_delivery(tenant, delivery_id) == "skipped"
    assert receiver.requests == []


def test_the_last_attempt_gives_up(
    tenant: Tenant, owner: User, loopback_hooks: Receiver, webhook_queue: WebhookQueue
) -> None:
    receiver = loopback_hooks(failing(500))
    add_endpoint(tenant, owner, receiver.base_url + "/hooks")
    delivery_id = queue(tenant)
    with tenant_context(tenant):
        WebhookDelivery.objects.filter(pk=delivery_id).update(attempts=MAX_ATTEMPTS - 1)
    assert run_delivery(tenant, delivery_id) == "gave_up"
    delivery = load(tenant, delivery_id)
    assert (delivery.status, delivery.attempts) == (Status.GAVE_UP, MAX_ATTEMPTS)
    assert delivery.next_attempt_at is None
    assert webhook_queue.calls == []


def test_a_slow_receiver_times_out(
    tenant: Tenant,
    owner: User,
    loopback_hooks: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    def slow(request: FakeRequest) -> tuple[int, dict[str, str], bytes]:
        time.sleep(1.0)
        return (200, {}, b"late")

    receiver = loopback_hooks(slow)
    monkeypatch.setattr(transport, "TOTAL_TIMEOUT", 0.3)
    add_endpoint(tenant, owner, receiver.base_url + "/hooks")
    delivery_id = queue(tenant)
    started = time.monotonic()
    assert run_delivery(tenant, delivery_id) == "retry"
    assert time.monotonic() - started < 0.9
    assert load(tenant, delivery_id).last_error == "Timed out (ReadTimeout)."


def test_an_unreachable_receiver_is_a_failure(
    tenant: Tenant, owner: User, loopback_hooks: Receiver, settings: SettingsWrapper
) -> None:
    receiver = loopback_hooks()
    add_endpoint(tenant, owner, receiver.base_url + "/gone")
    delivery_id = queue(tenant)
    with tenant_context(tenant):
        WebhookEndpoint.objects.update(url="http://127.0.0.1:9/hooks")
    settings.WEBHOOKS_ALLOWED_PORTS = [*settings.WEBHOOKS_ALLOWED_PORTS, 9]
    assert run_delivery(tenant, delivery_id) == "retry"
    assert load(tenant, delivery_id).last_error == "Could not connect (ConnectError)."


def test_auto_disable_after_the_threshold_emails_owners_and_admins_once(
    tenant: Tenant,
    owner: User,
    admin: User,
    agent: User,
    loopback_hooks: Receiver,
    settings: SettingsWrapper,
    webhook_queue: WebhookQueue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.WEBHOOKS_DISABLE_AFTER_FAILURES = 3
    receiver = loopback_hooks(failing(502))
    endpoint = add_endpoint(tenant, owner, receiver.base_url + "/hooks").endpoint
    ids = [queue(tenant, n=n) for n in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = [run_delivery(tenant, delivery_id) for delivery_id in ids]
    assert outcomes == ["retry", "retry", "gave_up", "skipped", "skipped"]
    assert len(receiver.requests) == 3
    with tenant_context(tenant):
        endpoint.refresh_from_db()
        statuses = [WebhookDelivery.objects.get(pk=i).status for i in ids]
        audit = AuditEvent.objects.filter(action="webhook.disabled").get()
    assert endpoint.is_active is False
    assert endpoint.disabled_reason == (
        "Disabled automatically after 3 failed attempts in a row."
    )
    assert statuses == [Status.GAVE_UP] * 5
    assert audit.actor is None
    assert audit.data == {"reason": endpoint.disabled_reason, "automatic": True}
    (email,) = mail.outbox
    assert sorted(email.to) == sorted([owner.email, admin.email])
    assert agent.email not in email.to
    assert email.subject == "Webhook endpoint disabled in Acme Air"
    assert endpoint.url in email.body
    assert endpoint.disabled_reason in email.body
    assert f"/t/acme-air/settings/webhooks/{endpoint.pk}/" in email.body
    # Later events are not queued, and no second email goes out.
    with tenant_context(tenant):
        assert queue_webhook_deliveries(tenant.pk, "message.created", {}) == []
    assert len(mail.outbox) == 1


def test_a_delivery_that_gives_up_after_a_silent_day_disables(
    tenant: Tenant,
    owner: User,
    loopback_hooks: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver = loopback_hooks(failing(500))
    endpoint = add_endpoint(tenant, owner, receiver.base_url + "/hooks").endpoint
    delivery_id = queue(tenant)
    with tenant_context(tenant):
        WebhookDelivery.objects.filter(pk=delivery_id).update(attempts=MAX_ATTEMPTS - 1)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            last_success_at=timezone.now() - timedelta(hours=25)
        )
    with django_capture_on_commit_callbacks(execute=True):
        assert run_delivery(tenant, delivery_id) == "gave_up"
    with tenant_context(tenant):
        endpoint.refresh_from_db()
    assert endpoint.is_active is False
    assert "none has succeeded for 24 hours" in endpoint.disabled_reason
    assert len(mail.outbox) == 1


def test_a_delivery_that_gives_up_after_recent_successes_does_not_disable(
    tenant: Tenant, owner: User, loopback_hooks: Receiver
) -> None:
    receiver = loopback_hooks(failing(500))
    endpoint = add_endpoint(tenant, owner, receiver.base_url + "/hooks").endpoint
    delivery_id = queue(tenant)
    with tenant_context(tenant):
        WebhookDelivery.objects.filter(pk=delivery_id).update(attempts=MAX_ATTEMPTS - 1)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            last_success_at=timezone.now() - timedelta(hours=2)
        )
    assert run_delivery(tenant, delivery_id) == "gave_up"
    with tenant_context(tenant):
        endpoint.refresh_from_db()
    assert endpoint.is_active is True
    assert mail.outbox == []


def test_the_sweep_hands_out_due_deliveries_only(
    tenant: Tenant,
    owner: User,
    loopback_hooks: Receiver,
    webhook_queue: WebhookQueue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver = loopback_hooks()
    add_endpoint(tenant, owner, receiver.base_url + "/hooks")
    due, later, done = queue(tenant, n=1), queue(tenant, n=2), queue(tenant, n=3)
    run_delivery(tenant, done)
    with tenant_context(tenant):
        WebhookDelivery.objects.filter(pk=later).update(
            status=Status.FAILED, next_attempt_at=timezone.now() + timedelta(hours=1)
        )
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.sweep_webhook_deliveries.apply(args=(tenant.pk,)).get() == 1
    assert webhook_queue.ids() == [due]


def test_the_sweep_prunes_old_finished_deliveries(
    tenant: Tenant, owner: User, loopback_hooks: Receiver, settings: SettingsWrapper
) -> None:
    receiver = loopback_hooks()
    add_endpoint(tenant, owner, receiver.base_url + "/hooks")
    old, recent = queue(tenant, n=1), queue(tenant, n=2)
    run_delivery(tenant, old)
    run_delivery(tenant, recent)
    with tenant_context(tenant):
        WebhookDelivery.objects.filter(pk=old).update(
            created_at=timezone.now() - timedelta(days=31)
        )
    tasks.sweep_webhook_deliveries.apply(args=(tenant.pk,)).get()
    with tenant_context(tenant):
        assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [recent]


def test_test_ping_is_delivered(
    tenant: Tenant, owner: User, loopback_hooks: Receiver, webhook_queue: WebhookQueue
) -> None:
    receiver = loopback_hooks()
    endpoint = add_endpoint(tenant, owner, receiver.base_url + "/hooks").endpoint
    with tenant_context(tenant):
        delivery = send_test_ping(membership_of(tenant, owner), endpoint)
    assert (delivery.event_type, delivery.payload) == (
        "ping",
        {"endpoint_id": endpoint.pk},
    )
    assert run_delivery(tenant, delivery.pk) == "succeeded"
    (request,) = receiver.requests
    assert request.headers["earshot-event"] == "ping"
    assert json.loads(request.body)["data"] == {"endpoint_id": endpoint.pk}


def test_after_a_rotation_both_secrets_sign_for_a_day(
    tenant: Tenant, owner: User, loopback_hooks: Receiver
) -> None:
    receiver = loopback_hooks()
    new = add_endpoint(tenant, owner, receiver.base_url + "/hooks")
    with tenant_context(tenant):
        rotated = rotate_webhook_secret(membership_of(tenant, owner), new.endpoint)
    run_delivery(tenant, queue(tenant))
    with tenant_context(tenant):
        WebhookEndpoint.objects.update(
            previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
        )
    run_delivery(tenant, queue(tenant))
    during, after = (r.headers["earshot-signature"] for r in receiver.requests)
    first, second = receiver.requests
    assert rotated != new.secret
    assert verify_signature(rotated, during, first.body)
    assert verify_signature(new.secret, during, first.body)
    assert verify_signature(rotated, after, second.body)
    assert not verify_signature(new.secret, after, second.body)


def test_a_deleted_endpoint_leaves_nothing_to_deliver(
    tenant: Tenant, owner: User, loopback_hooks: Receiver
) -> None:
    from helpdesk.services.webhooks import delete_webhook_endpoint

    receiver: FakeServer = loopback_hooks()
    endpoint = add_endpoint(tenant, owner, receiver.base_url + "/hooks").endpoint
    delivery_id = queue(tenant)
    with tenant_context(tenant):
        delete_webhook_endpoint(membership_of(tenant, owner), endpoint)
        assert WebhookDelivery.objects.count() == 0
    assert run_delivery(tenant, delivery_id) == "skipped"
    assert receiver.requests == []
