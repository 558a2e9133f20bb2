"""SLA policies (per brand, with the workspace fallback) and holidays, through the
services and the REST API. Denials and bad input also assert that nothing changed.
"""

from datetime import date
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from tenants.calendar import brand_calendar
from tenants.context import tenant_context
from tenants.models import AuditEvent, Brand, Holiday, SlaPolicy, Tenant, User
from tenants.sla import add_holiday, sla_policy_view, update_sla_policy
from tests.api_clients import (
    FOREIGN_CALLERS,
    base,
    foreign_client,
    session,
    token_client,
)
from tests.factories import make_brand, membership_of

pytestmark = pytest.mark.django_db(transaction=True)

DEFAULTS: dict[str, Any] = {
    "first_response_minutes": 60,
    "next_response_minutes": 60,
    "resolution_minutes": None,
    "urgent_first_response_minutes": 10,
    "urgent_next_response_minutes": 10,
    "urgent_on_negative": True,
    "urgent_tags": [],
}
POLICY_COLUMNS = ("brand_id", *DEFAULTS)


def policy_rows(tenant: Tenant) -> list[tuple[Any, ...]]:
    with tenant_context(tenant):
        return list(SlaPolicy.objects.order_by("id").values_list(*POLICY_COLUMNS))


def holiday_rows(tenant: Tenant) -> list[tuple[Any, ...]]:
    with tenant_context(tenant):
        return list(
            Holiday.objects.order_by("id").values_list(
                "brand_id", "name", "start_date", "end_date"
            )
        )


def audits(tenant: Tenant) -> list[tuple[str, dict[str, Any]]]:
    with tenant_context(tenant):
        return list(AuditEvent.objects.order_by("id").values_list("action", "data"))


def state(tenant: Tenant) -> tuple[object, ...]:
    return policy_rows(tenant), holiday_rows(tenant), audits(tenant)


def air(tenant: Tenant) -> Brand:
    with tenant_context(tenant):
        return Brand.objects.get(slug="acme-air")


def body_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return {k: v for k, v in body.items() if k != "updated_at"}


# --- Reading the policy in force ------------------------------------------------------


def test_without_rows_every_brand_uses_the_defaults(
    tenant: Tenant, viewer: User
) -> None:
    brand = air(tenant)
    client = token_client(tenant, viewer, "read")
    own = client.get(f"{base(tenant)}/brands/{brand.pk}/sla-policy/")
    fallback = client.get(f"{base(tenant)}/sla-policy/")
    assert (own.status_code, fallback.status_code) == (200, 200)
    assert body_of(own) == {
        "brand_id": brand.pk,
        "source": "default",
        "inherited": True,
        **DEFAULTS,
    }
    assert body_of(fallback) == {
        "brand_id": None,
        "source": "default",
        "inherited": True,
        **DEFAULTS,
    }
    assert own.json()["updated_at"] is None
    assert policy_rows(tenant) == []


def test_the_workspace_fallback_is_created_on_first_save_and_inherited(
    tenant: Tenant, admin: User
) -> None:
    brand = air(tenant)
    client = token_client(tenant, admin, "admin")
    response = client.put(
        f"{base(tenant)}/sla-policy/",
        {"first_response_minutes": 30, "resolution_minutes": 2880},
        format="json",
    )
    assert response.status_code == 200, response.json()
    fallback = {**DEFAULTS, "first_response_minutes": 30, "resolution_minutes": 2880}
    assert body_of(response) == {
        "brand_id": None,
        "source": "workspace",
        "inherited": False,
        **fallback,
    }
    assert policy_rows(tenant) == [(None, *fallback.values())]
    inherited = client.get(f"{base(tenant)}/brands/{brand.pk}/sla-policy/")
    assert body_of(inherited) == {
        "brand_id": brand.pk,
        "source": "workspace",
        "inherited": True,
        **fallback,
    }
    [(action, data)] = audits(tenant)[-1:]
    assert action == "sla_policy.created"
    assert data == {
        "brand_id": None,
        "fields": ["first_response_minutes", "resolution_minutes"],
        "from": {"first_response_minutes": 60, "resolution_minutes": None},
        "to": {"first_response_minutes": 30, "resolution_minutes": 2880},
    }


