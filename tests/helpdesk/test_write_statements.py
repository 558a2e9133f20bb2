"""The write paths' own statements (issue 12): what an API-channel push and an
agent's reply send besides the request's fixed part (tenant, token, membership,
BEGIN, COMMIT), with and without an outbound webhook endpoint, named one by one.

Create (new author): the account with its brand's SLA policy and holidays, and
the replay and author lookup, in one statement; the new contact and identity with
the new conversation's id (a new contact has no conversation to look for) and
the message, in one statement; the sequences and the rest in one statement. A
known author's push looks for its conversation (locked) or a new id, with the
message, instead of the identity insert. A
reply: the conversation (locked, with the brand's holidays and the message's new
id); the sequences, the message and the rest in one statement, the last before
COMMIT. An endpoint adds one
INSERT of the deliveries for all the request's events (the endpoints are cached).
"""

import re
from typing import Any
from uuid import uuid4

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from helpdesk.models import CareFact, Conversation, Event, Message, WebhookDelivery
from helpdesk.services import webhook_outbox
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.api_clients import base, open_api_channel, push, token_client
from tests.helpdesk.webhook_support import (  # noqa: F401 - fixtures
    FakeDns,
    WebhookQueue,
    add_endpoint,
    fake_dns_fixture,
    webhook_queue_fixture,
)
from tests.statements import Statements, count_statements

pytestmark = pytest.mark.django_db(transaction=True)

FIXED = re.compile(
    r"^(BEGIN|COMMIT|SET LOCAL|SELECT set_config)|tenants_apitoken|tenant_row"
    r'|FROM "tenants_tenant"|FROM "tenants_membership"'
)


