"""Settings → brand settings, listening rules and saved replies: what the pages show
to each role, the fragments their scripts re-fetch, and the navigation.

The pages write through the REST API; these tests check that agents and viewers
get no editing controls and that the API refuses their writes all the same.
"""

import re
from datetime import date

import pytest

from helpdesk.models import SavedReply
from social.models import ListeningRule
from tenants.context import tenant_context
from tenants.models import Brand, Holiday, SlaPolicy, Tenant, User
from tests.conftest import login
from tests.factories import make_brand

pytestmark = pytest.mark.django_db(transaction=True)

BASE = "/t/acme-air/settings"
API = "/api/v1/t/acme-air"
ALL_DAY = [["00:00", "24:00"]]


def brand_of(tenant: Tenant) -> Brand:
    with tenant_context(tenant):
        return Brand.objects.get(name="Acme Air")


def set_brand(tenant: Tenant, **values: object) -> Brand:
    with tenant_context(tenant):
        Brand.objects.filter(name="Acme Air").update(**values)
        return Brand.objects.get(name="Acme Air")


def brand_settings(tenant: Tenant) -> tuple[object, ...]:
    with tenant_context(tenant):
        return tuple(
            Brand.objects.filter(name="Acme Air").values_list(
                "name",
                "timezone",
                "business_hours",
                "public_reply_limit",
                "send_hold_seconds",
                "signature_rules",
            )[0]
        )


def add_rule(
    tenant: Tenant, brand: Brand, name: str, query: str, **extra: object
) -> int:
    with tenant_context(tenant):
        return ListeningRule.objects.create(
            tenant=tenant, brand=brand, name=name, query=query, **extra
        ).pk


def add_reply(tenant: Tenant, title: str, body: str, brand: Brand | None) -> int:
    with tenant_context(tenant):
        return SavedReply.objects.create(
            tenant=tenant, brand=brand, title=title, body=body
        ).pk


def main_of(html: str) -> str:
    return html.split('<div class="settings-body">', 1)[1]


def squash(html: str) -> str:
    return re.sub(r"\s+", " ", html)


# --- Brand settings -------------------------------------------------------------------


def test_admins_get_the_brand_settings_form(tenant: Tenant, admin: User) -> None:
    brand = set_brand(
        tenant,
        timezone="Europe/Lisbon",
        business_hours={
            "mon": [["09:00", "12:00"], ["13:00", "17:00"]],
            "fri": [["22:00", "24:00"]],
        },
        public_reply_limit=3,
        send_hold_seconds=45,
        queue_window_minutes=12,
        private_first_allowed=True,
        auto_assign=False,
        signature_rules={"x": " ^{initials}", "default": "- {first_name}"},
    )
    response = login(admin).get(f"{BASE}/brands/{brand.pk}/")

    assert response.status_code == 200
    html = squash(response.content.decode())
    assert '<h1 id="brand-title">Acme Air</h1>' in html
    assert "<option selected>Europe/Lisbon</option>" in html
    assert html.count(" selected>") == 1
    assert (
        '<div class="day-row" data-day="mon" data-label="Monday">'
        ' <label class="day-toggle"><input type="checkbox" class="day-open"'
        ' name="open-mon" checked> Monday</label>'
    ) in html
    assert re.findall(r'class="(start|end)" value="([\d:]+)"', html) == [
        ("start", "09:00"),
        ("end", "12:00"),
        ("start", "13:00"),
        ("end", "17:00"),
        ("start", "22:00"),
        ("end", "00:00"),  # 24:00, as a time input can show it
        ("start", "09:00"),  # the <template> "Add hours" copies
        ("end", "17:00"),
    ]
    assert '<div class="day-row is-closed" data-day="tue" data-label="Tuesday">' in html
    for name, value in (
        ("public_reply_limit", "3"),
        ("send_hold_seconds", "45"),
        ("queue_window_minutes", "12"),
    ):
        assert re.search(rf'name="{name}" type="number"[^>]* value="{value}"', html)
    assert 'min="0" max="120" value="45"' in html
    assert 'min="1" max="10" value="3"' in html
    assert 'name="private_first_allowed" id="f-private_first_allowed" checked>' in html
    assert 'name="auto_assign" id="f-auto_assign">' in html
    # Signatures previewed as Ada would sign: X has its own, the rest the default.
    assert re.findall(
        r'data-platform="(\w+)">.*?value="([^"]*)".*?<span class="sig-mark">([^<]*)<',
        html,
    )[:3] == [
        ("default", "- {first_name}", " - Ada"),
        ("sandbox", "", " - Ada"),
        ("x", " ^{initials}", " ^A"),
    ]
    assert 'data-agent-name="Ada"' in html
    assert 'id="save-brand">Save changes</button>' in html
    assert "frontend/js/brand_settings" in html
    assert '<fieldset class="plain">' in html
    assert "readonly-note" not in html


