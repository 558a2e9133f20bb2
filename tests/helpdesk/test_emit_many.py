"""events.emit_many: several durable events in one allocation and one INSERT,
their webhook deliveries with one endpoint lookup, and nothing sent before commit."""

import logging
from typing import Any

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext

from helpdesk import events
from helpdesk.models import Event, EventCounter, WebhookDelivery
from helpdesk.services import writebatch
from helpdesk.services.webhook_outbox import has_active_endpoints
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.helpdesk.conftest import item, receive
from tests.helpdesk.webhook_support import (  # noqa: F401 - fixtures
    FakeDns,
    WebhookQueue,
    add_endpoint,
    fake_dns_fixture,
    webhook_queue_fixture,
)

pytestmark = pytest.mark.django_db

URL = "https://hooks.example.com/earshot"


@pytest.fixture(autouse=True)
def _fixtures(fake_dns: FakeDns, webhook_queue: WebhookQueue) -> None:
    """No real DNS, and deliveries are captured rather than sent."""


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    pushed: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        "helpdesk.events.send_all_to_group",
        lambda group, payloads: pushed.extend((group, p) for p in payloads),
    )
    return pushed


def test_a_batch_gets_consecutive_sequences_one_insert_and_one_push_callback(
    tenant: Tenant,
    sent: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with tenant_context(tenant):
        events.emit(tenant.pk, "conversation.updated", conversation_id=1, changed={})
        with (
            django_capture_on_commit_callbacks(execute=False) as callbacks,
            CaptureQueriesContext(connection) as queries,
        ):
            seqs = events.emit_many(
                tenant.pk,
                [
                    ("message.created", {"conversation_id": 7, "message_id": 9}),
                    ("conversation.updated", {"conversation_id": 7, "changed": {}}),
                    ("message.updated", {"conversation_id": 7, "message_id": 9}),
                ],
            )
        stored = list(Event.objects.order_by("seq").values_list("seq", "type"))
    assert seqs == [2, 3, 4]
    assert stored == [
        (1, "conversation.updated"),
        (2, "message.created"),
        (3, "conversation.updated"),
        (4, "message.updated"),
    ]
    # The sequence allocation and the INSERT in one statement; no endpoint
    # query (none exist).
    assert len(queries.captured_queries) == 1, queries.captured_queries
    assert queries.captured_queries[0]["sql"].startswith(
        "WITH s AS (INSERT INTO helpdesk_eventcounter"
    ), queries.captured_queries
    assert sent == []
    assert len(callbacks) == 1
    callbacks[0]()
    assert [(group, p["type"], p["seq"]) for group, p in sent] == [
        (f"t{tenant.pk}", "message.created", 2),
        (f"t{tenant.pk}", "conversation.updated", 3),
        (f"t{tenant.pk}", "message.updated", 4),
    ]
    assert sent[0][1] == {
        "type": "message.created",
        "seq": 2,
        "conversation_id": 7,
        "message_id": 9,
    }


def test_a_caller_allocated_range_and_store_write_no_event_statement(
    tenant: Tenant,
) -> None:
    stored: list[Event] = []
    with tenant_context(tenant):
        assert has_active_endpoints(tenant.pk) is False  # fills the cache
    with tenant_context(tenant), CaptureQueriesContext(connection) as queries:
        seqs = events.emit_many(
            tenant.pk,
            [
                ("message.created", {"message_id": 1}),
                ("conversation.created", {"conversation_id": 2}),
            ],
            first_seq=40,
            store=stored.extend,
        )
    assert seqs == [40, 41]
    assert [(e.seq, e.type, e.payload["seq"]) for e in stored] == [
        (40, "message.created", 40),
        (41, "conversation.created", 41),
    ]
    assert queries.captured_queries == []
    with tenant_context(tenant):
        assert Event.objects.count() == 0


def test_sequences_of_the_batch_are_taken_in_its_one_statement(
    tenant: Tenant,
    sent: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with tenant_context(tenant):
        events.emit(tenant.pk, "conversation.updated", conversation_id=1, changed={})
        with (
            django_capture_on_commit_callbacks(execute=False) as callbacks,
            CaptureQueriesContext(connection) as queries,
        ):
            with writebatch.write_batch() as batch:
                sequences = batch.sequences(tenant.pk, 2)
                returned = events.emit_many(
                    tenant.pk,
                    [
                        ("message.created", {"conversation_id": 7, "message_id": 9}),
                        ("conversation.updated", {"conversation_id": 7}),
                    ],
                    first_seq=sequences,
                    webhooks=False,
                )
                assert queries.captured_queries == []  # nothing sent yet
                assert sequences.first is None
            assert sequences.first == 2
        stored = list(
            Event.objects.order_by("seq").values_list("seq", "type", "payload")
        )
        ids = list(Event.objects.order_by("seq").values_list("id", flat=True))
    assert returned == []
    assert ids == sorted(ids)  # the rows are inserted in the items' order
    # The counter and the Event rows: one statement.
    assert len(queries.captured_queries) == 1, queries.captured_queries
    sql = queries.captured_queries[0]["sql"]
    assert sql.startswith("WITH s AS (INSERT INTO helpdesk_eventcounter"), sql
    assert stored == [
        (1, "conversation.updated", stored[0][2]),
        (
            2,
            "message.created",
            {
                "type": "message.created",
                "seq": 2,
                "conversation_id": 7,
                "message_id": 9,
            },
        ),
        (
            3,
            "conversation.updated",
            {"type": "conversation.updated", "seq": 3, "conversation_id": 7},
        ),
    ]
    assert sent == []  # published on commit only
    assert len(callbacks) == 1
    callbacks[0]()
    assert [p for _, p in sent] == [stored[1][2], stored[2][2]]


def test_a_batch_allocates_once_even_with_nothing_else_to_write(tenant: Tenant) -> None:
    with tenant_context(tenant), CaptureQueriesContext(connection) as queries:
        with writebatch.write_batch() as batch:
            sequences = batch.sequences(tenant.pk, 1)
            with pytest.raises(RuntimeError):
                batch.sequences(tenant.pk, 1)
        assert len(queries.captured_queries) == 1
        assert sequences.first == 1
        assert list(EventCounter.objects.values_list("value", flat=True)) == [1]


def test_an_empty_batch_does_nothing(tenant: Tenant) -> None:
    with tenant_context(tenant), CaptureQueriesContext(connection) as queries:
        assert events.emit_many(tenant.pk, []) == []
    assert queries.captured_queries == []


def test_webhooks_of_a_batch_read_the_endpoints_and_rows_once(
    tenant: Tenant,
    owner: User,
    account: SocialAccount,
    webhook_queue: WebhookQueue,
    django_capture_on_commit_callbacks: Any,
) -> None:
    endpoint = add_endpoint(tenant, owner, URL).endpoint
    first = receive(account, item(external_id="a1", text="One"))
    second = receive(account, item(external_id="a2", text="Two", thread="t2"))
    with tenant_context(tenant):
        before = WebhookDelivery.objects.count()
        with (
            django_capture_on_commit_callbacks(execute=True),
            CaptureQueriesContext(connection) as queries,
        ):
            events.emit_many(
                tenant.pk,
                [
                    (
                        "message.updated",
                        {
                            "conversation_id": result.conversation.pk,
                            "message_id": result.message.pk,
                        },
                    )
                    for result in (first, second)
                ],
            )
        new = list(WebhookDelivery.objects.order_by("id")[before:])
    sql = [q["sql"] for q in queries.captured_queries]
    assert sum('FROM "helpdesk_webhookendpoint"' in s for s in sql) == 1
    assert sum('FROM "helpdesk_message"' in s for s in sql) == 1
    assert sum('FROM "helpdesk_conversation"' in s for s in sql) == 1
    assert sum('INSERT INTO "helpdesk_webhookdelivery"' in s for s in sql) == 1
    assert [(d.endpoint_id, d.event_type) for d in new] == [
        (endpoint.pk, "message.updated"),
        (endpoint.pk, "message.updated"),
    ]
    assert [d.payload["message"]["text"] for d in new] == ["One", "Two"]
    assert [d.payload["conversation"]["id"] for d in new] == [
        first.conversation.pk,
        second.conversation.pk,
    ]
    assert new[0].event_id != new[1].event_id
    assert webhook_queue.ids() == [d.pk for d in new]


def test_known_rows_are_not_read_again(
    tenant: Tenant, owner: User, account: SocialAccount
) -> None:
    add_endpoint(tenant, owner, URL)
    result = receive(account, item(text="Known"))
    with tenant_context(tenant):
        with CaptureQueriesContext(connection) as queries:
            events.emit_many(
                tenant.pk,
                [
                    (
                        "message.updated",
                        {
                            "conversation_id": result.conversation.pk,
                            "message_id": result.message.pk,
                        },
                    )
                ],
                known=[result.message, result.conversation],
            )
        (delivery,) = WebhookDelivery.objects.filter(event_type="message.updated")
    sql = [q["sql"] for q in queries.captured_queries]
    assert not any('FROM "helpdesk_message"' in s for s in sql), sql
    assert not any('FROM "helpdesk_conversation"' in s for s in sql), sql
    assert delivery.payload["message"]["text"] == "Known"
    assert delivery.payload["conversation"]["id"] == result.conversation.pk


class _FailingLayer:
    """A network channel layer that takes `works` messages, then is unreachable."""

    def __init__(self, works: int) -> None:
        self.works = works
        self.taken: list[tuple[str, list[int]]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if len(self.taken) == self.works:
            raise redis.exceptions.ConnectionError("Connection refused")
        events = message["events"] if message["type"] == "event.batch" else []
        self.taken.append((group, [event["seq"] for event in events]))


def test_a_batch_is_pushed_in_order_and_stops_at_the_first_failure(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    layer = _FailingLayer(works=2)
    monkeypatch.setattr("helpdesk.publish.get_channel_layer", lambda: layer)
    monkeypatch.setattr(events, "PUSH_BATCH", 2)
    payloads: list[dict[str, Any]] = [
        {"type": "message.created", "seq": n} for n in (5, 6, 7, 8, 9, 10)
    ]

    with caplog.at_level(logging.WARNING, logger="helpdesk.events"):
        events.send_all_to_group("t9", payloads)

    assert layer.taken == [("t9", [5, 6]), ("t9", [7, 8])]
    refused = redis.exceptions.ConnectionError("Connection refused")
    assert [r.getMessage() for r in caplog.records] == [
        f"could not push event message.created to t9, channel layer unavailable: "
        f"{refused!r}"
    ] * 2


def test_stored_payloads_are_the_pushed_ones_with_their_seq_and_type(
    tenant: Tenant,
    sent: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    changed = {
        "preview": "it's \\ 'quoted' \"twice\" \u2013 ünïcode 🚀 {a,b}",
        "sentiment_score": -0.4215,
        "tags": ["x", "y"],
        "snoozed_until": None,
        "nested": {"ok": True, "n": 3},
    }
    with tenant_context(tenant):
        with django_capture_on_commit_callbacks(execute=True):
            events.emit_many(
                tenant.pk,
                [
                    ("message.created", {"conversation_id": 7, "message_id": 9}),
                    (
                        "conversation.updated",
                        {"conversation_id": 7, "changed": changed},
                    ),
                ],
            )
        stored = list(
            Event.objects.order_by("seq").values_list("seq", "type", "payload")
        )
    assert stored == [(p["seq"], p["type"], p) for _group, p in sent]
    assert stored[1][2] == {
        "type": "conversation.updated",
        "seq": 2,
        "conversation_id": 7,
        "changed": changed,
    }
