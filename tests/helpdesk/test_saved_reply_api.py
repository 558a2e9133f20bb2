"""Saved replies over the REST API: agents use them, admins manage them.

Denials also assert that nothing changed.
"""

from typing import Any

import pytest

from helpdesk.models import Conversation, SavedReply
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.api_clients import (
    FOREIGN_CALLERS,
    base,
    foreign_client,
    session,
    token_client,
)
from tests.factories import make_brand
from tests.helpdesk.conftest import item, make_account, receive

pytestmark = pytest.mark.django_db(transaction=True)


def first_brand(tenant: Tenant) -> Brand:
    with tenant_context(tenant):
        return Brand.objects.order_by("id")[0]


def add_reply(tenant: Tenant, title: str, body: str, brand: Brand | None) -> int:
    with tenant_context(tenant):
        return SavedReply.objects.create(title=title, body=body, brand=brand).pk


def replies(tenant: Tenant) -> list[tuple[str, str, int | None]]:
    with tenant_context(tenant):
        return sorted(
            SavedReply.objects.values_list("title", "body", "brand_id"),
            key=repr,
        )


@pytest.fixture
def cargo(tenant: Tenant) -> Brand:
    return make_brand(tenant, "Cargo")


@pytest.fixture
def library(tenant: Tenant, cargo: Brand) -> dict[str, int]:
    acme = first_brand(tenant)
    return {
        "shared": add_reply(tenant, "Thanks", "Thanks {first_name}!", None),
        "acme": add_reply(
            tenant, "Delay", "Sorry about the delay, {first_name}.", acme
        ),
        "cargo": add_reply(tenant, "Customs", "Your parcel is in customs.", cargo),
    }


@pytest.fixture
def conversation(account: SocialAccount) -> Conversation:
    return receive(account, item(handle="jo bloggs")).conversation


@pytest.fixture
def globex_brand(other_tenant: Tenant) -> Brand:
    return first_brand(other_tenant)


# --- reading ------------------------------------------------------------------------


def test_members_list_saved_replies_by_title(
    tenant: Tenant, viewer: User, library: dict[str, int]
) -> None:
    response = token_client(tenant, viewer, "read").get(
        f"{base(tenant)}/saved-replies/"
    )
    assert response.status_code == 200
    body = response.json()
    assert [row["title"] for row in body] == ["Customs", "Delay", "Thanks"]
    shared = body[2]
    assert {k: v for k, v in shared.items() if k != "created_at"} == {
        "id": library["shared"],
        "title": "Thanks",
        "body": "Thanks {first_name}!",
        "brand": None,
    }
    assert body[0]["brand"]["name"] == "Cargo"


def test_the_brand_filter_keeps_its_own_and_shared_replies(
    tenant: Tenant, agent: User, library: dict[str, int], cargo: Brand
) -> None:
    response = session(agent).get(f"{base(tenant)}/saved-replies/?brand={cargo.pk}")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()] == [
        library["cargo"],
        library["shared"],
    ]


def test_a_saved_reply_is_read_by_id(
    tenant: Tenant, agent: User, library: dict[str, int]
) -> None:
    response = session(agent).get(f"{base(tenant)}/saved-replies/{library['acme']}/")
    assert response.status_code == 200
    assert response.json()["title"] == "Delay"
    assert response.json()["brand"]["name"] == "Acme Air"


# --- managing -------------------------------------------------------------------------


def test_an_admin_adds_brand_and_shared_replies(
    tenant: Tenant, admin: User, cargo: Brand
) -> None:
    client = token_client(tenant, admin, "write")
    url = f"{base(tenant)}/saved-replies/"
    branded = client.post(
        url,
        {"title": " Refund ", "body": "Refunds take 5 days.", "brand_id": cargo.pk},
        format="json",
    )
    shared = client.post(
        url, {"title": "Hello", "body": "Hi {first_name}"}, format="json"
    )

    assert branded.status_code == 201, branded.json()
    assert branded.json()["brand"] == {"id": cargo.pk, "name": "Cargo"}
    assert shared.status_code == 201
    assert shared.json()["brand"] is None
    assert replies(tenant) == [
        ("Hello", "Hi {first_name}", None),
        ("Refund", "Refunds take 5 days.", cargo.pk),
    ]