def test_the_brand_page_shows_the_queue_and_publishing_settings(
    tenant: Tenant, admin: User
) -> None:
    brand = set_brand(
        tenant,
        pause_while_pending=False,
        queue_window_minutes=0,
        publish_badge=True,
        sla_digest=True,
    )
    html = squash(login(admin).get(f"{BASE}/brands/{brand.pk}/").content.decode())
    assert re.search(
        r'name="queue_window_minutes" type="number" inputmode="numeric" '
        r'min="0" max="60" value="0"',
        html,
    )
    assert 'name="pause_while_pending" id="f-pause_while_pending">' in html
    assert 'name="publish_badge" id="f-publish_badge" checked>' in html
    assert 'name="sla_digest" id="f-sla_digest" checked>' in html
    for field in ("queue_window_minutes", "pause_while_pending", "sla_digest"):
        assert f'data-field="{field}"></p>' in html


def sla_inputs(html: str) -> list[tuple[str, str]]:
    return re.findall(
        r'<input id="f-(\w+_minutes)" name="\w+" type="number" inputmode="numeric" '
        r'min="1" max="10080" value="(\d*)"',
        html,
    )


def test_admins_see_the_targets_inherited_from_the_workspace(
    tenant: Tenant, admin: User
) -> None:
    brand = brand_of(tenant)
    with tenant_context(tenant):
        SlaPolicy.objects.create(
            tenant=tenant, brand=None, first_response_minutes=30, urgent_tags=["vip"]
        )
    html = squash(login(admin).get(f"{BASE}/brands/{brand.pk}/").content.decode())
    assert sla_inputs(html) == [
        ("first_response_minutes", "30"),
        ("next_response_minutes", "60"),
        ("resolution_minutes", ""),
        ("urgent_first_response_minutes", "10"),
        ("urgent_next_response_minutes", "10"),
    ]
    assert (
        '<p class="helptext" id="sla-source" data-own="false">This brand uses the '
        "workspace&#x27;s targets until you save its own.</p>"
    ) in html
    assert 'name="urgent_tags" value="vip"' in html
    assert 'name="urgent_on_negative" id="f-urgent_on_negative" checked>' in html
    assert 'id="reset-sla" hidden>' in html
    assert 'id="save-sla">Save targets</button>' in html
    assert '<p class="muted" id="holiday-list">No holidays.</p>' in html
    assert '<form id="holiday-form"' in html


