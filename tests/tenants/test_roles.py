"""What each role may do; denials also prove that nothing changed."""

import pytest
from django.core import mail

from tenants.context import tenant_context
from tenants.models import AuditEvent, Brand, Invitation, Membership, Tenant, User
from tests.conftest import login
from tests.factories import count_rows, membership_of

pytestmark = pytest.mark.django_db(transaction=True)

MEMBERS = "/t/acme-air/settings/members/"
BRANDS = "/t/acme-air/settings/brands/"


def role_of(tenant: Tenant, user: User) -> str:
    return membership_of(tenant, user).role


@pytest.mark.parametrize("persona", ["viewer", "agent"])
def test_viewer_and_agent_cannot_invite(
    persona: str, request: pytest.FixtureRequest, tenant: Tenant
) -> None:
    user = request.getfixturevalue(persona)
    response = login(user).post(MEMBERS, {"email": "x@acme.example", "role": "agent"})
    assert response.status_code == 403
    assert count_rows(tenant, Invitation) == 0
    assert mail.outbox == []


@pytest.mark.parametrize("persona", ["viewer", "agent"])
def test_viewer_and_agent_cannot_add_brands(
    persona: str, request: pytest.FixtureRequest, tenant: Tenant
) -> None:
    user = request.getfixturevalue(persona)
    response = login(user).post(BRANDS, {"name": "Acme Cargo", "timezone": "UTC"})
    assert response.status_code == 403
    assert count_rows(tenant, Brand) == 1


def test_every_member_can_read_the_workspace(
    viewer: User, agent: User, admin: User, owner: User, tenant: Tenant
) -> None:
    for user in (viewer, agent, admin, owner):
        client = login(user)
        assert client.get("/t/acme-air/").status_code == 200
        assert client.get(MEMBERS).status_code == 200
        assert client.get(BRANDS).status_code == 200


def test_admin_adds_a_brand(admin: User, tenant: Tenant) -> None:
    response = login(admin).post(
        BRANDS, {"name": "Acme Cargo", "timezone": "Europe/Paris"}
    )
    assert response.status_code == 302
    with tenant_context(tenant):
        brand = Brand.objects.get(name="Acme Cargo")
        audit = AuditEvent.objects.filter(action="brand.created").count()
    assert (brand.slug, brand.timezone) == ("acme-cargo", "Europe/Paris")
    assert audit == 1


def test_brand_with_a_bad_timezone_is_a_form_error(admin: User, tenant: Tenant) -> None:
    response = login(admin).post(
        BRANDS, {"name": "Acme Cargo", "timezone": "Mars/Olympus"}
    )
    assert response.status_code == 400
    assert response.context["form"].errors["timezone"] == [
        "'Mars/Olympus' is not a known time zone."
    ]
    assert count_rows(tenant, Brand) == 1


def test_admin_changes_an_agents_role(admin: User, agent: User, tenant: Tenant) -> None:
    target = membership_of(tenant, agent)
    response = login(admin).post(f"{MEMBERS}{target.pk}/role/", {"role": "viewer"})
    assert response.status_code == 302
    assert role_of(tenant, agent) == "viewer"


def test_admin_cannot_make_an_owner(admin: User, agent: User, tenant: Tenant) -> None:
    target = membership_of(tenant, agent)
    response = login(admin).post(f"{MEMBERS}{target.pk}/role/", {"role": "owner"})
    assert response.status_code == 403
    assert role_of(tenant, agent) == "agent"


def test_admin_cannot_remove_an_owner(admin: User, owner: User, tenant: Tenant) -> None:
    target = membership_of(tenant, owner)
    response = login(admin).post(f"{MEMBERS}{target.pk}/remove/")
    assert response.status_code == 403
    assert role_of(tenant, owner) == "owner"


def test_last_owner_cannot_be_demoted(owner: User, tenant: Tenant) -> None:
    target = membership_of(tenant, owner)
    client = login(owner)
    response = client.post(
        f"{MEMBERS}{target.pk}/role/", {"role": "admin"}, follow=True
    )
    assert "A workspace needs at least one owner." in response.content.decode()
    assert role_of(tenant, owner) == "owner"


def test_removed_member_loses_access_on_the_next_request(
    admin: User, agent: User, tenant: Tenant
) -> None:
    andy = login(agent)
    assert andy.get("/t/acme-air/").status_code == 200
    target = membership_of(tenant, agent)
    assert login(admin).post(f"{MEMBERS}{target.pk}/remove/").status_code == 302
    assert andy.get("/t/acme-air/").status_code == 404
    assert andy.get(MEMBERS).status_code == 404
    with tenant_context(tenant):
        assert not Membership.objects.filter(user=agent).exists()
        assert AuditEvent.objects.filter(action="member.removed").count() == 1


@pytest.mark.parametrize("persona", ["admin", "agent"])
def test_only_the_owner_can_delete_the_workspace(
    persona: str, request: pytest.FixtureRequest, tenant: Tenant
) -> None:
    user = request.getfixturevalue(persona)
    response = login(user).post(
        "/t/acme-air/settings/workspace/delete/", {"confirm_name": "Acme Air"}
    )
    assert response.status_code == 403
    tenant.refresh_from_db()
    assert tenant.status == "active"


def test_owner_deletes_the_workspace_after_typing_its_name(
    owner: User, agent: User, tenant: Tenant
) -> None:
    client = login(owner)
    wrong = client.post(
        "/t/acme-air/settings/workspace/delete/", {"confirm_name": "acme"}
    )
    assert wrong.status_code == 400
    tenant.refresh_from_db()
    assert tenant.status == "active"
    done = client.post(
        "/t/acme-air/settings/workspace/delete/", {"confirm_name": "Acme Air"}
    )
    assert done.status_code == 302
    tenant.refresh_from_db()
    assert tenant.status == "deleted"
    assert client.get("/t/acme-air/").status_code == 404
    assert login(agent).get("/t/acme-air/").status_code == 404
    assert count_rows(tenant, Brand) == 1  # kept for the retention period