@pytest.fixture(autouse=True)
def _fixtures(
    fake_dns: FakeDns, webhook_queue: WebhookQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No real DNS, deliveries are captured rather than sent, and the endpoint
    cache is this test's own (other test databases share Redis and tenant ids)."""
    prefix = uuid4().hex
    monkeypatch.setattr(
        webhook_outbox, "_cache_key", lambda tenant_id: f"{prefix}.t{tenant_id}"
    )


@pytest.fixture
def channel(tenant: Tenant, owner: User) -> SocialAccount:
    return open_api_channel(tenant, owner)


@pytest.fixture
def client(tenant: Tenant, owner: User) -> APIClient:
    return token_client(tenant, owner, "admin")


def own(seen: Statements) -> list[str]:
    """The statements besides the request's fixed part, shortened for messages."""
    return [sql[:90] for sql in seen.sql if not FIXED.search(sql)]


def deliveries(sql: list[str]) -> int:
    return sum(s.startswith('INSERT INTO "helpdesk_webhookdelivery"') for s in sql)


def measured(call: Any) -> tuple[Any, list[str]]:
    with count_statements() as seen:
        response = call()
    return response, own(seen)


def reply(client: APIClient, tenant: Tenant, conversation: int, text: str) -> Any:
    return client.post(
        f"{base(tenant)}/conversations/{conversation}/messages/",
        {"text": text},
        format="json",
    )


def test_create_new_author_known_author_and_replay(
    client: APIClient, tenant: Tenant, channel: SocialAccount
) -> None:
    assert push(client, tenant, channel, 0, author=0).status_code == 201  # warm
    new, new_sql = measured(lambda: push(client, tenant, channel, 1, author=1))
    known, known_sql = measured(lambda: push(client, tenant, channel, 2, author=1))
    again, again_sql = measured(lambda: push(client, tenant, channel, 2, author=1))
    assert new.status_code == 201, new.content
    assert known.status_code == 201, known.content
    assert again.status_code == 200, again.content
    assert len(new_sql) == 3, new_sql
    assert new_sql[1].startswith("WITH c AS (INSERT INTO helpdesk_contact")
    assert new_sql[2].startswith("WITH s AS (INSERT INTO helpdesk_eventcounter")
    assert len(known_sql) == 3, known_sql
    assert known_sql[1].startswith("WITH f AS (SELECT c.id, c.tenant_id"), known_sql
    # The replay: the account with the lookup that finds it, and the stored
    # message.
    assert len(again_sql) == 2, again_sql
    assert known.json()["conversation_id"] == new.json()["conversation_id"]
    assert again.json() == {**known.json(), "created": False}
    with tenant_context(tenant):
        conversation = Conversation.objects.get(pk=new.json()["conversation_id"])
        assert conversation.customer_message_count == 2
        assert Message.objects.filter(conversation=conversation).count() == 2
        assert CareFact.objects.filter(conversation=conversation).count() == 1
        assert list(Event.objects.order_by("seq").values_list("seq", "type")) == [
            (1, "message.created"),
            (2, "conversation.created"),
            (3, "message.created"),
            (4, "conversation.created"),
            (5, "message.created"),
            (6, "conversation.updated"),
        ]


def test_reply_statements(
    client: APIClient, tenant: Tenant, channel: SocialAccount
) -> None:
    first = push(client, tenant, channel, 0, author=0).json()["conversation_id"]
    second = push(client, tenant, channel, 1, author=1).json()["conversation_id"]
    assert reply(client, tenant, first, "Hi, on it.").status_code == 201
    with count_statements() as seen:
        response = reply(client, tenant, second, "Checking now.")
    assert response.status_code == 201, response.content
    sql = [statement for statement in seen.sql if not FIXED.search(statement)]
    # The view's gate, the reply's row lock, rides in the token's opening
    # statement (helpdesk.access, tenants.opening.Lateral); then the service's
    # last statement.
    assert len(sql) == 1, own(seen)
    [opening] = [statement for statement in seen.sql if "tenant_row" in statement]
    assert 'FOR UPDATE OF "helpdesk_conversation"' in opening
    with tenant_context(tenant):
        conversation = Conversation.objects.get(pk=second)
        assert conversation.first_response_at is not None
        assert conversation.sla_kind == ""
        assert list(
            CareFact.objects.filter(conversation=conversation).values_list(
                "kind", flat=True
            )
        ) == ["opened", "first_response"]


def test_an_outbound_endpoint_adds_one_insert_per_request(
    client: APIClient,
    tenant: Tenant,
    owner: User,
    channel: SocialAccount,
    webhook_queue: WebhookQueue,
) -> None:
    add_endpoint(tenant, owner, "https://hooks.example.com/earshot")
    cache.delete(webhook_outbox._cache_key(tenant.pk))  # its 10 s stale window ends
    first = push(client, tenant, channel, 0, author=0)  # warm: caches the endpoints
    created, create_sql = measured(lambda: push(client, tenant, channel, 1, author=1))
    conversation = created.json()["conversation_id"]
    assert (
        reply(client, tenant, first.json()["conversation_id"], "Hi").status_code == 201
    )
    replied, reply_sql = measured(lambda: reply(client, tenant, conversation, "On it"))
    assert created.status_code == 201, created.content
    assert replied.status_code == 201, replied.content
    assert len(create_sql) == 3 + 1, create_sql
    assert deliveries(create_sql) == 1
    assert len(reply_sql) == 1 + 1, reply_sql
    assert deliveries(reply_sql) == 1
    assert not any("helpdesk_webhookendpoint" in sql for sql in create_sql + reply_sql)
    with tenant_context(tenant):
        rows = list(
            WebhookDelivery.objects.filter(
                payload__conversation_id=conversation
            ).order_by("id")
        )
    assert [d.event_type for d in rows] == [
        "message.created",
        "conversation.created",
        "message.created",
        "conversation.updated",
    ]
    assert [
        d.payload["message"]["direction"] for d in rows if "message" in d.payload
    ] == [
        "in",
        "out",
    ]
    assert all(d.payload["conversation"]["id"] == conversation for d in rows)
    assert len(webhook_queue.ids()) == 8


def test_a_reply_takes_the_event_counter_in_its_last_statement(
    client: APIClient, tenant: Tenant, channel: SocialAccount
) -> None:
    first = push(client, tenant, channel, 0, author=0).json()["conversation_id"]
    second = push(client, tenant, channel, 1, author=1).json()["conversation_id"]
    assert reply(client, tenant, first, "Hi, on it.").status_code == 201
    with count_statements() as seen:
        response = reply(client, tenant, second, "Checking now.")
    assert response.status_code == 201, response.content
    counter = [n for n, sql in enumerate(seen.sql) if "helpdesk_eventcounter" in sql]
    # The counter, the message, its events and the rest: then COMMIT.
    assert counter == [len(seen) - 2], seen.listing()
    assert 'INSERT INTO "helpdesk_message"' in seen.sql[-2], seen.listing()
    assert 'INSERT INTO "helpdesk_event"' in seen.sql[-2], seen.listing()
    assert seen.sql[-1] == "COMMIT", seen.listing()
    body = response.json()
    with tenant_context(tenant):
        message = Message.objects.get(pk=body["id"])
        events = list(
            Event.objects.filter(seq__gte=message.seq)
            .order_by("seq")
            .values_list("seq", "type", "payload")
        )
    assert message.seq == 7  # after two pushes (1-4) and one reply (5-6)
    assert [(seq, type) for seq, type, _ in events] == [
        (7, "message.created"),
        (8, "conversation.updated"),
    ]
    assert events[0][2]["seq"] == 7
    assert events[0][2]["message_id"] == message.pk
    assert events[0][2]["conversation_id"] == second
    assert events[1][2]["seq"] == 8
    assert events[1][2]["conversation_id"] == second
