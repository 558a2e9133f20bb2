"""Connected accounts and listening rules over the REST API.

Denials also assert that nothing changed.
"""

from typing import Any

import pytest

from social.models import ListeningRule, SocialAccount
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

pytestmark = pytest.mark.django_db(transaction=True)


def first_brand(tenant: Tenant) -> Brand:
    with tenant_context(tenant):
        return Brand.objects.order_by("id")[0]


def add_account(tenant: Tenant, platform: str, handle: str, **extra: Any) -> int:
    with tenant_context(tenant):
        return SocialAccount.objects.create(
            brand=Brand.objects.order_by("id")[0],
            platform=platform,
            external_id=f"{platform}-{handle}",
            handle=handle,
            **extra,
        ).pk


def add_rule(tenant: Tenant, name: str, query: str, brand: Brand | None = None) -> int:
    with tenant_context(tenant):
        return ListeningRule.objects.create(
            brand=brand or Brand.objects.order_by("id")[0], name=name, query=query
        ).pk


def rule_rows(tenant: Tenant) -> list[tuple[Any, ...]]:
    with tenant_context(tenant):
        return list(
            ListeningRule.objects.order_by("id").values_list(
                "brand_id",
                "name",
                "query",
                "platforms",
                "variants",
                "action",
                "enabled",
            )
        )


@pytest.fixture
def rule(tenant: Tenant) -> int:
    return add_rule(tenant, "Brand mentions", '"acme air" -job')


# --- accounts ---------------------------------------------------------------------


def test_accounts_show_status_and_capabilities(tenant: Tenant, viewer: User) -> None:
    sandbox = add_account(tenant, "sandbox", "acmeair")
    broken = add_account(
        tenant,
        "facebook",
        "acmeairfb",
        status=SocialAccount.Status.NEEDS_REAUTH,
        last_error="The Page token was revoked.",
    )
    reviews = add_account(tenant, "reviews", "acme-reviews")

    response = token_client(tenant, viewer, "read").get(f"{base(tenant)}/accounts/")

    assert response.status_code == 200
    rows = {row["id"]: row for row in response.json()}
    assert sorted(rows) == sorted([sandbox, broken, reviews])
    row = rows[sandbox]
    assert {k: v for k, v in row.items() if k != "created_at"} == {
        "id": sandbox,
        "platform": "sandbox",
        "handle": "acmeair",
        "display_name": "",
        "brand": {"id": first_brand(tenant).pk, "name": "Acme Air"},
        "purpose": "care",
        "status": "connected",
        "needs_reauth": False,
        "degraded": False,
        "degraded_since": None,
        "last_error": "",
        "capabilities": {
            "public_reply": True,
            "private_message": True,
            "private_reply_to_public": False,
            "start_private": True,
            "private_reply_window_seconds": None,
            "max_length": 500,
            "public_reply_needs_mention": False,
            "webhooks": True,
            "polling": True,
            "streaming": False,
        },
    }
    assert (rows[broken]["status"], rows[broken]["needs_reauth"]) == (
        "needs_reauth",
        True,
    )
    assert rows[broken]["last_error"] == "The Page token was revoked."
    assert rows[broken]["capabilities"]["private_reply_window_seconds"] == 24 * 3600
    assert rows[reviews]["capabilities"] is None


def test_an_account_is_read_by_id(tenant: Tenant, agent: User) -> None:
    account = add_account(tenant, "x", "acme")
    response = session(agent).get(f"{base(tenant)}/accounts/{account}/")
    assert response.status_code == 200
    body = response.json()
    assert (body["platform"], body["handle"]) == ("x", "acme")
    assert body["capabilities"]["public_reply_needs_mention"] is True
    assert body["capabilities"]["max_length"] == 280


def test_accounts_are_read_only(tenant: Tenant, owner: User) -> None:
    account = add_account(tenant, "sandbox", "acmeair")
    client = token_client(tenant, owner, "admin")
    for method, path in (
        ("post", "accounts/"),
        ("patch", f"accounts/{account}/"),
        ("delete", f"accounts/{account}/"),
    ):
        response = getattr(client, method)(
            f"{base(tenant)}/{path}", {"status": "revoked"}, format="json"
        )
        assert response.status_code == 405, path
        assert response.json()["code"] == "method_not_allowed"
    with tenant_context(tenant):
        assert SocialAccount.objects.get(pk=account).status == "connected"


