"""Contacts over the REST API: the directory, one contact, corrections, merges.

Denials also assert that nothing changed.
"""

from typing import Any

import pytest

from helpdesk.models import Contact, Conversation, Identity
from social.models import SocialAccount
from tenants.context import tenant_context
from tenants.models import Tenant, User
from tests.api_clients import (
    FOREIGN_CALLERS,
    base,
    foreign_client,
    session,
    token_client,
)
from tests.helpdesk.conftest import item, make_account, receive

pytestmark = pytest.mark.django_db(transaction=True)


def customer(account: SocialAccount, **kwargs: Any) -> Contact:
    """The contact behind a customer's post to `account`."""
    conversation = receive(account, item(**kwargs)).conversation
    with tenant_context(account.tenant_id):
        return Contact.objects.get(pk=conversation.contact_id)


@pytest.fixture
def jo(account: SocialAccount) -> Contact:
    return customer(account, author="cust-jo", handle="jo")


@pytest.fixture
def sam(account: SocialAccount) -> Contact:
    return customer(account, author="cust-sam", handle="sam_k", text="Refund please")


@pytest.fixture
def globex_contact(other_tenant: Tenant) -> Contact:
    return customer(make_account(other_tenant, handle="g"), author="g", handle="gina")


def contact_row(tenant: Tenant, pk: int) -> tuple[Any, ...]:
    with tenant_context(tenant):
        return Contact.objects.filter(pk=pk).values_list(
            "display_name", "email", "notes", "external_crm_id", "merged_into_id"
        )[0]


def owners_of(tenant: Tenant) -> dict[str, list[int]]:
    """Which contact each identity and conversation belongs to."""
    with tenant_context(tenant):
        return {
            "identities": sorted(Identity.objects.values_list("contact_id", flat=True)),
            "conversations": sorted(
                Conversation.objects.values_list("contact_id", flat=True)
            ),
        }


# --- list -----------------------------------------------------------------------


def test_the_directory_lists_contacts_newest_first(
    tenant: Tenant, agent: User, jo: Contact, sam: Contact, globex_contact: Contact
) -> None:
    response = token_client(tenant, agent, "read").get(f"{base(tenant)}/contacts/")

    assert response.status_code == 200
    body = response.json()
    assert [row["id"] for row in body["results"]] == [sam.pk, jo.pk]
    assert body["next"] is None
    row = body["results"][0]
    assert {k: v for k, v in row.items() if k not in {"created_at", "identities"}} == {
        "id": sam.pk,
        "display_name": "Sam_K",
        "email": "",
        "external_crm_id": "",
        "merged_into_id": None,
    }
    assert [(i["platform"], i["handle"]) for i in row["identities"]] == [
        ("sandbox", "sam_k")
    ]


@pytest.mark.parametrize(("query", "expected"), [("@sam", "sam"), ("jo", "jo")])
def test_search_matches_names_and_handles(
    tenant: Tenant,
    agent: User,
    jo: Contact,
    sam: Contact,
    query: str,
    expected: str,
) -> None:
    response = session(agent).get(f"{base(tenant)}/contacts/", {"q": query})
    assert response.status_code == 200
    wanted = {"jo": jo.pk, "sam": sam.pk}[expected]
    assert [row["id"] for row in response.json()["results"]] == [wanted]


def test_the_cursor_walks_every_page_once(
    tenant: Tenant, agent: User, account: SocialAccount
) -> None:
    made = [
        receive(account, item(author=f"c{n}", handle=f"c{n}")).conversation.contact_id
        for n in range(5)
    ]
    client = session(agent)
    url: str | None = f"{base(tenant)}/contacts/?page_size=2"
    seen: list[int] = []
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += [row["id"] for row in response.json()["results"]]
        url = response.json()["next"]
        pages += 1
    assert pages == 3
    assert seen == sorted(made, reverse=True)


