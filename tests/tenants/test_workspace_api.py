"""The workspace over the REST API: brands, members and API tokens.

Denials also assert that nothing changed.
"""

from typing import Any

import pytest
from rest_framework.test import APIClient

from tenants.api_tokens import create_api_token
from tenants.context import tenant_context
from tenants.models import ApiToken, AuditEvent, Brand, Tenant, User
from tests.api_clients import (
    FOREIGN_CALLERS,
    base,
    foreign_client,
    session,
    token_client,
)
from tests.factories import membership_of

pytestmark = pytest.mark.django_db(transaction=True)

SETTINGS = (
    "name",
    "slug",
    "timezone",
    "business_hours",
    "public_reply_limit",
    "send_hold_seconds",
    "private_first_allowed",
    "signature_rules",
    "auto_assign",
    "pause_while_pending",
    "queue_window_minutes",
    "publish_badge",
    "sla_digest",
)


def brand_rows(tenant: Tenant) -> list[dict[str, Any]]:
    with tenant_context(tenant):
        return list(Brand.objects.order_by("id").values(*SETTINGS))


def audit_actions(tenant: Tenant) -> list[str]:
    with tenant_context(tenant):
        return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def first_brand(tenant: Tenant) -> Brand:
    with tenant_context(tenant):
        return Brand.objects.order_by("id")[0]


def token_rows(tenant: Tenant) -> list[tuple[str, str, bool]]:
    with tenant_context(tenant):
        return [
            (name, scope, revoked is not None)
            for name, scope, revoked in ApiToken.objects.order_by("id").values_list(
                "name", "scope", "revoked_at"
            )
        ]


def make_token(tenant: Tenant, user: User, name: str, scope: str = "read") -> int:
    with tenant_context(tenant):
        token, _ = create_api_token(membership_of(tenant, user), name=name, scope=scope)
    return token.pk


# --- brands -----------------------------------------------------------------------