# --- listening rules: CRUD ------------------------------------------------------------


def test_members_list_and_read_rules(tenant: Tenant, viewer: User, rule: int) -> None:
    cargo = make_brand(tenant, "Cargo")
    other = add_rule(tenant, "Cargo mentions", "acmecargo", cargo)
    client = token_client(tenant, viewer, "read")
    listed = client.get(f"{base(tenant)}/listening-rules/")
    only_cargo = client.get(f"{base(tenant)}/listening-rules/?brand={cargo.pk}")
    detail = client.get(f"{base(tenant)}/listening-rules/{rule}/")

    assert listed.status_code == only_cargo.status_code == detail.status_code == 200
    assert [r["id"] for r in listed.json()] == [rule, other]
    assert [r["id"] for r in only_cargo.json()] == [other]
    body = detail.json()
    assert {k: v for k, v in body.items() if k != "updated_at"} == {
        "id": rule,
        "brand": {"id": first_brand(tenant).pk, "name": "Acme Air"},
        "name": "Brand mentions",
        "query": '"acme air" -job',
        "platforms": [],
        "variants": {},
        "action": "inbox",
        "enabled": True,
        "competitor": False,
    }


def test_an_admin_creates_changes_and_deletes_a_rule(
    tenant: Tenant, admin: User
) -> None:
    brand = first_brand(tenant)
    client = token_client(tenant, admin, "admin")
    created = client.post(
        f"{base(tenant)}/listening-rules/",
        {
            "brand_id": brand.pk,
            "name": " Refunds ",
            "query": "refund* NEAR/3 (acme OR #acmeair)",
            "platforms": ["x", "sandbox", "x"],
            "variants": {"acme": ["akme"]},
            "action": "feed",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    rule = created.json()["id"]
    assert rule_rows(tenant) == [
        (
            brand.pk,
            "Refunds",
            "refund* NEAR/3 (acme OR #acmeair)",
            ["x", "sandbox"],
            {"acme": ["akme"]},
            "feed",
            True,
        )
    ]
    with tenant_context(tenant):
        stamp = ListeningRule.objects.get(pk=rule).updated_at

    changed = client.patch(
        f"{base(tenant)}/listening-rules/{rule}/",
        {"query": "refund*", "enabled": False, "platforms": []},
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    assert rule_rows(tenant) == [
        (brand.pk, "Refunds", "refund*", [], {"acme": ["akme"]}, "feed", False)
    ]
    with tenant_context(tenant):
        assert ListeningRule.objects.get(pk=rule).updated_at > stamp

    deleted = client.delete(f"{base(tenant)}/listening-rules/{rule}/")
    assert deleted.status_code == 204
    assert rule_rows(tenant) == []


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"query": "(acme"}, "query", "(at character 5)"),
        ({"query": 'acme "air'}, "query", "opened at character 5"),
        ({"query": "-job"}, "query", "too broad"),
        ({"query": "acme OR"}, "query", "(at character 7)"),
        ({"query": ""}, "query", "may not be blank"),
        ({"query": "x" * 2001}, "query", "no more than 2000"),
        ({"name": ""}, "name", "may not be blank"),
        ({"name": "x" * 81}, "name", "no more than 80"),
        ({"platforms": ["myspace"]}, "platforms", "not a valid choice"),
        ({"platforms": "x"}, "platforms", "list"),
        ({"action": "shout"}, "action", "not a valid choice"),
        ({"variants": {"acme": "akme"}}, "variants", "list"),
        ({"variants": {"acme": ["!!"]}}, "variants", "has no words"),
        ({"variants": {"!!": ["akme"]}}, "variants", "has no words"),
        ({"variants": {f"k{n}": ["v"] for n in range(51)}}, "variants", "At most 50"),
        ({"enabled": "sometimes"}, "enabled", "valid boolean"),
        ({"brand_id": "abc"}, "brand_id", "valid integer"),
        ({"brand_id": 10**12}, "brand_id", "No such brand"),
    ],
)
def test_bad_rule_input_names_the_field(
    tenant: Tenant,
    admin: User,
    rule: int,
    payload: dict[str, Any],
    field: str,
    message: str,
) -> None:
    before = rule_rows(tenant)
    client = session(admin)
    created = client.post(
        f"{base(tenant)}/listening-rules/",
        {"brand_id": first_brand(tenant).pk, "name": "n", "query": "acme", **payload},
        format="json",
    )
    changed = client.patch(
        f"{base(tenant)}/listening-rules/{rule}/", payload, format="json"
    )
    for response in (created, changed):
        assert response.status_code == 400, response.json()
        body = response.json()
        assert list(body["fields"]) == [field]
        assert message in body["fields"][field][0], body
    assert rule_rows(tenant) == before


