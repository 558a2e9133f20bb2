"""Settings → API tokens: create (shown once), list, revoke.

Denials also assert that nothing changed.
"""

import re

import pytest
from rest_framework.test import APIClient

from tenants.api_tokens import create_api_token
from tenants.context import tenant_context
from tenants.models import ApiToken, Tenant, User
from tests.conftest import login
from tests.factories import membership_of

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = "/t/acme-air/settings/api-tokens/"
RAW = re.compile(r"esk_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")


def tokens(tenant: Tenant) -> list[tuple[str, str, str, bool]]:
    with tenant_context(tenant):
        return [
            (email, name, scope, revoked is not None)
            for email, name, scope, revoked in ApiToken.objects.order_by(
                "id"
            ).values_list("membership__user__email", "name", "scope", "revoked_at")
        ]


def make_token(tenant: Tenant, user: User, name: str) -> int:
    with tenant_context(tenant):
        token, _ = create_api_token(
            membership_of(tenant, user), name=name, scope="read"
        )
    return token.pk


def test_a_new_token_is_shown_once(tenant: Tenant, agent: User) -> None:
    client = login(agent)
    created = client.post(PAGE, {"name": "CRM sync", "scope": "write"})

    assert created.status_code == 201
    assert "no-store" in created["Cache-Control"]
    [raw] = RAW.findall(created.content.decode())
    assert tokens(tenant) == [("andy@acme.example", "CRM sync", "write", False)]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/t/acme-air/brands/").status_code == 200

    later = client.get(PAGE)
    assert later.status_code == 200
    assert RAW.findall(later.content.decode()) == []
    assert f"esk_{raw[4:12]}_…" in later.content.decode()
    assert "CRM sync" in later.content.decode()


@pytest.mark.parametrize(
    ("persona", "offered"),
    [
        ("viewer", ["read"]),
        ("agent", ["read", "write"]),
        ("admin", ["read", "write", "admin"]),
    ],
)
def test_the_scopes_offered_follow_the_role(
    tenant: Tenant, persona: str, offered: list[str], request: pytest.FixtureRequest
) -> None:
    page = login(request.getfixturevalue(persona)).get(PAGE).content.decode()
    assert re.findall(r'<option value="(\w+)"', page) == offered


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "scope": "admin"}, "Select a valid choice."),
        ({"name": "", "scope": "read"}, "This field is required."),
        ({"name": "x" * 81, "scope": "read"}, "at most 80 characters"),
        ({"name": "x"}, "This field is required."),
    ],
)
def test_bad_input_is_shown_on_the_field(
    tenant: Tenant, viewer: User, data: dict[str, str], message: str
) -> None:
    response = login(viewer).post(PAGE, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert RAW.findall(response.content.decode()) == []
    assert tokens(tenant) == []


def test_a_member_revokes_their_own_token(tenant: Tenant, agent: User) -> None:
    token = make_token(tenant, agent, "old")
    client = login(agent)
    response = client.post(f"{PAGE}{token}/revoke/")
    assert response.status_code == 302
    assert response["Location"] == PAGE
    assert tokens(tenant) == [("andy@acme.example", "old", "read", True)]
    page = client.get(PAGE).content.decode()
    assert "revoked" in page
    assert f"{PAGE}{token}/revoke/" not in page


def test_members_see_only_their_own_tokens(
    tenant: Tenant, agent: User, viewer: User, admin: User
) -> None:
    make_token(tenant, agent, "Andy's CRM")
    make_token(tenant, viewer, "Vera's report")
    mine = login(viewer).get(PAGE).content.decode()
    everyone = login(admin).get(PAGE).content.decode()
    assert "Vera&#x27;s report" in mine
    assert "Andy&#x27;s CRM" not in mine
    assert "Andy&#x27;s CRM" in everyone
    assert "andy@acme.example" in everyone


def test_others_tokens_are_404_to_non_admins(
    tenant: Tenant, agent: User, viewer: User, admin: User
) -> None:
    token = make_token(tenant, agent, "Andy's")
    assert login(viewer).post(f"{PAGE}{token}/revoke/").status_code == 404
    assert tokens(tenant) == [("andy@acme.example", "Andy's", "read", False)]
    assert login(admin).post(f"{PAGE}{token}/revoke/").status_code == 302
    assert tokens(tenant) == [("andy@acme.example", "Andy's", "read", True)]


def test_revoking_needs_a_post(tenant: Tenant, agent: User) -> None:
    token = make_token(tenant, agent, "x")
    assert login(agent).get(f"{PAGE}{token}/revoke/").status_code == 405
    assert tokens(tenant) == [("andy@acme.example", "x", "read", False)]


def test_the_outsider_gets_404(
    tenant: Tenant, agent: User, outsider: User, other_tenant: Tenant
) -> None:
    token = make_token(tenant, agent, "x")
    charlie = login(outsider)
    for response in (
        charlie.get(PAGE),
        charlie.post(PAGE, {"name": "x", "scope": "read"}),
        charlie.post(f"{PAGE}{token}/revoke/"),
    ):
        assert response.status_code == 404
    assert tokens(tenant) == [("andy@acme.example", "x", "read", False)]


def test_the_page_has_no_inline_script(tenant: Tenant, admin: User) -> None:
    make_token(tenant, admin, "x")
    page = login(admin).get(PAGE).content.decode()
    assert "<script>" not in page
    assert "onclick" not in page
    assert 'href="/t/acme-air/settings/api-tokens/"' in page