def test_members_list_brands_with_their_settings(tenant: Tenant, viewer: User) -> None:
    response = token_client(tenant, viewer, "read").get(f"{base(tenant)}/brands/")
    assert response.status_code == 200
    [row] = response.json()
    assert {k: v for k, v in row.items() if k not in {"id", "created_at"}} == {
        "name": "Acme Air",
        "slug": "acme-air",
        "timezone": "UTC",
        "business_hours": {
            **{day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu")},
            "fri": [["09:00", "17:00"]],
            "sat": [],
            "sun": [],
        },
        "public_reply_limit": 2,
        "send_hold_seconds": 20,
        "private_first_allowed": False,
        "signature_rules": {},
        "auto_assign": True,
        "pause_while_pending": True,
        "queue_window_minutes": 5,
        "publish_badge": False,
        "sla_digest": False,
        "spike_alerts": True,
        "spike_threshold": 5,
        "spike_min_count": 10,
        "spreading_threshold": 60,
    }
    detail = session(viewer).get(f"{base(tenant)}/brands/{row['id']}/")
    assert detail.status_code == 200
    assert detail.json() == row


def test_an_admin_adds_a_brand_with_settings(tenant: Tenant, admin: User) -> None:
    response = token_client(tenant, admin, "admin").post(
        f"{base(tenant)}/brands/",
        {
            "name": " Acme Cargo ",
            "timezone": "Europe/Paris",
            "send_hold_seconds": 0,
            "public_reply_limit": 3,
            "signature_rules": {"x": " ^{initials}"},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["slug"], body["timezone"]) == (
        "Acme Cargo",
        "acme-cargo",
        "Europe/Paris",
    )
    assert (body["send_hold_seconds"], body["public_reply_limit"]) == (0, 3)
    assert brand_rows(tenant)[1]["signature_rules"] == {"x": " ^{initials}"}
    assert audit_actions(tenant)[-1] == "brand.created"


def test_an_admin_changes_brand_settings(tenant: Tenant, admin: User) -> None:
    brand = first_brand(tenant)
    changes = {
        "name": "Acme Airlines",
        "timezone": "America/New_York",
        "business_hours": {"mon": [["08:00", "12:00"], ["13:00", "24:00"]]},
        "public_reply_limit": 1,
        "send_hold_seconds": 120,
        "private_first_allowed": True,
        "signature_rules": {"default": " - {first_name}", "x": "^{initials}"},
        "auto_assign": False,
        "pause_while_pending": False,
        "queue_window_minutes": 0,
        "publish_badge": True,
        "sla_digest": True,
    }
    response = session(admin).patch(
        f"{base(tenant)}/brands/{brand.pk}/", changes, format="json"
    )
    assert response.status_code == 200, response.json()
    assert brand_rows(tenant) == [{**changes, "slug": "acme-air"}]
    with tenant_context(tenant):
        audit = AuditEvent.objects.filter(action="brand.updated").get()
    assert sorted(audit.data["fields"]) == sorted(changes)


def test_an_unchanged_patch_writes_nothing(tenant: Tenant, admin: User) -> None:
    brand = first_brand(tenant)
    before = audit_actions(tenant)
    response = session(admin).patch(
        f"{base(tenant)}/brands/{brand.pk}/", {"send_hold_seconds": 20}, format="json"
    )
    assert response.status_code == 200
    assert audit_actions(tenant) == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "  "}, "name"),
        ({"name": "x" * 121}, "name"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"send_hold_seconds": 121}, "send_hold_seconds"),
        ({"send_hold_seconds": -1}, "send_hold_seconds"),
        ({"public_reply_limit": 0}, "public_reply_limit"),
        ({"public_reply_limit": 11}, "public_reply_limit"),
        ({"queue_window_minutes": -1}, "queue_window_minutes"),
        ({"queue_window_minutes": 61}, "queue_window_minutes"),
        ({"queue_window_minutes": 2.5}, "queue_window_minutes"),
        ({"queue_window_minutes": 2**40}, "queue_window_minutes"),
        ({"pause_while_pending": "sometimes"}, "pause_while_pending"),
        ({"publish_badge": None}, "publish_badge"),
        ({"sla_digest": [True]}, "sla_digest"),
        ({"spike_alerts": "maybe"}, "spike_alerts"),
        ({"spike_threshold": 1}, "spike_threshold"),
        ({"spike_threshold": 21}, "spike_threshold"),
        ({"spike_min_count": 0}, "spike_min_count"),
        ({"spike_min_count": 10001}, "spike_min_count"),
        ({"timezone": "Europe/Pariss"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"business_hours": {"funday": []}}, "business_hours"),
        ({"business_hours": {"mon": "all day"}}, "business_hours"),
        ({"business_hours": {"mon": [["9:00", "17:00"]]}}, "business_hours"),
        ({"business_hours": {"mon": [["17:00", "09:00"]]}}, "business_hours"),
        ({"business_hours": {"mon": [["09:00"]]}}, "business_hours"),
        (
            {"business_hours": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}},
            "business_hours",
        ),
        ({"business_hours": ["mon"]}, "business_hours"),
        ({"signature_rules": {"x": " ^{nickname}"}}, "signature_rules"),
        ({"signature_rules": {"x": " ^{initials"}}, "signature_rules"),
        ({"signature_rules": {"x": "{initials.__class__}"}}, "signature_rules"),
        ({"signature_rules": {"X Y": " ^{initials}"}}, "signature_rules"),
        ({"signature_rules": {"x": "y" * 101}}, "signature_rules"),
        ({"signature_rules": "^{initials}"}, "signature_rules"),
        ({"auto_assign": "perhaps"}, "auto_assign"),
        ({"private_first_allowed": None}, "private_first_allowed"),
    ],
)
def test_bad_brand_settings_name_the_field(
    tenant: Tenant, admin: User, changes: dict[str, Any], field: str
) -> None:
    brand = first_brand(tenant)
    before = (brand_rows(tenant), audit_actions(tenant))
    response = session(admin).patch(
        f"{base(tenant)}/brands/{brand.pk}/", changes, format="json"
    )
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == "invalid"
    assert list(body["fields"]) == [field]
    assert body["fields"][field][0]
    assert (brand_rows(tenant), audit_actions(tenant)) == before


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "Cargo", "timezone": "Nowhere"}, "timezone"),
        ({"name": "Cargo", "send_hold_seconds": 500}, "send_hold_seconds"),
        ({"name": "Cargo", "business_hours": {"mon": [["x", "y"]]}}, "business_hours"),
    ],
)
def test_bad_new_brands_name_the_field(
    tenant: Tenant, admin: User, payload: dict[str, Any], field: str
) -> None:
    before = (brand_rows(tenant), audit_actions(tenant))
    response = session(admin).post(f"{base(tenant)}/brands/", payload, format="json")
    assert response.status_code == 400, response.json()
    assert list(response.json()["fields"]) == [field]
    assert (brand_rows(tenant), audit_actions(tenant)) == before