def test_a_brands_own_policy_starts_from_what_it_inherited(
    tenant: Tenant, admin: User
) -> None:
    brand = air(tenant)
    cargo = make_brand(tenant, "Cargo")
    membership = membership_of(tenant, admin)
    with tenant_context(tenant):
        update_sla_policy(
            None,
            membership=membership,
            changes={"next_response_minutes": 45, "urgent_tags": ["refund"]},
        )
    response = session(admin).put(
        f"{base(tenant)}/brands/{brand.pk}/sla-policy/",
        {
            "first_response_minutes": 20,
            "urgent_tags": [" Lost Bag ", "lost bag", "VIP"],
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    own = {
        **DEFAULTS,
        "first_response_minutes": 20,
        "next_response_minutes": 45,
        "urgent_tags": ["lost bag", "vip"],
    }
    assert body_of(response) == {
        "brand_id": brand.pk,
        "source": "brand",
        "inherited": False,
        **own,
    }
    with tenant_context(tenant):
        other = sla_policy_view(cargo)
        fallback = sla_policy_view(None)
    assert (other.source, other.own, other.first_response_minutes) == (
        "workspace",
        False,
        60,
    )
    assert other.urgent_tags == ["refund"]
    assert (fallback.source, fallback.own, fallback.next_response_minutes) == (
        "workspace",
        True,
        45,
    )
    assert policy_rows(tenant)[1] == (brand.pk, *own.values())


def test_a_second_save_audits_what_changed_and_an_unchanged_one_nothing(
    tenant: Tenant, admin: User
) -> None:
    brand = air(tenant)
    url = f"{base(tenant)}/brands/{brand.pk}/sla-policy/"
    client = session(admin)
    assert (
        client.put(url, {"urgent_on_negative": False}, format="json").status_code == 200
    )
    changed = client.put(
        url, {"urgent_on_negative": False, "resolution_minutes": 600}, format="json"
    )
    assert changed.status_code == 200
    before = state(tenant)
    same = client.put(url, {"resolution_minutes": 600}, format="json")
    assert same.status_code == 200
    assert state(tenant) == before
    assert [a for a, _ in audits(tenant)[-2:]] == [
        "sla_policy.created",
        "sla_policy.updated",
    ]
    assert audits(tenant)[-1][1] == {
        "brand_id": brand.pk,
        "fields": ["resolution_minutes"],
        "from": {"resolution_minutes": None},
        "to": {"resolution_minutes": 600},
    }
    cleared = client.put(url, {"resolution_minutes": None}, format="json")
    assert cleared.json()["resolution_minutes"] is None
    assert policy_rows(tenant)[0][3] is None


def test_deleting_a_brands_policy_inherits_the_fallback_again(
    tenant: Tenant, admin: User
) -> None:
    brand = air(tenant)
    url = f"{base(tenant)}/brands/{brand.pk}/sla-policy/"
    client = token_client(tenant, admin, "admin")
    client.put(url, {"first_response_minutes": 5}, format="json")
    removed = client.delete(url)
    assert removed.status_code == 200
    assert body_of(removed) == {
        "brand_id": brand.pk,
        "source": "default",
        "inherited": True,
        **DEFAULTS,
    }
    assert policy_rows(tenant) == []
    action, data = audits(tenant)[-1]
    assert action == "sla_policy.removed"
    assert data == {
        "brand_id": brand.pk,
        "values": {**DEFAULTS, "first_response_minutes": 5},
    }
    again = client.delete(url)
    assert again.status_code == 200
    assert [a for a, _ in audits(tenant) if a.startswith("sla_policy.")] == [
        "sla_policy.created",
        "sla_policy.removed",
    ]


# --- Bad input changes nothing --------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"first_response_minutes": 0}, "first_response_minutes"),
        ({"first_response_minutes": -5}, "first_response_minutes"),
        ({"first_response_minutes": 1.5}, "first_response_minutes"),
        ({"first_response_minutes": "soon"}, "first_response_minutes"),
        ({"first_response_minutes": None}, "first_response_minutes"),
        ({"first_response_minutes": True}, "first_response_minutes"),
        ({"next_response_minutes": 7 * 24 * 60 + 1}, "next_response_minutes"),
        ({"resolution_minutes": 0}, "resolution_minutes"),
        ({"urgent_first_response_minutes": -1}, "urgent_first_response_minutes"),
        ({"urgent_next_response_minutes": 2**40}, "urgent_next_response_minutes"),
        ({"urgent_on_negative": "maybe"}, "urgent_on_negative"),
        ({"urgent_tags": "refund"}, "urgent_tags"),
        ({"urgent_tags": ["refund", " "]}, "urgent_tags"),
        ({"urgent_tags": ["x" * 61]}, "urgent_tags"),
        ({"urgent_tags": [f"t{n}" for n in range(21)]}, "urgent_tags"),
    ],
)
@pytest.mark.parametrize("scope", ["brand", "workspace"])
def test_bad_targets_name_the_field_and_change_nothing(
    tenant: Tenant, admin: User, changes: dict[str, Any], field: str, scope: str
) -> None:
    brand = air(tenant)
    path = f"brands/{brand.pk}/sla-policy/" if scope == "brand" else "sla-policy/"
    client = session(admin)
    client.put(f"{base(tenant)}/{path}", {"next_response_minutes": 50}, format="json")
    before = state(tenant)
    response = client.put(
        f"{base(tenant)}/{path}",
        {"first_response_minutes": 15, **changes},
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid"
    assert list(response.json()["fields"]) == [field]
    assert response.json()["fields"][field][0]
    assert state(tenant) == before


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"first_response_minutes": 0},
            "first_response_minutes",
            "Give a number of minutes from 1 to 10080 (a week).",
        ),
        (
            {"next_response_minutes": 2.5},
            "next_response_minutes",
            "Give a whole number of minutes.",
        ),
        (
            {"urgent_first_response_minutes": True},
            "urgent_first_response_minutes",
            "Give a whole number of minutes.",
        ),
        ({"urgent_tags": [""]}, "urgent_tags", "A tag name cannot be empty."),
        (
            {"urgent_on_negative": 1},
            "urgent_on_negative",
            "Give true or false.",
        ),
        (
            {"first_response_target_minutes": 30},
            "first_response_target_minutes",
            "first_response_target_minutes is not an SLA policy setting.",
        ),
    ],
)
def test_the_service_checks_the_targets_itself(
    tenant: Tenant, admin: User, changes: Any, field: str, message: str
) -> None:
    before = state(tenant)
    with tenant_context(tenant), pytest.raises(ValidationError) as error:
        update_sla_policy(
            air(tenant), membership=membership_of(tenant, admin), changes=changes
        )
    assert error.value.message_dict == {field: [message]}
    assert state(tenant) == before


