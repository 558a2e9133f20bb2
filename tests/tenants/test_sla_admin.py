"""SLA policies and holidays in the tenant admin site (/t/<slug>/admin/): checked
and audited as in the API, scoped to the workspace."""

from datetime import date
from typing import Any

import pytest

from tenants.context import tenant_context
from tenants.models import AuditEvent, Brand, Holiday, SlaPolicy, Tenant, User
from tenants.sla import add_holiday
from tests.conftest import login
from tests.factories import membership_of

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = "/t/acme-air/admin/tenants"
POLICY = {
    "first_response_minutes": "30",
    "next_response_minutes": "45",
    "resolution_minutes": "",
    "urgent_first_response_minutes": "5",
    "urgent_next_response_minutes": "5",
    "urgent_on_negative": "on",
    "urgent_tags": '["Refund", "refund"]',
}


def brand_of(tenant: Tenant) -> Brand:
    with tenant_context(tenant):
        return Brand.objects.get()


def rows(tenant: Tenant) -> tuple[list[Any], list[Any], list[str]]:
    with tenant_context(tenant):
        return (
            list(
                SlaPolicy.objects.values_list(
                    "brand_id", "first_response_minutes", "urgent_tags"
                )
            ),
            list(Holiday.objects.values_list("brand_id", "name", "start_date")),
            list(AuditEvent.objects.order_by("id").values_list("action", flat=True)),
        )


def test_an_admin_sets_a_brands_targets_and_it_is_audited(
    tenant: Tenant, admin: User
) -> None:
    brand = brand_of(tenant)
    client = login(admin)
    assert client.get(f"{ADMIN}/slapolicy/add/").status_code == 200
    response = client.post(f"{ADMIN}/slapolicy/add/", {**POLICY, "brand": brand.pk})
    assert response.status_code == 302
    policies, _, actions = rows(tenant)
    assert policies == [(brand.pk, 30, ["refund"])]
    assert actions[-1] == "sla_policy.created"
    with tenant_context(tenant):
        policy = SlaPolicy.objects.get()
    changed = client.post(
        f"{ADMIN}/slapolicy/{policy.pk}/change/",
        {**POLICY, "first_response_minutes": "25"},
    )
    assert changed.status_code == 302
    policies, _, actions = rows(tenant)
    assert policies == [(brand.pk, 25, ["refund"])]
    assert actions[-1] == "sla_policy.updated"
    deleted = client.post(f"{ADMIN}/slapolicy/{policy.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert rows(tenant)[0] == []
    assert rows(tenant)[2][-1] == "sla_policy.removed"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"first_response_minutes": "0"}, "first_response_minutes"),
        ({"next_response_minutes": "-3"}, "next_response_minutes"),
        ({"urgent_first_response_minutes": "10081"}, "urgent_first_response_minutes"),
        ({"urgent_tags": '["ok", ""]'}, "urgent_tags"),
        ({"urgent_tags": '"refund"'}, "urgent_tags"),
    ],
)
def test_bad_targets_in_the_admin_are_field_errors(
    tenant: Tenant, admin: User, changes: dict[str, str], field: str
) -> None:
    before = rows(tenant)
    response = login(admin).post(f"{ADMIN}/slapolicy/add/", {**POLICY, **changes})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors
    assert rows(tenant) == before


def test_an_admin_adds_and_removes_holidays(tenant: Tenant, admin: User) -> None:
    brand = brand_of(tenant)
    with tenant_context(tenant):
        add_holiday(
            brand,
            membership=membership_of(tenant, admin),
            name="Christmas",
            start_date=date(2026, 12, 24),
            end_date=date(2026, 12, 26),
        )
    client = login(admin)
    before = rows(tenant)
    for start, end, field in (
        ("2026-12-26", "2026-12-28", "start_date"),
        ("2027-01-05", "2027-01-01", "end_date"),
    ):
        refused = client.post(
            f"{ADMIN}/holiday/add/",
            {"brand": brand.pk, "name": "x", "start_date": start, "end_date": end},
        )
        assert refused.status_code == 200
        assert field in refused.context["adminform"].form.errors
    assert rows(tenant) == before
    added = client.post(
        f"{ADMIN}/holiday/add/",
        {
            "brand": brand.pk,
            "name": "New year",
            "start_date": "2027-01-01",
            "end_date": "2027-01-01",
        },
    )
    assert added.status_code == 302
    _, holidays, actions = rows(tenant)
    assert holidays == [
        (brand.pk, "Christmas", date(2026, 12, 24)),
        (brand.pk, "New year", date(2027, 1, 1)),
    ]
    assert actions[-1] == "holiday.added"
    with tenant_context(tenant):
        christmas = Holiday.objects.get(name="Christmas")
    deleted = client.post(f"{ADMIN}/holiday/{christmas.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    _, holidays, actions = rows(tenant)
    assert holidays == [(brand.pk, "New year", date(2027, 1, 1))]
    assert actions[-1] == "holiday.removed"


def test_the_brand_admin_refuses_hours_the_calendar_cannot_read(
    tenant: Tenant, admin: User
) -> None:
    brand = brand_of(tenant)
    client = login(admin)
    page = client.get(f"{ADMIN}/brand/{brand.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data.update(
        business_hours='{"mon": [["9", "17:00"]]}',
        signature_rules="{}",
        queue_window_minutes="61",
    )
    response = client.post(f"{ADMIN}/brand/{brand.pk}/change/", data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["business_hours"] == [
        'mon: each interval is ["HH:MM", "HH:MM"] (24-hour clock).'
    ]
    assert errors["queue_window_minutes"] == ["Give a number from 0 to 60."]
    with tenant_context(tenant):
        brand.refresh_from_db()
    assert brand.business_hours["mon"] == [["09:00", "17:00"]]
    assert brand.queue_window_minutes == 5
