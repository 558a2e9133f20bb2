"""The reports page shell: who sees it, the filters it opens with (a link reproduces
a view), its CSP-clean scripts, and the last simulated day of each brand."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from frontend.reports_views import latest_simulation_runs
from helpdesk.models import SimulationRun
from tenants.context import tenant_context
from tenants.models import Brand, Tenant, User
from tests.conftest import login
from tests.factories import make_brand, membership_of
from tests.helpdesk.conftest import make_account

pytestmark = pytest.mark.django_db

URL = "/t/acme-air/reports/"
FIGURES = {
    "response_rate": 1.0,
    "first_response_p50": 420,
    "first_response_p90": 2700,
    "next_response_p90": 1500,
    "breaches": 0,
    "fairness_ratio": 1.04,
}


def acme_brand(tenant: Tenant) -> Brand:
    with tenant_context(tenant):
        return Brand.objects.get(name="Acme Air")


def add_run(tenant: Tenant, brand: Brand, minutes_ago: int, **results: object) -> int:
    with tenant_context(tenant):
        return SimulationRun.objects.create(
            tenant=tenant,
            brand=brand,
            parameters={"volume": 400, "agents": 4, "seed": 7},
            results=results,
            created_at=timezone.now() - timedelta(minutes=minutes_ago),
        ).pk


def simulations(html: str) -> list[dict[str, object]]:
    found = re.search(
        r'<script id="simulations" type="application/json">(.*?)</script>', html
    )
    assert found is not None
    data: list[dict[str, object]] = json.loads(found.group(1))
    return data


def selected(html: str, name: str) -> list[str]:
    select = html.split(f'name="{name}">', 1)[1].split("</select>", 1)[0]
    return re.findall(r'<option value="([^"]*)"[^>]* selected>', select)


@pytest.mark.parametrize("persona", ["owner", "admin", "agent", "viewer"])
def test_every_member_sees_the_reports_page(
    tenant: Tenant, persona: str, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(persona)
    response = login(user).get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Reports</h1>" in html
    assert 'data-api="/api/v1/t/acme-air/reports/"' in html
    assert '<a href="/t/acme-air/reports/" aria-current="page">Reports</a>' in html
    for metric in (
        "response_rate",
        "first_response_p50",
        "first_response_p90",
        "next_response_p50",
        "breach_rate",
        "resolution_p50",
    ):
        assert f'data-metric="{metric}"' in html


def test_an_outsider_gets_404_and_no_report(
    tenant: Tenant, outsider: User, other_tenant: Tenant
) -> None:
    add_run(tenant, acme_brand(tenant), 5, earshot=FIGURES)
    response = login(outsider).get(URL)
    assert response.status_code == 404
    assert b"Simulated day" not in response.content
    assert login(outsider).get("/t/globex/reports/").status_code == 200


def test_anonymous_visitors_are_sent_to_log_in(tenant: Tenant) -> None:
    from django.test import Client

    response = Client().get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={URL}"


def test_the_page_opens_on_the_last_30_days_with_comparison(
    tenant: Tenant, viewer: User
) -> None:
    html = login(viewer).get(URL).content.decode()
    today = timezone.localdate()
    start = (today - timedelta(days=29)).isoformat()
    assert (
        f'<input type="date" id="f-start" name="start" value="{start}" required>'
        in html
    )
    end = today.isoformat()
    assert f'<input type="date" id="f-end" name="end" value="{end}" required>' in html
    assert 'name="compare" value="1" checked>' in html
    assert selected(html, "brand") == []
    assert 'href="/api/v1/t/acme-air/reports/conversations.csv" download>' in html
    assert 'href="/api/v1/t/acme-air/reports/aggregates.csv" download>' in html


def test_the_query_string_sets_the_filters(
    tenant: Tenant, owner: User, agent: User, viewer: User
) -> None:
    cargo = make_brand(tenant, "Acme Cargo")
    account = make_account(tenant, platform="mastodon", handle="acme")
    query = (
        f"?start=2026-11-01&end=2026-11-30&brand={cargo.pk}&account={account.pk}"
        f"&platform=mastodon&agent={agent.pk}&compare=0"
    )
    html = login(viewer).get(URL + query).content.decode()
    assert 'name="start" value="2026-11-01"' in html
    assert 'name="end" value="2026-11-30"' in html
    assert selected(html, "brand") == [str(cargo.pk)]
    assert selected(html, "account") == [str(account.pk)]
    assert selected(html, "platform") == ["mastodon"]
    assert selected(html, "agent") == [str(agent.pk)]
    assert 'name="compare" value="1">' in html
    # Agents who can answer are offered; viewers are not.
    agent_select = html.split('<select id="f-agent" name="agent">', 1)[1].split(
        "</select>"
    )[0]
    assert re.findall(r">([^<]+)</option>", agent_select) == [
        "All agents",
        "Olivia",
        "Andy",
    ]


def test_nonsense_filters_still_render_the_page(tenant: Tenant, viewer: User) -> None:
    response = login(viewer).get(URL + "?brand=abc&start=yesterday&agent=-1")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="start" value="yesterday"' in html
    assert selected(html, "brand") == []


def test_another_workspaces_ids_select_nothing(
    tenant: Tenant, owner: User, other_tenant: Tenant
) -> None:
    with tenant_context(other_tenant):
        globex = Brand.objects.get(name="Globex")
    account = make_account(other_tenant)
    response = login(owner).get(f"{URL}?brand={globex.pk}&account={account.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    assert selected(html, "brand") == []
    assert selected(html, "account") == []
    assert "Globex" not in html


def test_the_page_runs_under_csp_without_inline_script(
    tenant: Tenant, viewer: User
) -> None:
    response = login(viewer).get(URL)
    assert "style-src 'self';" in response["Content-Security-Policy"]
    html = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>", html)
    assert all(
        'src="/static/frontend/' in attrs or 'type="application/json"' in attrs
        for attrs in scripts
    ), scripts
    assert " style=" not in html
    assert " onclick=" not in html
    assert 'src="/static/frontend/vendor/chartjs/chart.umd.min.js"' in html
    assert 'src="/static/frontend/js/reports.js"' in html


def test_without_a_simulated_day_the_panel_says_how_to_run_one(
    tenant: Tenant, viewer: User
) -> None:
    html = login(viewer).get(URL).content.decode()
    assert simulations(html) == []
    assert "No simulated day yet: run <code>manage.py simulate_day</code>." in html


def test_the_page_carries_each_brands_newest_simulated_day(
    tenant: Tenant, owner: User, other_tenant: Tenant
) -> None:
    acme = acme_brand(tenant)
    cargo = make_brand(tenant, "Acme Cargo")
    add_run(tenant, acme, 60, earshot={**FIGURES, "breaches": 9})
    add_run(tenant, acme, 5, earshot=FIGURES, fifo={**FIGURES, "breaches": 3})
    add_run(tenant, cargo, 30, loudest={"breaches": 12, "note": "x"}, junk=3)
    with tenant_context(other_tenant):
        globex = Brand.objects.get(name="Globex")
    add_run(other_tenant, globex, 1, earshot=FIGURES)

    data = simulations(login(owner).get(URL).content.decode())
    assert [(run["brand_name"], run["policies"]) for run in data] == [
        ("Acme Air", {"earshot": FIGURES, "fifo": {**FIGURES, "breaches": 3}}),
        ("Acme Cargo", {"loudest": {"breaches": 12}}),
    ]
    assert [run["brand"] for run in data] == [acme.pk, cargo.pk]
    assert data[0]["parameters"] == {"volume": 400, "agents": 4, "seed": 7}


def test_the_selector_returns_the_newest_run_per_brand(
    tenant: Tenant, owner: User
) -> None:
    acme = acme_brand(tenant)
    cargo = make_brand(tenant, "Acme Cargo")
    add_run(tenant, acme, 60)
    newest = add_run(tenant, acme, 5)
    cargos = add_run(tenant, cargo, 30)
    with tenant_context(tenant):
        runs = list(latest_simulation_runs(membership_of(tenant, owner)))
    assert [run.pk for run in runs] == [newest, cargos]