def test_admins_see_the_brands_own_targets_and_its_holidays(
    tenant: Tenant, admin: User
) -> None:
    brand = brand_of(tenant)
    with tenant_context(tenant):
        SlaPolicy.objects.create(
            tenant=tenant,
            brand=brand,
            first_response_minutes=15,
            resolution_minutes=1440,
            urgent_on_negative=False,
        )
        christmas = Holiday.objects.create(
            tenant=tenant,
            brand=brand,
            name="Christmas",
            start_date=date(2026, 12, 25),
            end_date=date(2026, 12, 26),
        )
        founders = Holiday.objects.create(
            tenant=tenant,
            brand=brand,
            name="Founders' day",
            start_date=date(2026, 6, 1),
            end_date=date(2026, 6, 1),
        )
    html = squash(login(admin).get(f"{BASE}/brands/{brand.pk}/").content.decode())
    assert sla_inputs(html)[:3] == [
        ("first_response_minutes", "15"),
        ("next_response_minutes", "60"),
        ("resolution_minutes", "1440"),
    ]
    assert 'data-own="true">This brand has its own targets.</p>' in html
    assert 'id="reset-sla">Use the workspace' in html
    assert 'name="urgent_on_negative" id="f-urgent_on_negative">' in html
    assert re.findall(
        r'<tr data-holiday-id="(\d+)"> <td>([^<]+)</td> '
        r'<td><time datetime="([\d-]+)">[^<]+</time></td> '
        r'<td><time datetime="([\d-]+)">',
        html,
    ) == [
        (str(founders.pk), "Founders&#x27; day", "2026-06-01", "2026-06-01"),
        (str(christmas.pk), "Christmas", "2026-12-25", "2026-12-26"),
    ]
    assert (
        f'class="icon-button remove-holiday" data-holiday-id="{christmas.pk}"' in html
    )
    for field in ("name", "start_date", "end_date"):
        assert f'data-field="{field}"></p>' in html


@pytest.mark.parametrize(
    ("hours", "state"),
    [
        (
            dict.fromkeys(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), ALL_DAY),
            "<strong>Online</strong> · around the clock",
        ),
        ({}, "<strong>Offline</strong> · no business hours set"),
    ],
)
def test_the_brand_shows_whether_it_is_online(
    tenant: Tenant, agent: User, hours: dict[str, object], state: str
) -> None:
    brand = set_brand(tenant, business_hours=hours, timezone="Asia/Tokyo")
    client = login(agent)
    page = squash(client.get(f"{BASE}/brands/{brand.pk}/").content.decode())
    fragment = client.get(f"{BASE}/brands/{brand.pk}/status/")

    assert state in page
    assert fragment.status_code == 200
    body = squash(fragment.content.decode()).strip()
    assert body.startswith('<div id="brand-status" class="status-card is-o')
    assert state in body
    assert re.search(r"\d\d:\d\d in Asia/Tokyo", body)
    assert "<html" not in body