def test_new_variants_are_checked_against_the_stored_query(
    tenant: Tenant, admin: User
) -> None:
    rule = add_rule(tenant, "r", '"acme air"')
    before = rule_rows(tenant)
    response = session(admin).patch(
        f"{base(tenant)}/listening-rules/{rule}/",
        {"variants": {"acme air": ["!!!"]}},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["variants"]
    assert rule_rows(tenant) == before


def test_another_workspaces_brand_is_a_field_error(
    tenant: Tenant, admin: User, other_tenant: Tenant, rule: int
) -> None:
    globex = first_brand(other_tenant)
    before = (rule_rows(tenant), rule_rows(other_tenant))
    client = session(admin)
    created = client.post(
        f"{base(tenant)}/listening-rules/",
        {"brand_id": globex.pk, "name": "x", "query": "acme"},
        format="json",
    )
    moved = client.patch(
        f"{base(tenant)}/listening-rules/{rule}/",
        {"brand_id": globex.pk},
        format="json",
    )
    for response in (created, moved):
        assert response.status_code == 400
        assert response.json()["fields"] == {
            "brand_id": ["No such brand in this workspace."]
        }
        assert b"Globex" not in response.content
    assert (rule_rows(tenant), rule_rows(other_tenant)) == before


@pytest.mark.parametrize("persona", ["agent", "viewer"])
def test_agents_and_viewers_cannot_manage_rules(
    tenant: Tenant, rule: int, persona: str, request: pytest.FixtureRequest
) -> None:
    before = rule_rows(tenant)
    client = session(request.getfixturevalue(persona))
    for method, path, payload in _writes(tenant, rule):
        response = getattr(client, method)(path, payload, format="json")
        assert response.status_code == 403, (method, path)
        assert response.json()["code"] == "permission_denied"
    assert rule_rows(tenant) == before


def test_a_write_token_cannot_manage_rules(
    tenant: Tenant, admin: User, rule: int
) -> None:
    before = rule_rows(tenant)
    client = token_client(tenant, admin, "write")
    for method, path, payload in _writes(tenant, rule):
        response = getattr(client, method)(path, payload, format="json")
        assert response.status_code == 403, (method, path)
        assert response.json()["code"] == "scope_missing"
    assert rule_rows(tenant) == before


def _writes(tenant: Tenant, rule: int) -> list[tuple[str, str, Any]]:
    url = f"{base(tenant)}/listening-rules/"
    return [
        ("post", url, {"brand_id": first_brand(tenant).pk, "name": "x", "query": "y"}),
        ("patch", f"{url}{rule}/", {"name": "x"}),
        ("delete", f"{url}{rule}/", None),
    ]


# --- listening rules: try a query ---------------------------------------------


@pytest.mark.parametrize(
    ("payload", "matches", "terms"),
    [
        (
            {"query": '"acme air" -job', "text": "Acme Air lost my bag"},
            True,
            ["acme air"],
        ),
        (
            {"query": '"acme air" -job', "text": "Acme Air job openings"},
            False,
            ["acme air", "job"],
        ),
        ({"query": "refund*", "text": "Refunds take ages"}, True, ["refund"]),
        (
            {"query": "acme platform:x", "text": "acme", "platform": "sandbox"},
            False,
            ["acme"],
        ),
        ({"query": "acme lang:fr", "text": "acme", "lang": "fr-CA"}, True, ["acme"]),
        (
            {"query": "acme -author:acmeair", "text": "acme", "author": "@AcmeAir"},
            False,
            ["acme"],
        ),
        (
            {"query": "acme", "text": "akme is late", "variants": {"acme": ["akme"]}},
            True,
            ["akme"],
        ),
        ({"query": "acme", "text": "nothing here"}, False, []),
    ],
)
def test_a_query_is_tried_on_a_sample_post(
    tenant: Tenant,
    viewer: User,
    payload: dict[str, Any],
    matches: bool,
    terms: list[str],
) -> None:
    before = rule_rows(tenant)
    response = token_client(tenant, viewer, "read").post(
        f"{base(tenant)}/listening-rules/test/", payload, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json() == {"matches": matches, "terms": terms}
    assert rule_rows(tenant) == before


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"text": "acme"}, "query"),
        ({"query": "(acme", "text": "acme"}, "query"),
        ({"query": "acme"}, "text"),
        ({"query": "acme", "text": "acme", "platform": "myspace"}, "platform"),
        ({"query": "acme", "text": "acme", "lang": "english please"}, "lang"),
        ({"query": "acme", "text": "acme", "author": "x" * 129}, "author"),
        ({"query": "acme", "text": "acme", "variants": ["akme"]}, "variants"),
        ({"query": "acme", "text": "acme", "variants": {"acme": ["!"]}}, "variants"),
        ({"query": "acme", "text": "x" * 10001}, "text"),
    ],
)
def test_bad_trial_input_names_the_field(
    tenant: Tenant, agent: User, payload: dict[str, Any], field: str
) -> None:
    response = session(agent).post(
        f"{base(tenant)}/listening-rules/test/", payload, format="json"
    )
    assert response.status_code == 400, response.json()
    assert list(response.json()["fields"]) == [field]