# --- Who may write --------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["agent", "viewer"])
def test_agents_and_viewers_read_but_cannot_write(
    tenant: Tenant, persona: str, request: pytest.FixtureRequest
) -> None:
    brand = air(tenant)
    client = session(request.getfixturevalue(persona))
    before = state(tenant)
    assert (
        client.get(f"{base(tenant)}/brands/{brand.pk}/sla-policy/").status_code == 200
    )
    assert client.get(f"{base(tenant)}/brands/{brand.pk}/holidays/").status_code == 200
    writes = [
        client.put(
            f"{base(tenant)}/brands/{brand.pk}/sla-policy/",
            {"first_response_minutes": 5},
            format="json",
        ),
        client.delete(f"{base(tenant)}/brands/{brand.pk}/sla-policy/"),
        client.put(
            f"{base(tenant)}/sla-policy/", {"first_response_minutes": 5}, format="json"
        ),
        client.post(
            f"{base(tenant)}/brands/{brand.pk}/holidays/",
            {"name": "Off", "start_date": "2026-12-25"},
            format="json",
        ),
    ]
    assert [w.status_code for w in writes] == [403, 403, 403, 403]
    assert {w.json()["code"] for w in writes} == {"permission_denied"}
    assert state(tenant) == before


def test_the_service_refuses_agents(tenant: Tenant, agent: User) -> None:
    before = state(tenant)
    with tenant_context(tenant), pytest.raises(PermissionDenied):
        update_sla_policy(
            None,
            membership=membership_of(tenant, agent),
            changes={"first_response_minutes": 5},
        )
    assert state(tenant) == before


def test_a_write_token_cannot_change_targets_or_holidays(
    tenant: Tenant, admin: User
) -> None:
    brand = air(tenant)
    client = token_client(tenant, admin, "write")
    before = state(tenant)
    responses = [
        client.put(
            f"{base(tenant)}/sla-policy/", {"first_response_minutes": 5}, format="json"
        ),
        client.post(
            f"{base(tenant)}/brands/{brand.pk}/holidays/",
            {"name": "Off", "start_date": "2026-12-25"},
            format="json",
        ),
    ]
    assert [(r.status_code, r.json()["code"]) for r in responses] == [
        (403, "scope_missing"),
        (403, "scope_missing"),
    ]
    assert state(tenant) == before


# --- Holidays -------------------------------------------------------------------------