def test_merged_contacts_are_listed_only_when_asked(
    tenant: Tenant, agent: User, jo: Contact, sam: Contact
) -> None:
    client = session(agent)
    merged = client.post(
        f"{base(tenant)}/contacts/{jo.pk}/merge/", {"other_id": sam.pk}, format="json"
    )
    assert merged.status_code == 200
    default = client.get(f"{base(tenant)}/contacts/").json()["results"]
    everyone = client.get(f"{base(tenant)}/contacts/?include_merged=true").json()
    assert [row["id"] for row in default] == [jo.pk]
    assert [(r["id"], r["merged_into_id"]) for r in everyone["results"]] == [
        (sam.pk, jo.pk),
        (jo.pk, None),
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("cursor=abc", "cursor"),
        ("cursor=0", "cursor"),
        ("page_size=0", "page_size"),
        ("page_size=101", "page_size"),
        ("include_merged=perhaps", "include_merged"),
        (f"q={'x' * 201}", "q"),
        ("q=%00", "q"),
    ],
)
def test_bad_list_parameters_name_the_field(
    tenant: Tenant, agent: User, query: str, field: str
) -> None:
    response = session(agent).get(f"{base(tenant)}/contacts/?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert list(body["fields"]) == [field]


# --- retrieve and correct ---------------------------------------------------------


def test_a_contact_shows_identities_and_conversations(
    tenant: Tenant, agent: User, account: SocialAccount, jo: Contact
) -> None:
    later = receive(
        account, item(author="cust-jo", handle="jo", text="Still waiting", thread="t2")
    ).conversation
    response = token_client(tenant, agent, "read").get(
        f"{base(tenant)}/contacts/{jo.pk}/"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["display_name"] == "Jo"
    assert body["notes"] == ""
    assert [
        {k: i[k] for k in ("platform", "handle", "display_name", "followers")}
        for i in body["identities"]
    ] == [
        {"platform": "sandbox", "handle": "jo", "display_name": "Jo", "followers": 50}
    ]
    assert body["identities"][0]["profile_url"] == ""
    with tenant_context(tenant):
        ids = list(
            Conversation.objects.filter(contact=jo)
            .order_by("-last_activity_at", "-id")
            .values_list("id", flat=True)
        )
    assert later.pk in ids
    assert [c["id"] for c in body["conversations"]] == ids
    first = body["conversations"][0]
    assert first["brand"]["name"] == "Acme Air"
    assert first["status"] == "open"
    assert first["platform"] == "sandbox"
    assert first["last_activity_at"]


def test_an_agent_corrects_a_contact(tenant: Tenant, agent: User, jo: Contact) -> None:
    response = session(agent).patch(
        f"{base(tenant)}/contacts/{jo.pk}/",
        {
            "display_name": "Jo Bloggs",
            "email": "jo@example.com",
            "notes": "Flies weekly",
            "external_crm_id": "CRM-42",
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["display_name"] == "Jo Bloggs"
    assert contact_row(tenant, jo.pk) == (
        "Jo Bloggs",
        "jo@example.com",
        "Flies weekly",
        "CRM-42",
        None,
    )


def test_a_partial_correction_leaves_the_rest(
    tenant: Tenant, agent: User, jo: Contact
) -> None:
    response = session(agent).patch(
        f"{base(tenant)}/contacts/{jo.pk}/", {"notes": "VIP"}, format="json"
    )
    assert response.status_code == 200
    assert contact_row(tenant, jo.pk) == ("Jo", "", "VIP", "", None)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"display_name": "x" * 201}, "display_name"),
        ({"external_crm_id": "x" * 129}, "external_crm_id"),
        ({"notes": ["a", "list"]}, "notes"),
        ({"display_name": "nul\x00byte"}, "display_name"),
    ],
)
def test_bad_contact_fields_are_field_messages(
    tenant: Tenant, agent: User, jo: Contact, payload: dict[str, Any], field: str
) -> None:
    before = contact_row(tenant, jo.pk)
    response = session(agent).patch(
        f"{base(tenant)}/contacts/{jo.pk}/", payload, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    assert response.json()["fields"][field][0]
    assert contact_row(tenant, jo.pk) == before


def test_a_viewer_cannot_correct_a_contact(
    tenant: Tenant, viewer: User, jo: Contact
) -> None:
    response = session(viewer).patch(
        f"{base(tenant)}/contacts/{jo.pk}/", {"notes": "x"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert contact_row(tenant, jo.pk) == ("Jo", "", "", "", None)


def test_a_read_token_cannot_correct_a_contact(
    tenant: Tenant, agent: User, jo: Contact
) -> None:
    response = token_client(tenant, agent, "read").patch(
        f"{base(tenant)}/contacts/{jo.pk}/", {"notes": "x"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "scope_missing"
    assert contact_row(tenant, jo.pk) == ("Jo", "", "", "", None)


# --- merge --------------------------------------------------------------------------


def test_merge_moves_identities_and_conversations(
    tenant: Tenant, agent: User, jo: Contact, sam: Contact
) -> None:
    with tenant_context(tenant):
        Contact.objects.filter(pk=sam.pk).update(email="sam@example.com")
    response = token_client(tenant, agent, "write").post(
        f"{base(tenant)}/contacts/{jo.pk}/merge/", {"other_id": sam.pk}, format="json"
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["id"] == jo.pk
    assert body["email"] == "sam@example.com"
    assert sorted(i["handle"] for i in body["identities"]) == ["jo", "sam_k"]
    assert len(body["conversations"]) == 2
    assert owners_of(tenant) == {
        "identities": [jo.pk] * 2,
        "conversations": [jo.pk] * 2,
    }
    assert contact_row(tenant, sam.pk)[-1] == jo.pk


def test_merge_input_errors_name_other_id(
    tenant: Tenant, agent: User, jo: Contact, sam: Contact, account: SocialAccount
) -> None:
    third = customer(account, author="cust-3", handle="al")
    client = session(agent)
    assert (
        client.post(
            f"{base(tenant)}/contacts/{third.pk}/merge/",
            {"other_id": sam.pk},
            format="json",
        ).status_code
        == 200
    )
    before = owners_of(tenant)
    url = f"{base(tenant)}/contacts/{jo.pk}/merge/"
    for payload, message in (
        ({}, "This field is required."),
        ({"other_id": "abc"}, "A valid integer is required."),
        ({"other_id": 0}, "Ensure this value is greater than or equal to 1."),
        ({"other_id": 10**12}, "No such contact in this workspace."),
        ({"other_id": jo.pk}, "A contact cannot be merged into itself."),
        (
            {"other_id": sam.pk},
            f"Contact {sam.pk} was already merged into contact {third.pk}.",
        ),
    ):
        response = client.post(url, payload, format="json")
        assert response.status_code == 400, payload
        assert response.json()["fields"] == {"other_id": [message]}, payload
    into_merged = client.post(
        f"{base(tenant)}/contacts/{sam.pk}/merge/", {"other_id": jo.pk}, format="json"
    )
    assert into_merged.status_code == 400
    assert into_merged.json()["message"] == (
        f"This contact was merged into contact {third.pk}; merge into that one."
    )
    assert owners_of(tenant) == before


def test_another_workspaces_contact_cannot_be_merged_in(
    tenant: Tenant,
    other_tenant: Tenant,
    agent: User,
    jo: Contact,
    globex_contact: Contact,
) -> None:
    before = (owners_of(tenant), owners_of(other_tenant))
    response = session(agent).post(
        f"{base(tenant)}/contacts/{jo.pk}/merge/",
        {"other_id": globex_contact.pk},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "other_id": ["No such contact in this workspace."]
    }
    assert b"Globex" not in response.content
    assert (owners_of(tenant), owners_of(other_tenant)) == before
    assert contact_row(other_tenant, globex_contact.pk)[-1] is None


def test_a_viewer_cannot_merge(
    tenant: Tenant, viewer: User, jo: Contact, sam: Contact
) -> None:
    before = owners_of(tenant)
    response = session(viewer).post(
        f"{base(tenant)}/contacts/{jo.pk}/merge/", {"other_id": sam.pk}, format="json"
    )
    assert response.status_code == 403
    assert owners_of(tenant) == before


# --- tenancy ------------------------------------------------------------------------


@pytest.mark.parametrize("caller", FOREIGN_CALLERS)
def test_another_workspaces_callers_get_404_and_change_nothing(
    tenant: Tenant,
    outsider: User,
    other_tenant: Tenant,
    jo: Contact,
    sam: Contact,
    caller: str,
) -> None:
    before = (owners_of(tenant), contact_row(tenant, jo.pk))
    client = foreign_client(caller, other_tenant, outsider)
    for method, path, payload in (
        ("get", "contacts/", None),
        ("get", f"contacts/{jo.pk}/", None),
        ("patch", f"contacts/{jo.pk}/", {"notes": "x"}),
        ("post", f"contacts/{jo.pk}/merge/", {"other_id": sam.pk}),
    ):
        response = getattr(client, method)(
            f"{base(tenant)}/{path}", payload, format="json"
        )
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
        assert b"Acme" not in response.content
    assert (owners_of(tenant), contact_row(tenant, jo.pk)) == before


def test_another_workspaces_contact_id_is_404(
    tenant: Tenant,
    other_tenant: Tenant,
    agent: User,
    jo: Contact,
    globex_contact: Contact,
) -> None:
    before = (owners_of(other_tenant), contact_row(other_tenant, globex_contact.pk))
    client = token_client(tenant, agent, "write")
    for method, path, payload in (
        ("get", f"contacts/{globex_contact.pk}/", None),
        ("patch", f"contacts/{globex_contact.pk}/", {"notes": "x"}),
        ("post", f"contacts/{globex_contact.pk}/merge/", {"other_id": jo.pk}),
    ):
        response = getattr(client, method)(
            f"{base(tenant)}/{path}", payload, format="json"
        )
        assert response.status_code == 404, path
        assert b"Globex" not in response.content
    assert (
        owners_of(other_tenant),
        contact_row(other_tenant, globex_contact.pk),
    ) == before
    assert contact_row(tenant, jo.pk)[-1] is None


def test_a_merged_contact_is_read_only(
    tenant: Tenant, agent: User, jo: Contact, sam: Contact
) -> None:
    client = session(agent)
    url = f"{base(tenant)}/contacts/{jo.pk}/merge/"
    assert client.post(url, {"other_id": sam.pk}, format="json").status_code == 200
    response = client.patch(
        f"{base(tenant)}/contacts/{sam.pk}/", {"notes": "x"}, format="json"
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "invalid_transition"
    assert body["details"] == {"merged_into_id": jo.pk}
    assert contact_row(tenant, sam.pk) == ("Sam_K", "", "", "", jo.pk)
