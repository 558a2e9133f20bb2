"""Counting inbound per brand and five minutes, and the alerts a spike opens:
one per spike, its terms and samples, the live event, the admins' email, the
signed `alert.spike` webhook, closing when calm, and no alert without history."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core import mail

from helpdesk.models import Event, WebhookDelivery
from helpdesk.webhooks.signing import verify_signature
from social.models import ListeningRule, SocialAccount
from spikes import tasks
from spikes.models import SpikeAlert, SpikeCount, SpikeCursor
from spikes.rollup import count_inbound
from spikes.selectors import brand_watches
from spikes.services import acknowledge_alert, detect_spikes
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.factories import membership_of
from tests.helpdesk.conftest import item, make_account, receive
from tests.helpdesk.webhook_support import (  # noqa: F401 - fixtures
    Receiver,
    add_endpoint,
    loopback_hooks_fixture,
    run_delivery,
)
from tests.spikes.support import burst, seed_history

pytestmark = pytest.mark.django_db

# Monday 7 December 2026, 10:02 UTC: the bucket in progress began at 10:00.
NOW = datetime(2026, 12, 7, 10, 2, 30, tzinfo=UTC)
LIVE = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


class RecordingLayer:
    """A channel layer that records what is pushed to which group."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        events = message.get("events") or [message.get("event")]
        self.sent.extend((group, event) for event in events)


@pytest.fixture
def layer(monkeypatch: pytest.MonkeyPatch) -> RecordingLayer:
    recording = RecordingLayer()
    monkeypatch.setattr("helpdesk.publish.get_channel_layer", lambda: recording)
    return recording


@pytest.fixture
def account(tenant: Tenant) -> SocialAccount:
    return make_account(tenant)


@pytest.fixture
def brand(tenant: Tenant, account: SocialAccount) -> Brand:
    with tenant_context(tenant):
        return Brand.objects.get(pk=account.brand_id)


def run(tenant: Tenant, now: datetime, capture: Any) -> Any:
    with capture(execute=True), tenant_context(tenant):
        return detect_spikes(tenant, now=now)


def alerts(tenant: Tenant) -> list[SpikeAlert]:
    with tenant_context(tenant):
        return list(SpikeAlert.objects.order_by("pk"))