def test_an_admin_adds_single_days_and_ranges(tenant: Tenant, admin: User) -> None:
    brand = air(tenant)
    url = f"{base(tenant)}/brands/{brand.pk}/holidays/"
    client = token_client(tenant, admin, "admin")
    week = client.post(
        url,
        {
            "name": " New year week ",
            "start_date": "2026-12-28",
            "end_date": "2027-01-01",
        },
        format="json",
    )
    christmas = client.post(
        url, {"name": "Christmas", "start_date": "2026-12-25"}, format="json"
    )
    assert (week.status_code, christmas.status_code) == (201, 201)
    assert christmas.json() == {
        "id": christmas.json()["id"],
        "brand_id": brand.pk,
        "name": "Christmas",
        "start_date": "2026-12-25",
        "end_date": "2026-12-25",
    }
    listed = client.get(url).json()
    assert [(h["name"], h["start_date"], h["end_date"]) for h in listed] == [
        ("Christmas", "2026-12-25", "2026-12-25"),
        ("New year week", "2026-12-28", "2027-01-01"),
    ]
    assert [a for a, _ in audits(tenant)[-2:]] == ["holiday.added", "holiday.added"]
    assert audits(tenant)[-1][1] == {
        "brand_id": brand.pk,
        "name": "Christmas",
        "start_date": "2026-12-25",
        "end_date": "2026-12-25",
    }
    with tenant_context(tenant):
        calendar = brand_calendar(air(tenant))
    assert calendar.holidays == (
        (date(2026, 12, 25), date(2026, 12, 25)),
        (date(2026, 12, 28), date(2027, 1, 1)),
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (
            {"name": "Inverted", "start_date": "2026-12-26", "end_date": "2026-12-24"},
            "end_date",
        ),
        ({"name": "Same day", "start_date": "2026-12-24"}, "start_date"),
        (
            {"name": "Inside", "start_date": "2026-12-25", "end_date": "2026-12-25"},
            "start_date",
        ),
        (
            {"name": "Around", "start_date": "2026-12-20", "end_date": "2027-01-10"},
            "start_date",
        ),
        (
            {"name": "Tail", "start_date": "2026-12-26", "end_date": "2026-12-30"},
            "start_date",
        ),
        (
            {"name": "Head", "start_date": "2026-12-01", "end_date": "2026-12-24"},
            "start_date",
        ),
        (
            {"name": "Long", "start_date": "2027-01-01", "end_date": "2028-01-02"},
            "end_date",
        ),
        ({"name": " ", "start_date": "2027-01-01"}, "name"),
        ({"start_date": "2027-01-01"}, "name"),
        ({"name": "x" * 121, "start_date": "2027-01-01"}, "name"),
        ({"name": "Bad", "start_date": "2027-13-01"}, "start_date"),
        ({"name": "Bad", "start_date": "2027-01-01", "end_date": "soon"}, "end_date"),
        ({"name": "None"}, "start_date"),
    ],
)
def test_bad_or_overlapping_holidays_name_the_field_and_change_nothing(
    tenant: Tenant, admin: User, payload: dict[str, str], field: str
) -> None:
    brand = air(tenant)
    membership = membership_of(tenant, admin)
    with tenant_context(tenant):
        add_holiday(
            brand,
            membership=membership,
            name="Christmas",
            start_date=date(2026, 12, 24),
            end_date=date(2026, 12, 26),
        )
    before = state(tenant)
    response = session(admin).post(
        f"{base(tenant)}/brands/{brand.pk}/holidays/", payload, format="json"
    )
    assert response.status_code == 400, response.json()
    assert list(response.json()["fields"]) == [field]
    assert state(tenant) == before


def test_the_overlap_message_names_the_other_holiday(
    tenant: Tenant, admin: User
) -> None:
    brand = air(tenant)
    membership = membership_of(tenant, admin)
    with tenant_context(tenant):
        add_holiday(
            brand,
            membership=membership,
            name="Christmas",
            start_date=date(2026, 12, 24),
            end_date=date(2026, 12, 26),
        )
        before = holiday_rows(tenant)
        with pytest.raises(ValidationError) as error:
            add_holiday(
                brand,
                membership=membership,
                name="Boxing day",
                start_date=date(2026, 12, 26),
                end_date=date(2026, 12, 26),
            )
    assert error.value.message_dict == {
        "start_date": ["These dates overlap Christmas (2026-12-24 to 2026-12-26)."]
    }
    assert holiday_rows(tenant) == before