@pytest.mark.parametrize("persona", ["agent", "viewer"])
def test_agents_and_viewers_cannot_manage_brands(
    tenant: Tenant, persona: str, request: pytest.FixtureRequest
) -> None:
    brand = first_brand(tenant)
    before = brand_rows(tenant)
    client = session(request.getfixturevalue(persona))
    created = client.post(f"{base(tenant)}/brands/", {"name": "x"}, format="json")
    changed = client.patch(
        f"{base(tenant)}/brands/{brand.pk}/", {"name": "x"}, format="json"
    )
    assert (created.status_code, changed.status_code) == (403, 403)
    assert changed.json()["code"] == "permission_denied"
    assert brand_rows(tenant) == before


def test_a_write_token_cannot_manage_brands(tenant: Tenant, admin: User) -> None:
    brand = first_brand(tenant)
    before = brand_rows(tenant)
    client = token_client(tenant, admin, "write")
    created = client.post(f"{base(tenant)}/brands/", {"name": "x"}, format="json")
    changed = client.patch(
        f"{base(tenant)}/brands/{brand.pk}/", {"name": "x"}, format="json"
    )
    for response in (created, changed):
        assert response.status_code == 403
        assert response.json()["code"] == "scope_missing"
    assert brand_rows(tenant) == before


# --- members ----------------------------------------------------------------------


def test_members_are_listed_owners_first(
    tenant: Tenant, owner: User, admin: User, agent: User, viewer: User
) -> None:
    response = token_client(tenant, viewer, "read").get(f"{base(tenant)}/members/")
    assert response.status_code == 200
    assert [(m["name"], m["email"], m["role"]) for m in response.json()] == [
        ("Olivia", "olivia@acme.example", "owner"),
        ("Ada", "ada@acme.example", "admin"),
        ("Andy", "andy@acme.example", "agent"),
        ("Vera", "vera@acme.example", "viewer"),
    ]
    by_email = {m["email"]: m for m in response.json()}
    assert by_email["andy@acme.example"]["user_id"] == agent.pk
    assert by_email["andy@acme.example"]["id"] == membership_of(tenant, agent).pk


# --- API tokens -------------------------------------------------------------------


def test_members_see_their_own_tokens_and_admins_everyones(
    tenant: Tenant, admin: User, agent: User
) -> None:
    mine = make_token(tenant, agent, "Andy's CRM")
    theirs = make_token(tenant, admin, "Ada's BI", "admin")

    own = session(agent).get(f"{base(tenant)}/tokens/")
    everyone = session(admin).get(f"{base(tenant)}/tokens/")

    assert own.status_code == everyone.status_code == 200
    assert [t["id"] for t in own.json()] == [mine]
    assert [t["id"] for t in everyone.json()] == [theirs, mine]
    row = own.json()[0]
    assert set(row) == {
        "id",
        "name",
        "prefix",
        "scope",
        "member",
        "created_at",
        "last_used_at",
        "revoked_at",
    }
    assert (row["name"], row["scope"], row["revoked_at"]) == (
        "Andy's CRM",
        "read",
        None,
    )
    assert row["member"]["email"] == "andy@acme.example"
    with tenant_context(tenant):
        digest = ApiToken.objects.get(pk=mine).digest
    assert digest not in everyone.content.decode()


def test_a_new_token_is_shown_once_and_works(tenant: Tenant, agent: User) -> None:
    created = session(agent).post(
        f"{base(tenant)}/tokens/", {"name": "Zapier", "scope": "write"}, format="json"
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    raw = body["token"]
    assert raw.startswith(f"esk_{body['prefix']}_")
    assert (body["name"], body["scope"]) == ("Zapier", "write")
    listed = session(agent).get(f"{base(tenant)}/tokens/")
    assert raw not in listed.content.decode()
    assert "token" not in listed.json()[0]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get(f"{base(tenant)}/brands/").status_code == 200


def test_token_callers_need_the_admin_scope_for_tokens(
    tenant: Tenant, admin: User
) -> None:
    target = make_token(tenant, admin, "victim")
    writer = token_client(tenant, admin, "write")
    before = token_rows(tenant)
    for method, path, payload in (
        ("get", "tokens/", None),
        ("post", "tokens/", {"name": "x", "scope": "read"}),
        ("post", f"tokens/{target}/revoke/", None),
    ):
        response = getattr(writer, method)(
            f"{base(tenant)}/{path}", payload, format="json"
        )
        assert response.status_code == 403, path
        assert response.json()["code"] == "scope_missing"
    assert token_rows(tenant) == before

    boss = token_client(tenant, admin, "admin")
    created = boss.post(
        f"{base(tenant)}/tokens/", {"name": "x", "scope": "read"}, format="json"
    )
    assert created.status_code == 201
    assert boss.post(f"{base(tenant)}/tokens/{target}/revoke/").status_code == 200


@pytest.mark.parametrize(
    ("persona", "scope"), [("agent", "admin"), ("viewer", "write")]
)
def test_a_scope_above_the_role_is_refused(
    tenant: Tenant, persona: str, scope: str, request: pytest.FixtureRequest
) -> None:
    response = session(request.getfixturevalue(persona)).post(
        f"{base(tenant)}/tokens/", {"name": "x", "scope": scope}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert token_rows(tenant) == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"scope": "read"}, "name"),
        ({"name": " ", "scope": "read"}, "name"),
        ({"name": "x" * 81, "scope": "read"}, "name"),
        ({"name": "x"}, "scope"),
        ({"name": "x", "scope": "root"}, "scope"),
    ],
)
def test_bad_token_input_names_the_field(
    tenant: Tenant, agent: User, payload: dict[str, Any], field: str
) -> None:
    response = session(agent).post(f"{base(tenant)}/tokens/", payload, format="json")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    assert token_rows(tenant) == []


