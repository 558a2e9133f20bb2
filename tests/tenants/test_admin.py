"""The operator console at /admin/ and the tenant admin site at /t/<slug>/admin/."""

import re

import pytest
from allauth.mfa.models import Authenticator
from django.test import Client, override_settings

from tenants.context import tenant_context
from tenants.models import AuditEvent, Brand, Tenant, User
from tests.conftest import login
from tests.factories import count_rows, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator() -> User:
    return make_user("ops@earshot.example", is_staff=True, is_superuser=True)


def give_totp(user: User) -> None:
    Authenticator.objects.create(user=user, type=Authenticator.Type.TOTP, data={})


def test_anonymous_and_non_staff_are_kept_out_of_the_operator_console(
    owner: User, tenant: Tenant
) -> None:
    assert Client().get("/admin/")["Location"].startswith("/admin/login/")
    response = login(owner).get("/admin/", follow=True)
    assert response.status_code == 403
    assert b"You can't do that here" in response.content


def test_staff_without_mfa_is_sent_to_enable_it(operator: User, tenant: Tenant) -> None:
    response = login(operator).get("/admin/tenants/tenant/", follow=True)
    hops = [url for url, _status in response.redirect_chain]
    assert "/accounts/2fa/totp/activate/" in hops
    assert b"Acme Air" not in response.content


def test_operator_sees_tenants_and_their_usage(
    operator: User, tenant: Tenant, agent: User, other_tenant: Tenant
) -> None:
    give_totp(operator)
    response = login(operator).get("/admin/tenants/tenant/")
    assert response.status_code == 200
    body = response.content.decode()
    rows = re.findall(
        r'<a href="/admin/tenants/tenant/\d+/change/">([^<]+)</a>.*?'
        r'<td class="field-members">(\d+)</td><td class="field-brands">(\d+)</td>',
        body,
        re.S,
    )
    assert sorted(rows) == [("Acme Air", "2", "1"), ("Globex", "1", "1")]


@override_settings(OPERATOR_MFA_REQUIRED=False)
def test_operator_suspends_with_a_reason_and_members_see_a_notice(
    operator: User, owner: User, tenant: Tenant, agent: User, other_tenant: Tenant
) -> None:
    ops = login(operator)
    action = {"action": "suspend", "_selected_action": [tenant.pk]}
    asked = ops.post("/admin/tenants/tenant/", action)
    assert asked.status_code == 200
    assert b"Suspend workspaces" in asked.content
    tenant.refresh_from_db()
    assert tenant.status == "active"
    done = ops.post("/admin/tenants/tenant/", {**action, "reason": "Unpaid invoice"})
    assert done.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.status, tenant.status_reason) == ("suspended", "Unpaid invoice")
    notice = login(agent).get("/t/acme-air/settings/brands/")
    assert notice.status_code == 403
    assert b"Acme Air is suspended" in notice.content
    assert b"nothing has been deleted" in notice.content
    assert count_rows(tenant, Brand) == 1
    with tenant_context(tenant):
        audit = AuditEvent.objects.get(action="workspace.suspended")
    assert (audit.actor_id, audit.reason) == (operator.pk, "Unpaid invoice")
    assert login(owner).get("/t/globex/").status_code == 404  # still not a member
    assert Tenant.objects.get(slug="globex").status == "active"


@override_settings(OPERATOR_MFA_REQUIRED=False)
def test_operator_reactivates_a_suspended_tenant(
    operator: User, agent: User, tenant: Tenant
) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(status="suspended")
    ops = login(operator)
    response = ops.post(
        "/admin/tenants/tenant/",
        {"action": "reactivate", "_selected_action": [tenant.pk]},
    )
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.status == "active"
    assert login(agent).get("/t/acme-air/").status_code == 200


def test_suspended_workspace_is_still_a_404_for_outsiders(
    tenant: Tenant, outsider: User, other_tenant: Tenant
) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(status="suspended")
    response = login(outsider).get("/t/acme-air/")
    assert response.status_code == 404
    assert b"suspended" not in response.content


@pytest.mark.parametrize("persona", ["agent", "viewer"])
def test_tenant_admin_is_for_owners_and_admins_only(
    persona: str, request: pytest.FixtureRequest, tenant: Tenant
) -> None:
    user = request.getfixturevalue(persona)
    response = login(user).get("/t/acme-air/admin/tenants/brand/", follow=True)
    assert response.status_code == 403
    main = response.content.split(b"<main", 1)[1].split(b"</main>", 1)[0]
    assert b"Acme Air" not in main


def test_tenant_admin_edits_a_brand_of_its_own_workspace(
    admin: User, tenant: Tenant, other_tenant: Tenant
) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()
    client = login(admin)
    page = client.get(f"/t/acme-air/admin/tenants/brand/{brand.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data.update(
        name="Acme Air Care",
        business_hours='{"mon": [["08:00", "20:00"]]}',
        signature_rules="{}",
        send_hold_seconds="30",
    )
    saved = client.post(f"/t/acme-air/admin/tenants/brand/{brand.pk}/change/", data)
    assert saved.status_code == 302
    with tenant_context(tenant):
        brand.refresh_from_db()
    assert (brand.name, brand.send_hold_seconds) == ("Acme Air Care", 30)
    with tenant_context(other_tenant):
        assert list(Brand.objects.values_list("name", flat=True)) == ["Globex"]


def test_tenant_admin_rejects_a_hold_over_two_minutes(
    admin: User, tenant: Tenant
) -> None:
    with tenant_context(tenant):
        brand = Brand.objects.get()
    client = login(admin)
    page = client.get(f"/t/acme-air/admin/tenants/brand/{brand.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data.update(business_hours="{}", signature_rules="{}", send_hold_seconds="500")
    response = client.post(f"/t/acme-air/admin/tenants/brand/{brand.pk}/change/", data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "__all__" in errors
    with tenant_context(tenant):
        brand.refresh_from_db()
    assert brand.send_hold_seconds == 20