def test_a_burst_opens_one_alert_with_its_terms_samples_event_and_email(
    tenant: Tenant,
    owner: User,
    admin: User,
    agent: User,
    account: SocialAccount,
    brand: Brand,
    layer: RecordingLayer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    seed_history(tenant, brand, NOW)
    burst(account, 12, at=LIVE + timedelta(minutes=1))

    result = run(tenant, NOW, django_capture_on_commit_callbacks)

    (alert,) = alerts(tenant)
    assert result.counted == 12
    assert result.opened == [alert.pk]
    assert (alert.status, alert.window_start, alert.count) == ("open", LIVE, 12)
    assert (alert.baseline, alert.threshold) == (2.0, 10.0)
    assert sum(alert.by_sentiment.values()) == 12
    assert set(alert.by_sentiment) <= {"negative", "neutral", "positive"}
    assert alert.by_rule == {"0": 12}
    terms = [term for term, _ in alert.top_terms]
    assert terms[:3] == ["aa31", "cancelled", "gate"]
    assert dict(alert.top_terms)["aa31"] == 12
    assert len(alert.sample_message_ids) == 5
    with tenant_context(tenant):
        (event,) = Event.objects.filter(type="alert.spike")
    assert event.payload["alert_id"] == alert.pk
    assert event.payload["top_terms"][:2] == ["aa31", "cancelled"]
    pushed = [e for group, e in layer.sent if e.get("type") == "alert.spike"]
    assert [(e["alert_id"], e["seq"]) for e in pushed] == [(alert.pk, event.seq)]
    assert [group for group, e in layer.sent if e.get("type") == "alert.spike"] == [
        f"t{tenant.pk}"
    ]
    (email,) = mail.outbox
    assert sorted(email.to) == sorted([owner.email, admin.email])
    assert email.subject == f"Spike: 12 messages in 5 minutes for {brand.name}"
    assert "Top terms: aa31, cancelled, gate" in email.body
    assert f"/t/{tenant.slug}/alerts/{alert.pk}/" in email.body


def test_the_spike_keeps_one_alert_while_it_lasts_and_closes_when_calm(
    tenant: Tenant,
    account: SocialAccount,
    brand: Brand,
    layer: RecordingLayer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    seed_history(tenant, brand, NOW)
    burst(account, 12, at=LIVE + timedelta(minutes=1))
    run(tenant, NOW, django_capture_on_commit_callbacks)
    # The same run again, and the next five minutes still spiking: one alert.
    run(tenant, NOW, django_capture_on_commit_callbacks)
    burst(account, 15, at=LIVE + timedelta(minutes=6), start=12)
    later = NOW + timedelta(minutes=5)
    result = run(tenant, later, django_capture_on_commit_callbacks)
    (alert,) = alerts(tenant)
    assert result.opened == []
    assert (alert.status, alert.count, alert.peak_count) == ("open", 12, 15)
    assert len(mail.outbox) == 1
    # Ten minutes on, the last complete bucket is quiet again: it closes.
    calm = NOW + timedelta(minutes=15)
    result = run(tenant, calm, django_capture_on_commit_callbacks)
    (alert,) = alerts(tenant)
    assert result.closed == [alert.pk]
    assert alert.status == "closed"
    assert alert.closed_at == calm
    updated = [e for _, e in layer.sent if e.get("type") == "alert.updated"]
    assert updated == [
        {
            "type": "alert.updated",
            "alert_id": alert.pk,
            "brand_id": brand.pk,
            "status": "closed",
            "acknowledged": False,
        }
    ]
    with tenant_context(tenant):
        assert Event.objects.filter(type="alert.spike").count() == 1


def test_a_brand_without_history_gets_no_alert_and_the_watch_says_so(
    tenant: Tenant,
    owner: User,
    account: SocialAccount,
    brand: Brand,
    django_capture_on_commit_callbacks: Any,
) -> None:
    burst(account, 40, at=LIVE + timedelta(minutes=1))

    result = run(tenant, NOW, django_capture_on_commit_callbacks)

    assert (result.counted, result.opened) == (40, [])
    assert alerts(tenant) == []
    assert mail.outbox == []
    with tenant_context(tenant):
        (watch,) = [
            w
            for w in brand_watches(membership_of(tenant, owner), now=NOW)
            if w.brand.pk == brand.pk
        ]
    assert (watch.enough_history, watch.weeks) == (False, 0)


def test_a_brand_with_alerts_off_gets_none(
    tenant: Tenant,
    account: SocialAccount,
    brand: Brand,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with tenant_context(tenant):
        Brand.objects.filter(pk=brand.pk).update(spike_alerts=False)
    seed_history(tenant, brand, NOW)
    burst(account, 12, at=LIVE + timedelta(minutes=1))
    assert run(tenant, NOW, django_capture_on_commit_callbacks).opened == []
    assert alerts(tenant) == []


def test_counts_split_by_sentiment_and_listening_rule_and_never_twice(
    tenant: Tenant, account: SocialAccount, brand: Brand
) -> None:
    with tenant_context(tenant):
        rule = ListeningRule.objects.create(
            tenant=tenant, brand=brand, name="Flights", query="aa31"
        )
    at = LIVE + timedelta(minutes=2)
    receive(
        account,
        item(text="AA31 is late again", mentions=False, created_at=at),
        origin="listening",
    )
    receive(account, item(text="Thanks, lovely crew!", created_at=at))
    receive(account, item(text="Where is my bag", created_at=at - timedelta(hours=1)))
    with tenant_context(tenant):
        assert count_inbound(tenant, now=NOW) == 3
        assert count_inbound(tenant, now=NOW) == 0
        cells = sorted(
            SpikeCount.objects.filter(brand=brand).values_list(
                "bucket", "sentiment", "rule_id", "count"
            )
        )
        cursor = SpikeCursor.objects.get()
    hour_ago = LIVE - timedelta(hours=1)
    assert sorted((b, r, n) for b, _, r, n in cells) == [
        (hour_ago, 0, 1),
        (LIVE, 0, 1),
        (LIVE, rule.pk, 1),
    ]
    assert {s for _, s, _, _ in cells} <= {"negative", "neutral", "positive"}
    assert cursor.last_message_id > 0


def test_the_alert_spike_webhook_reaches_a_subscribed_endpoint_signed(
    tenant: Tenant,
    owner: User,
    account: SocialAccount,
    brand: Brand,
    loopback_hooks: Receiver,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = loopback_hooks()
    spikes_only = add_endpoint(
        tenant, owner, receiver.base_url + "/hooks", events=("alert.spike",)
    )
    seed_history(tenant, brand, NOW)
    burst(account, 12, at=LIVE + timedelta(minutes=1))
    # The delivery task runs below, by hand.
    monkeypatch.setattr(
        "helpdesk.services.webhook_outbox.enqueue_each_on_commit",
        lambda *args, **kwargs: None,
    )
    run(tenant, NOW, django_capture_on_commit_callbacks)
    (alert,) = alerts(tenant)
    with tenant_context(tenant):
        (delivery,) = WebhookDelivery.objects.filter(endpoint=spikes_only.endpoint)
    assert run_delivery(tenant, delivery.pk) == "succeeded"
    (request,) = receiver.requests
    assert request.headers["earshot-event"] == "alert.spike"
    assert verify_signature(
        spikes_only.secret, request.headers["earshot-signature"], request.body
    )
    body = json.loads(request.body)
    assert body["type"] == "alert.spike"
    assert body["tenant"] == tenant.slug
    data = body["data"]
    assert (data["alert_id"], data["brand_id"], data["status"]) == (
        alert.pk,
        brand.pk,
        "open",
    )
    assert (data["count"], data["baseline"], data["threshold"]) == (12, 2.0, 10.0)
    assert data["window_start"] == LIVE.isoformat()
    assert data["window_minutes"] == 5
    assert data["top_terms"][:2] == ["aa31", "cancelled"]
    assert len(data["sample_message_ids"]) == 5


def test_acknowledging_keeps_the_first_member(
    tenant: Tenant,
    owner: User,
    agent: User,
    account: SocialAccount,
    brand: Brand,
    layer: RecordingLayer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    seed_history(tenant, brand, NOW)
    burst(account, 12, at=LIVE + timedelta(minutes=1))
    run(tenant, NOW, django_capture_on_commit_callbacks)
    (alert,) = alerts(tenant)
    with django_capture_on_commit_callbacks(execute=True), tenant_context(tenant):
        first = acknowledge_alert(alert, membership=membership_of(tenant, agent))
        again = acknowledge_alert(alert, membership=membership_of(tenant, owner))
    assert first.acknowledged_by_id == agent.pk
    assert again.acknowledged_by_id == agent.pk
    assert again.acknowledged_at == first.acknowledged_at
    acks = [e for _, e in layer.sent if e.get("type") == "alert.updated"]
    assert [e["acknowledged"] for e in acks] == [True]


def test_the_beat_entry_runs_each_workspace(
    tenant: Tenant, other_tenant: Tenant, account: SocialAccount
) -> None:
    burst(account, 3)
    assert tasks.detect_all_spikes.apply().get() == 2
    with tenant_context(tenant):
        assert sum(SpikeCount.objects.values_list("count", flat=True)) == 3
    with tenant_context(other_tenant):
        assert SpikeCount.objects.count() == 0