def test_a_member_revokes_their_own_token(tenant: Tenant, agent: User) -> None:
    with tenant_context(tenant):
        token, raw = create_api_token(
            membership_of(tenant, agent), name="old", scope="read"
        )
    client = session(agent)
    url = f"{base(tenant)}/tokens/{token.pk}/revoke/"
    first = client.post(url)
    again = client.post(url)
    assert first.status_code == again.status_code == 200
    assert first.json()["revoked_at"] is not None
    assert again.json()["revoked_at"] == first.json()["revoked_at"]
    assert audit_actions(tenant).count("api_token.revoked") == 1
    used = APIClient()
    used.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert used.get(f"{base(tenant)}/brands/").status_code == 404


def test_others_tokens_are_404_to_non_admins_and_revocable_by_admins(
    tenant: Tenant, agent: User, viewer: User, admin: User
) -> None:
    andys = make_token(tenant, agent, "Andy's")
    before = token_rows(tenant)
    refused = session(viewer).post(f"{base(tenant)}/tokens/{andys}/revoke/")
    assert refused.status_code == 404
    assert token_rows(tenant) == before
    revoked = session(admin).post(f"{base(tenant)}/tokens/{andys}/revoke/")
    assert revoked.status_code == 200
    assert token_rows(tenant) == [("Andy's", "read", True)]


# --- tenancy ----------------------------------------------------------------------


def _calls(brand: int, token: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("get", "brands/", None),
        ("post", "brands/", {"name": "Pwned"}),
        ("get", f"brands/{brand}/", None),
        ("patch", f"brands/{brand}/", {"name": "Pwned"}),
        ("get", "members/", None),
        ("get", "tokens/", None),
        ("post", "tokens/", {"name": "Pwned", "scope": "read"}),
        ("post", f"tokens/{token}/revoke/", None),
    ]


@pytest.mark.parametrize("caller", FOREIGN_CALLERS)
def test_another_workspaces_callers_get_404_and_change_nothing(
    tenant: Tenant, owner: User, outsider: User, other_tenant: Tenant, caller: str
) -> None:
    token = make_token(tenant, owner, "Olivia's")
    client = foreign_client(caller, other_tenant, outsider)
    before = (brand_rows(tenant), token_rows(tenant), audit_actions(tenant))
    for method, path, payload in _calls(first_brand(tenant).pk, token):
        response = getattr(client, method)(
            f"{base(tenant)}/{path}", payload, format="json"
        )
        assert response.status_code == 404, path
        assert b"Acme" not in response.content
    assert (brand_rows(tenant), token_rows(tenant), audit_actions(tenant)) == before


def test_another_workspaces_brand_and_token_ids_are_404(
    tenant: Tenant, owner: User, outsider: User, other_tenant: Tenant
) -> None:
    theirs = make_token(other_tenant, outsider, "Charlie's")
    before = (brand_rows(other_tenant), token_rows(other_tenant))
    client = token_client(tenant, owner, "admin")
    for method, path, payload in _calls(first_brand(other_tenant).pk, theirs)[2:]:
        if str(first_brand(other_tenant).pk) not in path and str(theirs) not in path:
            continue
        response = getattr(client, method)(
            f"{base(tenant)}/{path}", payload, format="json"
        )
        assert response.status_code == 404, path
        assert b"Globex" not in response.content
    assert (brand_rows(other_tenant), token_rows(other_tenant)) == before
