import re
from datetime import timedelta

import pytest
from django.core import mail, signing
from django.test import Client
from django.utils import timezone

from tenants.context import tenant_context
from tenants.models import Invitation, Membership, Tenant, User
from tests.conftest import login
from tests.factories import PASSWORD, count_rows, make_user

pytestmark = pytest.mark.django_db(transaction=True)

MEMBERS = "/t/acme-air/settings/members/"


def invite(
    client: Client, email: str = "nina@acme.example", role: str = "agent"
) -> str:
    response = client.post(MEMBERS, {"email": email, "role": role})
    assert response.status_code == 302, response.content
    link = re.search(r"http://testserver(/invitations/\S+/)", str(mail.outbox[-1].body))
    assert link is not None
    return link.group(1)


def membership_roles(tenant: Tenant) -> dict[str, str]:
    with tenant_context(tenant):
        return dict(Membership.objects.values_list("user__email", "role"))


def test_admin_invites_by_email_and_new_person_joins_with_an_account(
    admin: User, tenant: Tenant
) -> None:
    link = invite(login(admin), role="viewer")
    assert mail.outbox[0].to == ["nina@acme.example"]
    assert mail.outbox[0].subject == "Ada invited you to Acme Air on Earshot"
    page = Client().get(link)
    assert page.status_code == 200
    assert b"Join Acme Air" in page.content
    newcomer = Client()
    response = newcomer.post(
        link, {"display_name": "Nina", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/t/acme-air/"
    assert membership_roles(tenant)["nina@acme.example"] == "viewer"
    assert newcomer.get("/t/acme-air/").status_code == 200


def test_existing_user_accepts_while_logged_in(
    owner: User, tenant: Tenant, outsider: User, other_tenant: Tenant
) -> None:
    link = invite(login(owner), email=outsider.email, role="agent")
    charlie = login(outsider)
    response = charlie.post(link)
    assert response["Location"] == "/t/acme-air/"
    assert membership_roles(tenant)[outsider.email] == "agent"
    assert charlie.get("/t/acme-air/").status_code == 200
    assert charlie.get("/t/globex/").status_code == 200


def test_used_invitation_is_refused_and_changes_nothing(
    owner: User, tenant: Tenant
) -> None:
    link = invite(login(owner))
    nina = make_user("nina@acme.example")
    assert login(nina).post(link).status_code == 302
    before = count_rows(tenant, Membership)
    again = Client().post(
        link, {"display_name": "Eve", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert again.status_code == 400
    assert b"This invitation has already been used." in again.content
    assert count_rows(tenant, Membership) == before
    assert User.objects.filter(display_name="Eve").count() == 0


def test_expired_invitation_is_refused(owner: User, tenant: Tenant) -> None:
    link = invite(login(owner))
    with tenant_context(tenant):
        Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    nina = make_user("nina@acme.example")
    response = login(nina).post(link)
    assert response.status_code == 400
    assert b"This invitation has expired." in response.content
    assert "nina@acme.example" not in membership_roles(tenant)


def test_forged_invitation_is_refused(owner: User, tenant: Tenant) -> None:
    invite(login(owner))
    with tenant_context(tenant):
        invitation = Invitation.objects.get()
    forged = signing.dumps({"t": tenant.pk, "i": invitation.pk}, salt="another-salt")
    nina = make_user("nina@acme.example")
    for token in (forged, "garbage", forged[:-3] + "abc"):
        response = login(nina).post(f"/invitations/{token}/")
        assert response.status_code == 400
        assert b"This invitation link is not valid." in response.content
    assert "nina@acme.example" not in membership_roles(tenant)


def test_invitation_for_another_address_is_refused(owner: User, tenant: Tenant) -> None:
    link = invite(login(owner))
    mallory = make_user("mallory@evil.example")
    response = login(mallory).post(link)
    assert response.status_code == 400
    assert b"This invitation was sent to nina@acme.example." in response.content
    assert "mallory@evil.example" not in membership_roles(tenant)


def test_revoked_invitation_is_refused(owner: User, tenant: Tenant) -> None:
    client = login(owner)
    link = invite(client)
    with tenant_context(tenant):
        invitation = Invitation.objects.get()
    revoke = f"/t/acme-air/settings/invitations/{invitation.pk}/revoke/"
    assert client.post(revoke).status_code == 302
    nina = make_user("nina@acme.example")
    response = login(nina).post(link)
    assert response.status_code == 400
    assert b"This invitation was withdrawn." in response.content


def test_inviting_an_existing_member_is_a_form_error(
    owner: User, tenant: Tenant, agent: User
) -> None:
    response = login(owner).post(MEMBERS, {"email": agent.email, "role": "agent"})
    assert response.status_code == 400
    assert response.context["form"].errors["email"] == [
        "andy@acme.example is already a member of this workspace."
    ]
    assert count_rows(tenant, Invitation) == 0
    assert mail.outbox == []


def test_invitation_with_a_bad_email_or_role_is_a_form_error(
    owner: User, tenant: Tenant
) -> None:
    response = login(owner).post(MEMBERS, {"email": "not-an-email", "role": "emperor"})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["email"] == ["Enter a valid email address."]
    assert errors["role"] == [
        "Select a valid choice. emperor is not one of the available choices."
    ]
    assert count_rows(tenant, Invitation) == 0


def test_new_invitation_replaces_a_pending_one(owner: User, tenant: Tenant) -> None:
    client = login(owner)
    first = invite(client)
    invite(client, role="viewer")
    nina = make_user("nina@acme.example")
    assert login(nina).post(first).status_code == 400
    with tenant_context(tenant):
        pending = [i.role for i in Invitation.objects.all() if i.is_pending]
    assert pending == ["viewer"]