def test_an_admin_edits_and_deletes_a_saved_reply(
    tenant: Tenant, admin: User, library: dict[str, int], cargo: Brand
) -> None:
    client = session(admin)
    url = f"{base(tenant)}/saved-replies/{library['acme']}/"
    edited = client.patch(url, {"title": "Delays", "brand_id": None}, format="json")
    assert edited.status_code == 200, edited.json()
    assert (edited.json()["title"], edited.json()["brand"]) == ("Delays", None)
    moved = client.patch(url, {"brand_id": cargo.pk}, format="json")
    assert moved.json()["brand"]["id"] == cargo.pk
    assert moved.json()["body"] == "Sorry about the delay, {first_name}."

    deleted = client.delete(url)
    assert deleted.status_code == 204
    assert client.get(url).status_code == 404
    assert [title for title, _, _ in replies(tenant)] == ["Customs", "Thanks"]


@pytest.mark.parametrize("persona", ["agent", "viewer"])
def test_agents_and_viewers_cannot_manage_saved_replies(
    tenant: Tenant,
    library: dict[str, int],
    persona: str,
    request: pytest.FixtureRequest,
) -> None:
    before = replies(tenant)
    client = session(request.getfixturevalue(persona))
    url = f"{base(tenant)}/saved-replies/"
    for method, path, payload in (
        ("post", url, {"title": "x", "body": "y"}),
        ("patch", f"{url}{library['acme']}/", {"title": "x"}),
        ("delete", f"{url}{library['acme']}/", None),
    ):
        response = getattr(client, method)(path, payload, format="json")
        assert response.status_code == 403, (method, path)
        assert response.json()["code"] == "permission_denied"
    assert replies(tenant) == before


def test_a_read_token_cannot_manage_saved_replies(
    tenant: Tenant, admin: User, library: dict[str, int]
) -> None:
    before = replies(tenant)
    client = token_client(tenant, admin, "read")
    url = f"{base(tenant)}/saved-replies/"
    for method, path, payload in (
        ("post", url, {"title": "x", "body": "y"}),
        ("patch", f"{url}{library['acme']}/", {"title": "x"}),
        ("delete", f"{url}{library['acme']}/", None),
    ):
        response = getattr(client, method)(path, payload, format="json")
        assert response.status_code == 403
        assert response.json()["code"] == "scope_missing"
    assert replies(tenant) == before


