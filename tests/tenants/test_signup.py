import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client, override_settings

from tenants.context import tenant_context
from tenants.models import AuditEvent, Brand, Membership, Tenant, User
from tests.conftest import login
from tests.factories import PASSWORD, add_member, make_workspace

pytestmark = pytest.mark.django_db(transaction=True)

SIGNUP = "/accounts/signup/"


def signup(client: Client, **overrides: str) -> Any:
    data = {
        "email": "sam@skyline.example",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "workspace_name": "Skyline Airways",
        **overrides,
    }
    return client.post(SIGNUP, data)


@override_settings(ACCOUNT_EMAIL_VERIFICATION="optional")
def test_signup_creates_workspace_owner_and_brand_and_lands_in_it() -> None:
    client = Client()
    response = signup(client)
    tenant = Tenant.objects.get()
    assert (tenant.name, tenant.slug, tenant.status) == (
        "Skyline Airways",
        "skyline-airways",
        "active",
    )
    assert response.status_code == 302
    assert response["Location"] == "/t/skyline-airways/"
    with tenant_context(tenant):
        membership = Membership.objects.select_related("user").get()
        brands = list(Brand.objects.values_list("name", flat=True))
        actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert (membership.user.email, membership.role) == ("sam@skyline.example", "owner")
    assert brands == ["Skyline Airways"]
    assert actions == ["workspace.created"]
    page = client.get("/t/skyline-airways/")
    assert page.status_code == 200
    assert b"Skyline Airways" in page.content


def test_signup_in_production_requires_email_verification() -> None:
    client = Client()
    response = signup(client)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert client.get("/t/skyline-airways/").status_code == 302  # not logged in yet
    assert len(mail.outbox) == 1
    link = re.search(
        r"http://testserver(/accounts/confirm-email/\S+)", str(mail.outbox[0].body)
    )
    assert link is not None
    confirmed = client.post(link.group(1))
    assert confirmed.status_code == 302
    assert login(User.objects.get()).get("/t/skyline-airways/").status_code == 200


def test_signup_with_a_taken_email_shows_a_form_error() -> None:
    make_workspace(
        "Existing", owner=User.objects.create_user("sam@skyline.example", "x")
    )
    response = signup(Client())
    assert response.status_code == 200
    assert "email" in response.context["form"].errors
    assert Tenant.objects.count() == 1


def test_signup_with_a_weak_password_shows_a_form_error() -> None:
    response = signup(Client(), password1="123456", password2="123456")
    assert response.status_code == 200
    assert "password1" in response.context["form"].errors
    assert (Tenant.objects.count(), User.objects.count()) == (0, 0)


def test_signup_with_an_empty_workspace_name_shows_a_form_error() -> None:
    response = signup(Client(), workspace_name="   ")
    assert response.status_code == 200
    assert response.context["form"].errors["workspace_name"] == [
        "This field is required."
    ]
    assert (Tenant.objects.count(), User.objects.count()) == (0, 0)


def test_landing_page_explains_earshot_to_visitors() -> None:
    response = Client().get("/")
    assert response.status_code == 200
    assert b"helpdesk for customer care on social media" in response.content
    assert b'href="/accounts/signup/"' in response.content
    assert b'href="/accounts/login/"' in response.content


def test_member_of_one_workspace_goes_straight_to_it(
    owner: User, tenant: Tenant
) -> None:
    response = login(owner).get("/")
    assert response.status_code == 302
    assert response["Location"] == "/t/acme-air/"


def test_member_of_several_workspaces_picks_one(
    owner: User, tenant: Tenant, other_tenant: Tenant
) -> None:
    add_member(other_tenant, owner, Membership.Role.AGENT)
    client = login(owner)
    assert client.get("/")["Location"] == "/workspaces/"
    page = client.get("/workspaces/")
    assert page.status_code == 200
    assert [m.tenant.name for m in page.context["memberships"]] == [
        "Acme Air",
        "Globex",
    ]
    assert [m.role for m in page.context["memberships"]] == ["owner", "agent"]
    assert client.get("/t/globex/").status_code == 200
    assert client.get("/t/acme-air/").status_code == 200


def test_login_is_rate_limited_after_repeated_failures(
    owner: User, tenant: Tenant
) -> None:
    client = Client()
    for _ in range(5):
        failed = client.post(
            "/accounts/login/", {"login": owner.email, "password": "wrong-password"}
        )
        assert failed.status_code == 200
    blocked = client.post(
        "/accounts/login/", {"login": owner.email, "password": PASSWORD}
    )
    assert blocked.status_code == 200
    assert "Too many failed login attempts" in blocked.content.decode()
    assert "_auth_user_id" not in client.session