def test_a_syntax_error_names_its_position(tenant: Tenant, agent: User) -> None:
    response = session(agent).post(
        f"{base(tenant)}/listening-rules/test/",
        {"query": "acme AND (air OR", "text": "acme"},
        format="json",
    )
    assert response.status_code == 400
    [message] = response.json()["fields"]["query"]
    assert message.endswith("(at character 16)")


# --- tenancy ------------------------------------------------------------------------


def _calls(tenant: Tenant, account: int, rule: int) -> list[tuple[str, str, Any]]:
    url = f"{base(tenant)}/"
    return [
        ("get", f"{url}accounts/", None),
        ("get", f"{url}accounts/{account}/", None),
        ("get", f"{url}listening-rules/", None),
        ("get", f"{url}listening-rules/{rule}/", None),
        ("post", f"{url}listening-rules/test/", {"query": "acme", "text": "acme"}),
        *_writes(tenant, rule),
    ]


@pytest.mark.parametrize("caller", FOREIGN_CALLERS)
def test_another_workspaces_callers_get_404_and_change_nothing(
    tenant: Tenant, outsider: User, other_tenant: Tenant, rule: int, caller: str
) -> None:
    account = add_account(tenant, "sandbox", "acmeair")
    before = rule_rows(tenant)
    client = foreign_client(caller, other_tenant, outsider)
    for method, path, payload in _calls(tenant, account, rule):
        response = getattr(client, method)(path, payload, format="json")
        assert response.status_code == 404, (method, path)
        assert b"Acme" not in response.content
    assert rule_rows(tenant) == before


def test_another_workspaces_account_and_rule_ids_are_404(
    tenant: Tenant, owner: User, other_tenant: Tenant
) -> None:
    account = add_account(other_tenant, "sandbox", "globex")
    theirs = add_rule(other_tenant, "Globex mentions", "globex")
    before = rule_rows(other_tenant)
    client = token_client(tenant, owner, "admin")
    for method, path in (
        ("get", f"accounts/{account}/"),
        ("get", f"listening-rules/{theirs}/"),
        ("patch", f"listening-rules/{theirs}/"),
        ("delete", f"listening-rules/{theirs}/"),
    ):
        response = getattr(client, method)(
            f"{base(tenant)}/{path}", {"name": "Pwned"}, format="json"
        )
        assert response.status_code == 404, path
        assert b"Globex" not in response.content
    assert rule_rows(other_tenant) == before
