"""The read path's own statements: the inbox list, a conversation with its thread.

Counted as PostgreSQL sees them (tests/statements.py), and only the statements a
view sends after the request is open: those that read a care table
(`helpdesk_*`). The fixed per-request part (tenant, token, membership, BEGIN,
COMMIT) is tests/helpdesk/test_statements_per_request.py's. `?include=` returns a
conversation with its messages and notes in one request.
"""

from typing import Any

import pytest
from rest_framework.test import APIClient

from helpdesk.models import Message
from helpdesk.services.conversations import update_conversation
from helpdesk.services.inbound import InboundResult
from helpdesk.services.notes import add_note
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.api_clients import base, token_client
from tests.factories import membership_of
from tests.helpdesk.conftest import item, make_account, receive
from tests.statements import Statements, count_statements

pytestmark = pytest.mark.django_db(transaction=True)

CONTACT_NAMES = ["C0", "C1", "C2"]


def care_statements(seen: Statements) -> list[str]:
    return [sql for sql in seen.sql if '"helpdesk_' in sql]


def measured(client: APIClient, url: str) -> tuple[Any, list[str]]:
    client.get(url)  # warm caches (token, content types)
    with count_statements() as seen:
        response = client.get(url)
    return response, care_statements(seen)


@pytest.fixture
def client(tenant: Tenant, agent: User) -> APIClient:
    return token_client(tenant, agent, "read")


@pytest.fixture
def threads(tenant: Tenant, owner: User, account: SocialAccount) -> list[int]:
    """Three conversations: two tagged, one with a reply and a note."""
    made: list[InboundResult] = [
        receive(account, item(text=f"Bag {n} lost", author=f"cust-{n}", handle=f"c{n}"))
        for n in range(3)
    ]
    membership = membership_of(tenant, owner)
    with tenant_context(tenant):
        first = made[0].conversation
        update_conversation(first, membership=membership, tags=["vip", "bags"])
        update_conversation(made[1].conversation, membership=membership, tags=["bags"])
        add_note(first, membership=membership, text="Call the airport.")
    return [result.conversation.pk for result in made]


def test_the_list_is_one_statement_with_contacts_and_tags(
    client: APIClient, tenant: Tenant, threads: list[int]
) -> None:
    response, own = measured(client, f"{base(tenant)}/conversations/?status=open")

    assert response.status_code == 200
    rows = {row["id"]: row for row in response.json()["results"]}
    assert sorted(rows) == sorted(threads)
    assert rows[threads[0]]["tags"] == ["bags", "vip"]
    assert rows[threads[1]]["tags"] == ["bags"]
    assert rows[threads[2]]["tags"] == []
    assert [rows[pk]["contact"]["name"] for pk in threads] == CONTACT_NAMES
    assert len(own) == 1, own
    assert '"helpdesk_contact"' in own[0]
    assert '"helpdesk_conversationtag"' in own[0]


def test_a_later_page_is_one_statement_too(
    client: APIClient, tenant: Tenant, threads: list[int]
) -> None:
    first = client.get(f"{base(tenant)}/conversations/?page_size=2").json()

    response, own = measured(client, first["next"])

    assert response.status_code == 200
    assert len(own) == 1, own
    seen = [row["id"] for row in first["results"] + response.json()["results"]]
    assert sorted(seen) == sorted(threads)


def test_the_detail_alone_is_one_statement(
    client: APIClient, tenant: Tenant, threads: list[int]
) -> None:
    response, own = measured(client, f"{base(tenant)}/conversations/{threads[0]}/")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == threads[0]
    assert body["tags"] == ["bags", "vip"]
    assert "messages" not in body
    assert "notes" not in body
    assert len(own) == 1, own


def test_include_messages_adds_one_statement_and_the_thread(
    client: APIClient, tenant: Tenant, threads: list[int]
) -> None:
    url = f"{base(tenant)}/conversations/{threads[0]}/"
    thread = client.get(f"{url}messages/").json()
    plain = client.get(url).json()

    response, own = measured(client, f"{url}?include=messages")

    assert response.status_code == 200
    body = response.json()
    assert body["messages"] == thread
    assert [m["direction"] for m in body["messages"]] == ["in"]
    assert body["messages"][0]["author"]["type"] == "customer"
    assert {k: v for k, v in body.items() if k != "messages"} == plain
    assert len(own) == 2, own


def test_include_messages_and_notes_is_three_statements(
    client: APIClient, tenant: Tenant, threads: list[int]
) -> None:
    url = f"{base(tenant)}/conversations/{threads[0]}/"
    notes = client.get(f"{url}notes/").json()

    response, own = measured(client, f"{url}?include=messages,notes")

    assert response.status_code == 200
    body = response.json()
    assert body["notes"] == notes
    assert [note["text"] for note in body["notes"]] == ["Call the airport."]
    assert len(body["messages"]) == 1
    assert len(own) == 3, own


def test_the_thread_endpoint_is_two_statements(
    client: APIClient, tenant: Tenant, threads: list[int]
) -> None:
    url = f"{base(tenant)}/conversations/{threads[0]}/messages/"

    response, own = measured(client, url)

    assert response.status_code == 200
    assert [m["text"] for m in response.json()] == ["Bag 0 lost"]
    assert len(own) == 2, own


@pytest.mark.parametrize(
    ("include", "message"),
    [
        ("attachments", "Unknown: attachments. Choose from: messages, notes."),
        ("messages,events", "Unknown: events. Choose from: messages, notes."),
        ("x" * 101, "Ensure this field has no more than 100 characters."),
    ],
)
def test_an_unknown_include_is_a_400_on_the_field(
    client: APIClient, tenant: Tenant, threads: list[int], include: str, message: str
) -> None:
    url = f"{base(tenant)}/conversations/{threads[0]}/?include={include}"

    response = client.get(url)

    assert response.status_code == 400
    assert response.json()["fields"] == {"include": [message]}


def test_include_of_another_workspaces_conversation_is_a_404(
    client: APIClient, tenant: Tenant, other_tenant: Tenant, outsider: User
) -> None:
    foreign = receive(make_account(other_tenant), item(text="Theirs"))
    url = f"{base(tenant)}/conversations/{foreign.conversation.pk}/"

    response = client.get(f"{url}?include=messages,notes")

    assert response.status_code == 404
    assert b"Theirs" not in response.content
    with tenant_context(other_tenant):
        assert Message.objects.count() == 1


def test_an_outsiders_token_gets_a_404_with_include(
    tenant: Tenant, other_tenant: Tenant, outsider: User, threads: list[int]
) -> None:
    stranger = token_client(other_tenant, outsider, "admin")
    url = f"{base(tenant)}/conversations/{threads[0]}/?include=messages"

    response = stranger.get(url)

    assert response.status_code == 404
    assert b"Bag 0 lost" not in response.content
