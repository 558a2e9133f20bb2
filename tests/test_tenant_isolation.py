"""The cross-tenant IDOR matrix over every tenant-scoped route (tenancy.md §8.2).

Every URL pattern with a `tenant_slug`, and every URL of the tenant admin site, has
an entry in ROUTES. Two sweeps run over them:
- the outsider (a member of Globex only) calls Acme Air's URLs with Acme's ids;
- Acme's owner calls Acme's URLs with Globex's ids.
Both must give 404 and change nothing. `test_all_routes_are_in_the_matrix` fails
when a new route has no entry.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from helpdesk.models import Contact, Conversation, SavedReply, Tag
from social.models import ListeningRule, SocialAccount
from tenants.admin import tenant_admin_site
from tenants.context import tenant_context
from tenants.models import AuditEvent, Brand, Invitation, Membership, Tenant, User
from tenants.services import invite_member
from tests.conftest import login
from tests.factories import add_member, make_user, membership_of

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class World:
    a: Tenant
    b: Tenant
    ids: dict[str, dict[str, int]]  # tenant key -> object kind -> id


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    data: dict[str, str] | None = None


Paths = Callable[[str, dict[str, int]], list[Call]]


def _frontend() -> dict[str, Paths]:
    return {
        "frontend:workspace": lambda s, i: [Call("get", f"/t/{s}/")],
        "frontend:members": lambda s, i: [
            Call("get", f"/t/{s}/settings/members/"),
            Call(
                "post",
                f"/t/{s}/settings/members/",
                {"email": "x@x.example", "role": "admin"},
            ),
        ],
        "frontend:member-role": lambda s, i: [
            Call(
                "post",
                f"/t/{s}/settings/members/{i['member']}/role/",
                {"role": "viewer"},
            )
        ],
        "frontend:member-remove": lambda s, i: [
            Call("post", f"/t/{s}/settings/members/{i['member']}/remove/")
        ],
        "frontend:invitation-revoke": lambda s, i: [
            Call("post", f"/t/{s}/settings/invitations/{i['invitation']}/revoke/")
        ],
        "frontend:brands": lambda s, i: [
            Call("get", f"/t/{s}/settings/brands/"),
            Call(
                "post",
                f"/t/{s}/settings/brands/",
                {"name": "Planted", "timezone": "UTC"},
            ),
        ],
        "frontend:accounts": lambda s, i: [Call("get", f"/t/{s}/settings/accounts/")],
        "social:connect": lambda s, i: [
            Call("get", f"/t/{s}/social/connect/sandbox/?brand={i['brand']}")
        ],
        "frontend:workspace-delete": lambda s, i: [
            Call("get", f"/t/{s}/settings/workspace/delete/"),
            Call("post", f"/t/{s}/settings/workspace/delete/", {"confirm_name": "x"}),
        ],
    }


ADMIN_OBJECTS = {
    "tenants_brand": "brand",
    "tenants_membership": "member",
    "tenants_invitation": "invitation",
    "tenants_auditevent": "audit",
    "tenants_user": "user",
    "helpdesk_savedreply": "saved_reply",
    "helpdesk_tag": "tag",
    "helpdesk_contact": "contact",
    "helpdesk_conversation": "conversation",
    "social_listeningrule": "listening_rule",
    "social_socialaccount": "social_account",
}


def _admin() -> dict[str, Paths]:
    routes: dict[str, Paths] = {
        "tenant_admin:index": lambda s, i: [Call("get", f"/t/{s}/admin/")],
        "tenant_admin:login": lambda s, i: [Call("get", f"/t/{s}/admin/login/")],
        "tenant_admin:logout": lambda s, i: [Call("post", f"/t/{s}/admin/logout/")],
        "tenant_admin:password_change": lambda s, i: [
            Call("get", f"/t/{s}/admin/password_change/")
        ],
        "tenant_admin:password_change_done": lambda s, i: [
            Call("get", f"/t/{s}/admin/password_change/done/")
        ],
        "tenant_admin:jsi18n": lambda s, i: [Call("get", f"/t/{s}/admin/jsi18n/")],
        "tenant_admin:app_list": lambda s, i: [
            Call("get", f"/t/{s}/admin/tenants/"),
            Call("get", f"/t/{s}/admin/helpdesk/"),
            Call("get", f"/t/{s}/admin/social/"),
        ],
        "tenant_admin:view_on_site": lambda s, i: [
            Call("get", f"/t/{s}/admin/r/1/{i['brand']}/")
        ],
        "tenant_admin:autocomplete": lambda s, i: [
            Call(
                "get",
                f"/t/{s}/admin/autocomplete/?app_label=tenants&model_name=membership"
                "&field_name=user&term=",
            ),
            Call(
                "get",
                f"/t/{s}/admin/autocomplete/?app_label=helpdesk&model_name=savedreply"
                "&field_name=brand&term=",
            ),
        ],
        "tenant_admin:<catch-all>": lambda s, i: [
            Call("get", f"/t/{s}/admin/nothing/")
        ],
    }
    for table, kind in ADMIN_OBJECTS.items():
        base = "/t/{s}/admin/" + table.replace("_", "/", 1) + "/"

        def paths(action: str, base: str = base, kind: str = kind) -> Paths:
            def build(s: str, i: dict[str, int]) -> list[Call]:
                root = base.format(s=s)
                return {
                    "changelist": [Call("get", root)],
                    "add": [
                        Call("get", f"{root}add/"),
                        Call("post", f"{root}add/", {}),
                    ],
                    "change": [
                        Call("get", f"{root}{i[kind]}/change/"),
                        Call("post", f"{root}{i[kind]}/change/", {"role": "viewer"}),
                    ],
                    "delete": [
                        Call("get", f"{root}{i[kind]}/delete/"),
                        Call("post", f"{root}{i[kind]}/delete/", {"post": "yes"}),
                    ],
                    "history": [Call("get", f"{root}{i[kind]}/history/")],
                    "redirect": [Call("get", f"{root}{i[kind]}/")],
                }[action]

            return build

        for action in ("changelist", "add", "change", "delete", "history"):
            routes[f"tenant_admin:{table}_{action}"] = paths(action)
        routes[f"tenant_admin:{table}<redirect>"] = paths("redirect")
    return routes


ROUTES: dict[str, Paths] = _frontend() | _admin()


def _walk(patterns: list[Any], prefix: str, namespace: str) -> list[tuple[str, str]]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            ns = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            found += _walk(pattern.url_patterns, prefix + str(pattern.pattern), ns)
        elif isinstance(pattern, URLPattern):
            found.append(
                (prefix + str(pattern.pattern), namespace + (pattern.name or ""))
            )
    return found


def tenant_route_names() -> set[str]:
    names = {
        name
        for route, name in _walk(get_resolver().url_patterns, "", "")
        if "tenant_slug" in route
    }
    for route, name in _walk(tenant_admin_site.urls[0], "", "tenant_admin:"):
        if name != "tenant_admin:":
            names.add(name)
        elif route.endswith("<path:object_id>/"):
            names.add(
                f"tenant_admin:{route.split('/')[0]}_{route.split('/')[1]}<redirect>"
            )
        else:
            names.add("tenant_admin:<catch-all>")
    return names


def test_all_routes_are_in_the_matrix() -> None:
    assert tenant_route_names() == set(ROUTES)
    registered = {m._meta.db_table for m in tenant_admin_site._registry}
    assert registered == set(ADMIN_OBJECTS)


def snapshot(tenant: Tenant) -> dict[str, Any]:
    with tenant_context(tenant):
        return {
            "members": sorted(Membership.objects.values_list("user__email", "role")),
            "brands": sorted(Brand.objects.values_list("name", "slug")),
            "invitations": sorted(
                Invitation.objects.values_list("email", "role", "revoked_at")
            ),
            "audit": AuditEvent.objects.count(),
            "status": Tenant.objects.get(pk=tenant.pk).status,
        }


@pytest.fixture
def world(owner: User, tenant: Tenant, outsider: User, other_tenant: Tenant) -> World:
    ids: dict[str, dict[str, int]] = {}
    for key, workspace, boss in (("a", tenant, owner), ("b", other_tenant, outsider)):
        member = make_user(f"member@{workspace.slug}.example")
        add_member(workspace, member, Membership.Role.AGENT)
        boss_membership = membership_of(workspace, boss)
        with tenant_context(workspace):
            invitation = invite_member(
                boss_membership, email=f"new@{workspace.slug}.example", role="agent"
            )
            contact = Contact.objects.create(
                display_name=f"Customer of {workspace.name}"
            )
            brand = Brand.objects.get()
            conversation = Conversation.objects.create(
                brand=brand, contact=contact, platform="sandbox", origin="mention"
            )
            account = SocialAccount.objects.create(
                brand=brand, platform="sandbox", external_id=f"acct-{key}", handle=key
            )
            ids[key] = {
                "listening_rule": ListeningRule.objects.create(
                    brand=brand,
                    name=f"Mentions of {workspace.name}",
                    query='"acme air"',
                ).pk,
                "social_account": account.pk,
                "saved_reply": SavedReply.objects.create(
                    brand=brand,
                    title=f"Hello from {workspace.name}",
                    body="Hi {first_name}",
                ).pk,
                "tag": Tag.objects.create(name=f"tag-{workspace.slug}").pk,
                "contact": contact.pk,
                "conversation": conversation.pk,
                "member": membership_of(workspace, member).pk,
                "invitation": invitation.pk,
                "brand": Brand.objects.get().pk,
                "audit": AuditEvent.objects.first().pk,  # type: ignore[union-attr]
                "user": member.pk,
            }
    return World(a=tenant, b=other_tenant, ids=ids)


def _call(client: Any, call: Call) -> Any:
    # Redirects are followed: the admin's `<id>/` redirects to `<id>/change/`
    # whatever the id, and what matters is where the caller ends up.
    if call.method == "get":
        return client.get(call.path, follow=True)
    return client.post(call.path, call.data or {}, follow=True)


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_idor_matrix(route: str, world: World, outsider: User, owner: User) -> None:
    before_a, before_b = snapshot(world.a), snapshot(world.b)
    charlie = login(outsider)
    for call in ROUTES[route](world.a.slug, world.ids["a"]):
        response = _call(charlie, call)
        assert response.status_code == 404, (call, response.status_code)
        assert b"Acme" not in response.content
    olivia = login(owner)
    for call in ROUTES[route](world.a.slug, world.ids["b"]):
        if world.ids["b"] and any(str(v) in call.path for v in world.ids["b"].values()):
            response = _call(olivia, call)
            assert response.status_code == 404, (call, response.status_code)
            assert b"Globex" not in response.content
    assert snapshot(world.a) == before_a
    assert snapshot(world.b) == before_b


def test_unknown_workspace_and_non_member_get_the_same_404(
    outsider: User, tenant: Tenant, other_tenant: Tenant
) -> None:
    charlie = login(outsider)
    unknown = charlie.get("/t/no-such-workspace/")
    foreign = charlie.get("/t/acme-air/")
    assert unknown.status_code == foreign.status_code == 404
    # Per-response randomness (CSP nonce, masked CSRF token) aside, they are equal.
    noise = re.compile(rb'(nonce|value)="[^"]+"')
    assert noise.sub(b"", unknown.content) == noise.sub(b"", foreign.content)


def test_anonymous_visitor_is_sent_to_login_without_learning_anything(
    tenant: Tenant,
) -> None:
    from django.test import Client

    client = Client()
    known = client.get("/t/acme-air/settings/members/")
    unknown = client.get("/t/no-such-workspace/settings/members/")
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == "/accounts/login/?next=/t/acme-air/settings/members/"
    assert (
        unknown["Location"]
        == "/accounts/login/?next=/t/no-such-workspace/settings/members/"
    )


def test_lists_show_no_other_tenant_rows(world: World, owner: User) -> None:
    olivia = login(owner)
    for path in (
        "/t/acme-air/",
        "/t/acme-air/settings/members/",
        "/t/acme-air/settings/brands/",
        "/t/acme-air/admin/tenants/brand/",
        "/t/acme-air/admin/tenants/membership/",
        "/t/acme-air/admin/tenants/invitation/",
        "/t/acme-air/admin/tenants/auditevent/",
        "/t/acme-air/admin/tenants/user/",
        "/t/acme-air/admin/tenants/user/?q=member",
        "/t/acme-air/admin/helpdesk/savedreply/",
        "/t/acme-air/admin/helpdesk/tag/",
        "/t/acme-air/admin/helpdesk/contact/?q=customer",
        "/t/acme-air/admin/helpdesk/conversation/",
        "/t/acme-air/admin/tenants/membership/?q=member",
    ):
        response = olivia.get(path)
        assert response.status_code == 200, path
        body = response.content.decode()
        assert "globex" not in body.lower(), path


def test_admin_autocomplete_sees_only_this_workspace(world: World, owner: User) -> None:
    response = login(owner).get(
        "/t/acme-air/admin/autocomplete/",
        {
            "app_label": "tenants",
            "model_name": "membership",
            "field_name": "user",
            "term": "",
        },
    )
    assert response.status_code == 200
    emails = sorted(result["text"] for result in response.json()["results"])
    assert emails == ["member@acme-air.example", "olivia@acme.example"]
    brands = login(owner).get(
        "/t/acme-air/admin/autocomplete/",
        {"app_label": "helpdesk", "model_name": "savedreply", "field_name": "brand"},
    )
    assert [r["text"] for r in brands.json()["results"]] == ["Acme Air"]
