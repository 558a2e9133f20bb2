"""API-channel replies are sent in the delivery task's own thread: their
connector makes no network call, so nothing is handed to the delivery threads
(Connector.sends_in_process); the batch is recorded as before."""

from contextlib import suppress
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from helpdesk import tasks
from helpdesk.models import Event, Message
from helpdesk.services import delivery_slots
from social import sending
from social.connectors import ConnectorError, get_connector
from social.models import Platform
from tenants.context import tenant_context
from tests.helpdesk.live import empty_scratch_broker
from tests.perf import test_delivery_cpu as cpu

pytestmark = pytest.mark.django_db(transaction=True)


def test_api_channel_replies_are_sent_without_the_delivery_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cpu, "CONVERSATIONS", 5)
    monkeypatch.setattr(cpu, "BATCH", 5)
    tenant, account, conversations = cpu.workspace()
    ids = cpu.queue(tenant, account, conversations, 0)

    def no_pool() -> Any:
        raise AssertionError("an API-channel reply was handed to the threads")

    monkeypatch.setattr(sending, "pool", no_pool)
    slot = delivery_slots.slot_of(timezone.now() - timedelta(seconds=1), 250)
    with (
        override_settings(
            DELIVERY_BATCH_SIZE=10, DELIVERY_SLOT_MS=250, DELIVERY_CONCURRENCY=4
        ),
        empty_scratch_broker(),
    ):
        result = tasks.deliver_message.apply(args=(tenant.pk, ids[0], slot)).result
    assert result == "sent"
    with tenant_context(tenant):
        rows = list(
            Message.objects.filter(pk__in=ids)
            .order_by("pk")
            .values_list("delivery_status", "external_id", "attempts", "client_ref")
        )
        sent_events = [
            e.payload["message_id"]
            for e in Event.objects.filter(type="message.updated").order_by("seq")
            if e.payload["changed"].get("delivery_status") == "sent"
        ]
    assert [row[:3] for row in rows] == [
        ("sent", f"earshot-{row[3]}", 1) for row in rows
    ]
    assert len(rows) == 5
    assert sent_events == ids


def test_only_the_api_channel_sends_in_process() -> None:
    connectors = {}
    for platform in Platform.values:
        with suppress(ConnectorError):  # a platform with no connector (reviews)
            connectors[platform] = get_connector(platform)
    in_process = {
        platform
        for platform, connector in connectors.items()
        if connector.sends_in_process
    }

    assert set(connectors) == set(Platform.values) - {"reviews"}
    assert in_process == {"api"}