def test_touching_holidays_and_other_brands_holidays_do_not_overlap(
    tenant: Tenant, admin: User
) -> None:
    brand, cargo = air(tenant), make_brand(tenant, "Cargo")
    client = session(admin)
    for target, start, end in (
        (brand, "2026-12-24", "2026-12-26"),
        (brand, "2026-12-27", "2026-12-27"),
        (brand, "2026-12-20", "2026-12-23"),
        (cargo, "2026-12-25", "2026-12-25"),
    ):
        response = client.post(
            f"{base(tenant)}/brands/{target.pk}/holidays/",
            {"name": "Off", "start_date": start, "end_date": end},
            format="json",
        )
        assert response.status_code == 201, response.json()
    assert len(holiday_rows(tenant)) == 4


def test_an_admin_removes_a_holiday(tenant: Tenant, admin: User) -> None:
    brand, cargo = air(tenant), make_brand(tenant, "Cargo")
    client = token_client(tenant, admin, "admin")
    created = client.post(
        f"{base(tenant)}/brands/{brand.pk}/holidays/",
        {"name": "Christmas", "start_date": "2026-12-25"},
        format="json",
    ).json()
    before = state(tenant)
    # Under another brand of the same workspace, the id is unknown.
    wrong = client.delete(f"{base(tenant)}/brands/{cargo.pk}/holidays/{created['id']}/")
    assert wrong.status_code == 404
    assert state(tenant) == before
    url = f"{base(tenant)}/brands/{brand.pk}/holidays/{created['id']}/"
    removed = client.delete(url)
    assert removed.status_code == 204
    assert holiday_rows(tenant) == []
    assert audits(tenant)[-1] == (
        "holiday.removed",
        {
            "brand_id": brand.pk,
            "name": "Christmas",
            "start_date": "2026-12-25",
            "end_date": "2026-12-25",
        },
    )
    assert client.delete(url).status_code == 404


# --- Outsiders ------------------------------------------------------------------------


@pytest.mark.parametrize("caller", FOREIGN_CALLERS)
def test_outsiders_get_404_and_change_nothing(
    tenant: Tenant,
    admin: User,
    other_tenant: Tenant,
    outsider: User,
    caller: str,
) -> None:
    brand = air(tenant)
    with tenant_context(tenant):
        holiday = add_holiday(
            brand,
            membership=membership_of(tenant, admin),
            name="Christmas",
            start_date=date(2026, 12, 25),
            end_date=date(2026, 12, 25),
        )
    before = state(tenant)
    client = foreign_client(caller, other_tenant, outsider)
    policy = f"{base(tenant)}/brands/{brand.pk}/sla-policy/"
    holidays = f"{base(tenant)}/brands/{brand.pk}/holidays/"
    responses = [
        client.get(policy),
        client.put(policy, {"first_response_minutes": 1}, format="json"),
        client.delete(policy),
        client.get(f"{base(tenant)}/sla-policy/"),
        client.put(
            f"{base(tenant)}/sla-policy/", {"first_response_minutes": 1}, format="json"
        ),
        client.get(holidays),
        client.post(holidays, {"name": "x", "start_date": "2027-01-01"}, format="json"),
        client.delete(f"{holidays}{holiday.pk}/"),
    ]
    assert [r.status_code for r in responses] == [404] * 8
    assert all(b"Acme" not in r.content for r in responses)
    assert state(tenant) == before


def test_another_workspaces_brand_and_holiday_ids_are_404(
    tenant: Tenant, owner: User, other_tenant: Tenant, outsider: User
) -> None:
    with tenant_context(other_tenant):
        foreign_brand = Brand.objects.get()
        foreign_holiday = add_holiday(
            foreign_brand,
            membership=membership_of(other_tenant, outsider),
            name="Globex day",
            start_date=date(2027, 2, 2),
            end_date=date(2027, 2, 2),
        )
    before = (state(tenant), state(other_tenant))
    client = session(owner)
    own_brand = air(tenant)
    responses = [
        client.get(f"{base(tenant)}/brands/{foreign_brand.pk}/sla-policy/"),
        client.put(
            f"{base(tenant)}/brands/{foreign_brand.pk}/sla-policy/",
            {"first_response_minutes": 1},
            format="json",
        ),
        client.get(f"{base(tenant)}/brands/{foreign_brand.pk}/holidays/"),
        client.post(
            f"{base(tenant)}/brands/{foreign_brand.pk}/holidays/",
            {"name": "x", "start_date": "2027-01-01"},
            format="json",
        ),
        client.delete(
            f"{base(tenant)}/brands/{own_brand.pk}/holidays/{foreign_holiday.pk}/"
        ),
    ]
    assert [r.status_code for r in responses] == [404] * 5
    assert all(b"Globex" not in r.content for r in responses)
    assert (state(tenant), state(other_tenant)) == before