@pytest.mark.parametrize("role", ["agent", "viewer"])
def test_agents_and_viewers_see_brand_settings_read_only(
    tenant: Tenant, role: str, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(role)
    brand = brand_of(tenant)
    client = login(user)
    before = brand_settings(tenant)

    with tenant_context(tenant):
        Holiday.objects.create(
            tenant=tenant,
            brand=brand,
            name="Christmas",
            start_date=date(2026, 12, 25),
            end_date=date(2026, 12, 25),
        )
    html = squash(client.get(f"{BASE}/brands/{brand.pk}/").content.decode())
    assert html.count('<fieldset class="plain" disabled>') == 2
    assert "<td>Christmas</td>" in html
    assert "remove-holiday" not in html
    assert "holiday-form" not in html
    assert "save-sla" not in html
    assert "only admins and owners can change them" in html
    assert "Save changes" not in html
    assert "brand_settings.js" not in html
    assert "add-interval" not in html
    assert "remove-interval" not in html
    # The page offers nothing, and the API refuses anyway.
    refused = client.patch(
        f"{API}/brands/{brand.pk}/",
        {"send_hold_seconds": 5},
        content_type="application/json",
    )
    assert refused.status_code == 403
    assert brand_settings(tenant) == before


def test_the_brands_list_links_to_each_brand(tenant: Tenant, admin: User) -> None:
    cargo = make_brand(tenant, "Acme Cargo")
    html = squash(login(admin).get(f"{BASE}/brands/").content.decode())
    for brand in (brand_of(tenant), cargo):
        assert (
            f'<a class="brand-link" href="{BASE}/brands/{brand.pk}/">'
            f'<strong>{brand.name}</strong> <span class="muted">UTC</span></a>'
        ) in html
    assert html.count("Edit settings →") == 2


# --- Listening rules ------------------------------------------------------------------


def test_admins_get_rules_by_brand_the_editor_and_the_tester(
    tenant: Tenant, admin: User
) -> None:
    brand = brand_of(tenant)
    make_brand(tenant, "Acme Cargo")
    rule = add_rule(
        tenant,
        brand,
        "Untagged complaints",
        '"acme air" (late OR delay*) -job',
        platforms=["x", "sandbox"],
        action="feed",
        enabled=False,
        variants={"acme air": ["akme air"]},
    )
    response = login(admin).get(f"{BASE}/listening/")

    assert response.status_code == 200
    html = squash(main_of(response.content.decode()))
    assert re.findall(r'<h2 id="brand-\d+-rules">([^<]+)</h2>', html) == [
        "Acme Air",
        "Acme Cargo",
    ]
    assert f'<li class="rule is-off" id="rule-{rule}" data-rule-id="{rule}">' in html
    assert (
        "<strong>Untagged complaints</strong> "
        '<span class="pill state-off">Paused</span> '
        '<span class="pill action-feed">Feed only</span>'
    ) in html
    assert (
        '<code class="query">&quot;acme air&quot; (late OR delay*) -job</code>' in html
    )
    assert (
        '<span class="platform p-x">X</span><span class="platform p-sandbox">Sandbox'
        '</span> <span class="muted">· 1 variant</span>'
    ) in html
    assert "No rules for Acme Cargo yet." in html
    assert 'aria-label="Edit Untagged complaints">Edit</button>' in html
    assert 'aria-label="Delete Untagged complaints">Delete</button>' in html
    assert '<form id="rule-form"' in html
    offered = re.findall(r'name="platforms" value="(\w+)"', html)
    assert offered == [
        "sandbox",
        "x",
        "facebook",
        "instagram",
        "reddit",
        "mastodon",
        "bluesky",
        "reviews",
    ]
    assert '<input type="radio" name="action" value="inbox" checked>' in html
    assert '<form id="test-form"' in html
    assert "<code>late NEAR/5 flight</code>" in html
    assert "frontend/js/listening.js" in response.content.decode()


@pytest.mark.parametrize("role", ["agent", "viewer"])
def test_agents_and_viewers_may_only_read_and_try_rules(
    tenant: Tenant, role: str, request: pytest.FixtureRequest
) -> None:
    brand = brand_of(tenant)
    rule = add_rule(tenant, brand, "Mentions", '"acme air"')
    client = login(request.getfixturevalue(role))

    html = squash(client.get(f"{BASE}/listening/").content.decode())
    assert "<strong>Mentions</strong>" in html
    assert '<form id="rule-form"' not in html
    assert 'data-action="edit"' not in html
    assert 'data-action="delete"' not in html
    assert 'aria-label="Test Mentions">Test</button>' in html
    assert '<form id="test-form"' in html

    created = client.post(
        f"{API}/listening-rules/",
        {"brand_id": brand.pk, "name": "Mine", "query": "acme"},
        content_type="application/json",
    )
    deleted = client.delete(f"{API}/listening-rules/{rule}/")
    tried = client.post(
        f"{API}/listening-rules/test/",
        {"query": "acme", "text": "Acme again"},
        content_type="application/json",
    )
    assert (created.status_code, deleted.status_code) == (403, 403)
    assert tried.json() == {"matches": True, "terms": ["acme"]}
    with tenant_context(tenant):
        assert list(ListeningRule.objects.values_list("name", flat=True)) == [
            "Mentions"
        ]


def test_the_rule_list_fragment_is_the_list_alone(tenant: Tenant, admin: User) -> None:
    add_rule(tenant, brand_of(tenant), "Mentions", '"acme air"')
    response = login(admin).get(f"{BASE}/listening/rules/")

    assert response.status_code == 200
    body = response.content.decode().strip()
    assert body.startswith('<div id="rule-list" class="rule-groups">')
    assert body.endswith("</div>")
    assert "<strong>Mentions</strong>" in body
    assert "rule-form" not in body


# --- Saved replies --------------------------------------------------------------------


def test_admins_get_saved_replies_by_brand_and_the_editor(
    tenant: Tenant, admin: User
) -> None:
    cargo = make_brand(tenant, "Acme Cargo")
    shared = add_reply(tenant, "Thanks", "Thanks {first_name}!", None)
    own = add_reply(tenant, "Lost cargo", "Hi {first_name}, {agent_name} here.", cargo)
    response = login(admin).get(f"{BASE}/saved-replies/")

    assert response.status_code == 200
    html = squash(main_of(response.content.decode()))
    assert re.findall(r'<h2 id="group-\w+">([^<]+)</h2>', html) == [
        "All brands",
        "Acme Cargo",
    ]
    assert (
        f'<li class="saved-reply" id="reply-{shared}" data-reply-id="{shared}">'
        ' <div class="reply-main"> <p class="reply-title"><strong>Thanks</strong></p>'
        ' <p class="reply-body">Thanks {first_name}!</p>'
    ) in html
    assert f'id="reply-{own}"' in html
    assert '<span class="muted">1 reply</span>' in html
    assert '<form id="reply-form"' in html
    assert (
        '<select id="s-brand" name="brand_id"><option value="">All brands</option>'
        f'<option value="{brand_of(tenant).pk}">Acme Air</option>'
        f'<option value="{cargo.pk}">Acme Cargo</option></select>'
    ) in html
    assert 'data-insert="{brand_name}"' in html
    assert 'data-agent-name="Ada" data-customer="Maria"' in html
    assert "frontend/js/saved_replies.js" in response.content.decode()


@pytest.mark.parametrize("role", ["agent", "viewer"])
def test_agents_and_viewers_see_saved_replies_read_only(
    tenant: Tenant, role: str, request: pytest.FixtureRequest
) -> None:
    reply = add_reply(tenant, "Thanks", "Thanks {first_name}!", None)
    client = login(request.getfixturevalue(role))

    html = squash(client.get(f"{BASE}/saved-replies/").content.decode())
    assert "<strong>Thanks</strong>" in html
    assert '<form id="reply-form"' not in html
    assert 'data-action="edit"' not in html
    assert "saved_replies.js" not in html
    assert "Only admins and owners can add or change saved replies." in html
    created = client.post(
        f"{API}/saved-replies/",
        {"title": "Mine", "body": "x"},
        content_type="application/json",
    )
    changed = client.patch(
        f"{API}/saved-replies/{reply}/",
        {"title": "Changed"},
        content_type="application/json",
    )
    assert (created.status_code, changed.status_code) == (403, 403)
    with tenant_context(tenant):
        assert list(SavedReply.objects.values_list("title", flat=True)) == ["Thanks"]


def test_without_replies_the_page_says_so(tenant: Tenant, admin: User) -> None:
    fragment = login(admin).get(f"{BASE}/saved-replies/list/")
    body = squash(fragment.content.decode()).strip()
    assert body == (
        '<div id="reply-list" class="reply-groups"> <section class="panel">'
        '<p class="panel-empty">No saved replies yet. Write the answers your team '
        "gives most often below.</p></section> </div>"
    )


# --- The settings area ----------------------------------------------------------------


def nav_links(html: str) -> list[tuple[str, str, bool]]:
    nav = html.split('<nav class="settings-nav"', 1)[1].split("</nav>", 1)[0]
    return [
        (label, href, bool(current))
        for href, current, label in re.findall(
            r'<a href="([^"]+)"( aria-current="page")?>([^<]+)</a>', nav
        )
    ]


def test_every_settings_page_has_the_settings_navigation(
    tenant: Tenant, admin: User
) -> None:
    client = login(admin)
    brand = brand_of(tenant)
    pages = {
        f"{BASE}/brands/": "Brands",
        f"{BASE}/brands/{brand.pk}/": "Brands",
        f"{BASE}/accounts/": "Connected accounts",
        f"{BASE}/listening/": "Listening rules",
        f"{BASE}/saved-replies/": "Saved replies",
        f"{BASE}/members/": "Members",
        f"{BASE}/workspace/delete/": None,  # owners only: 403 for an admin
        f"{BASE}/api-tokens/": "API tokens",
        f"{BASE}/webhooks/": "Webhooks",
    }
    for path, current in pages.items():
        response = client.get(path)
        if current is None:
            assert response.status_code == 403
            continue
        html = response.content.decode()
        assert nav_links(html) == [
            ("Brands", f"{BASE}/brands/", current == "Brands"),
            (
                "Connected accounts",
                f"{BASE}/accounts/",
                current == "Connected accounts",
            ),
            ("Listening rules", f"{BASE}/listening/", current == "Listening rules"),
            ("Saved replies", f"{BASE}/saved-replies/", current == "Saved replies"),
            ("Members", f"{BASE}/members/", current == "Members"),
            ("API tokens", f"{BASE}/api-tokens/", current == "API tokens"),
            ("Webhooks", f"{BASE}/webhooks/", current == "Webhooks"),
            ("Admin site", "/t/acme-air/admin/", False),
        ], path
        top = html.split('<nav class="tenant-nav"', 1)[1].split("</nav>", 1)[0]
        assert f'<a href="{BASE}/brands/" aria-current="page">Settings</a>' in top


def test_agents_see_no_admin_pages_in_the_navigation(
    tenant: Tenant, agent: User
) -> None:
    html = login(agent).get("/t/acme-air/").content.decode()
    assert [label for label, _, _ in nav_links(html)] == [
        "Brands",
        "Connected accounts",
        "Listening rules",
        "Saved replies",
        "Members",
        "API tokens",
    ]
    inbox = login(agent).get("/t/acme-air/inbox/").content.decode()
    assert "settings-nav" not in inbox


def test_the_pages_have_no_inline_script_or_style(tenant: Tenant, admin: User) -> None:
    brand = brand_of(tenant)
    add_rule(tenant, brand, "Mentions", '"acme air"')
    add_reply(tenant, "Thanks", "Thanks {first_name}!", brand)
    client = login(admin)
    for path in (
        f"{BASE}/brands/{brand.pk}/",
        f"{BASE}/listening/",
        f"{BASE}/saved-replies/",
    ):
        html = client.get(path).content.decode()
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], path
        assert " style=" not in html, path
        assert re.search(r"\son[a-z]+=", html) is None, path
        scripts = re.findall(
            r'<script type="module" src="([^"]+)" nonce="[^"]+">', html
        )
        assert len(scripts) == 2, path


def test_outsiders_and_other_workspaces_ids_get_404(
    tenant: Tenant, other_tenant: Tenant, outsider: User, owner: User
) -> None:
    brand = brand_of(tenant)
    with tenant_context(other_tenant):
        globex = Brand.objects.get()
    charlie = login(outsider)
    for path in (
        f"{BASE}/brands/{brand.pk}/",
        f"{BASE}/brands/{brand.pk}/status/",
        f"{BASE}/listening/",
        f"{BASE}/listening/rules/",
        f"{BASE}/saved-replies/",
        f"{BASE}/saved-replies/list/",
    ):
        response = charlie.get(path)
        assert response.status_code == 404, path
        assert b"Acme" not in response.content
    olivia = login(owner)
    for path in (f"{BASE}/brands/{globex.pk}/", f"{BASE}/brands/{globex.pk}/status/"):
        response = olivia.get(path)
        assert response.status_code == 404, path
        assert b"Globex" not in response.content