def test_another_workspaces_brand_is_a_field_error(
    tenant: Tenant,
    admin: User,
    library: dict[str, int],
    globex_brand: Brand,
    other_tenant: Tenant,
) -> None:
    before = (replies(tenant), replies(other_tenant))
    client = session(admin)
    created = client.post(
        f"{base(tenant)}/saved-replies/",
        {"title": "x", "body": "y", "brand_id": globex_brand.pk},
        format="json",
    )
    edited = client.patch(
        f"{base(tenant)}/saved-replies/{library['acme']}/",
        {"brand_id": globex_brand.pk},
        format="json",
    )
    for response in (created, edited):
        assert response.status_code == 400
        assert response.json()["fields"] == {
            "brand_id": ["No such brand in this workspace."]
        }
        assert b"Globex" not in response.content
    assert (replies(tenant), replies(other_tenant)) == before


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"body": "y"}, "title"),
        ({"title": "   ", "body": "y"}, "title"),
        ({"title": "x" * 121, "body": "y"}, "title"),
        ({"title": "x"}, "body"),
        ({"title": "x", "body": "y" * 5001}, "body"),
        ({"title": "x", "body": "y", "brand_id": "abc"}, "brand_id"),
        ({"title": "x", "body": "y", "brand_id": 0}, "brand_id"),
        ({"title": "x", "body": "y", "brand_id": 10**12}, "brand_id"),
        ({"title": "x\x00", "body": "y"}, "title"),
    ],
)
def test_bad_saved_reply_input_names_the_field(
    tenant: Tenant, admin: User, payload: dict[str, Any], field: str
) -> None:
    response = session(admin).post(
        f"{base(tenant)}/saved-replies/", payload, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    assert replies(tenant) == []


def test_bad_filter_and_edit_input_name_the_field(
    tenant: Tenant, admin: User, library: dict[str, int]
) -> None:
    before = replies(tenant)
    client = session(admin)
    listed = client.get(f"{base(tenant)}/saved-replies/?brand=x")
    assert (listed.status_code, list(listed.json()["fields"])) == (400, ["brand"])
    url = f"{base(tenant)}/saved-replies/{library['acme']}/"
    for payload, field in (({"title": ""}, "title"), ({"body": ["x"]}, "body")):
        response = client.patch(url, payload, format="json")
        assert response.status_code == 400, payload
        assert list(response.json()["fields"]) == [field], payload
    assert replies(tenant) == before


# --- render ---------------------------------------------------------------------------


def test_render_fills_the_placeholders(
    tenant: Tenant, agent: User, conversation: Conversation
) -> None:
    reply = add_reply(
        tenant,
        "Intro",
        "Hi {first_name}, {agent_name} of {brand_name} here. {unknown} stays.",
        first_brand(tenant),
    )
    response = token_client(tenant, agent, "read").get(
        f"{base(tenant)}/saved-replies/{reply}/render/",
        {"conversation": conversation.pk},
    )
    assert response.status_code == 200
    assert response.json() == {
        "saved_reply_id": reply,
        "conversation_id": conversation.pk,
        "text": "Hi Jo, Andy of Acme Air here. {unknown} stays.",
    }


def test_render_input_errors_name_the_conversation(
    tenant: Tenant,
    agent: User,
    other_tenant: Tenant,
    library: dict[str, int],
    conversation: Conversation,
) -> None:
    globex = receive(make_account(other_tenant, handle="g"), item()).conversation
    client = session(agent)
    for reply, query, message in (
        (library["shared"], "", "This field is required."),
        (library["shared"], "?conversation=abc", "A valid integer is required."),
        (
            library["shared"],
            f"?conversation={globex.pk}",
            "No such conversation in this workspace.",
        ),
        (
            library["cargo"],
            f"?conversation={conversation.pk}",
            "This saved reply belongs to another brand than the conversation's.",
        ),
    ):
        response = client.get(f"{base(tenant)}/saved-replies/{reply}/render/{query}")
        assert response.status_code == 400, query
        assert response.json()["fields"] == {"conversation": [message]}, query
        assert b"Globex" not in response.content


# --- tenancy --------------------------------------------------------------------------


def _calls(tenant: Tenant, reply: int, conversation: int) -> list[Any]:
    url = f"{base(tenant)}/saved-replies/"
    return [
        ("get", url, None),
        ("post", url, {"title": "x", "body": "y"}),
        ("get", f"{url}{reply}/", None),
        ("patch", f"{url}{reply}/", {"title": "x"}),
        ("delete", f"{url}{reply}/", None),
        ("get", f"{url}{reply}/render/?conversation={conversation}", None),
    ]


@pytest.mark.parametrize("caller", FOREIGN_CALLERS)
def test_another_workspaces_callers_get_404_and_change_nothing(
    tenant: Tenant,
    outsider: User,
    other_tenant: Tenant,
    library: dict[str, int],
    conversation: Conversation,
    caller: str,
) -> None:
    before = replies(tenant)
    client = foreign_client(caller, other_tenant, outsider)
    for method, path, payload in _calls(tenant, library["acme"], conversation.pk):
        response = getattr(client, method)(path, payload, format="json")
        assert response.status_code == 404, (method, path)
        assert b"Acme" not in response.content
    assert replies(tenant) == before


def test_another_workspaces_saved_reply_id_is_404(
    tenant: Tenant,
    admin: User,
    other_tenant: Tenant,
    globex_brand: Brand,
    conversation: Conversation,
) -> None:
    theirs = add_reply(other_tenant, "Globex hello", "Hi", globex_brand)
    before = replies(other_tenant)
    client = token_client(tenant, admin, "write")
    for method, path, payload in _calls(tenant, theirs, conversation.pk)[2:]:
        response = getattr(client, method)(path, payload, format="json")
        assert response.status_code == 404, (method, path)
        assert b"Globex" not in response.content
    assert replies(other_tenant) == before
